"""Build `catalogue.json` from the hand-written `catalogue_source.psv`.

    python -m haggle.market.build_catalogue          # rewrite catalogue.json
    python -m haggle.market.build_catalogue --check  # exit 1 when catalogue.json is stale

The source holds the hand-compiled figures (prices in whole dollars); this
script converts them to cents, adds the shipping methods the carrier limits
allow, validates everything through `Catalogue`, and writes sorted JSON.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from haggle.contracts.goods import Dimensions, Item
from haggle.market.catalogue import CATALOGUE_PATH, Catalogue, sensible_methods

SOURCE_PATH = Path(__file__).with_name("catalogue_source.psv")
COMPILED_ON = "2026-11-27"
SOURCES = (
    "Used prices: typical second-hand sale prices in USD for good to very good condition, as commonly "
    "seen on eBay sold listings, Facebook Marketplace and Craigslist. Weights and packed sizes: "
    "manufacturer spec sheets plus an allowance for packaging. Estimates compiled by hand, not "
    "scraped; good enough to give a simulated market realistic proportions, not a price guide."
)
FIELDS = ("id", "category", "title", "keywords", "low", "high", "weight_g", "length", "width", "height")


def _entry(line: str, number: int) -> dict[str, object]:
    parts = [part.strip() for part in line.split("|")]
    if len(parts) != len(FIELDS) + 1:
        raise ValueError(f"line {number}: want {len(FIELDS) + 1} fields, found {len(parts)}")
    row = dict(zip(FIELDS, parts[:-1], strict=True))
    dims = Dimensions(length_mm=int(row["length"]), width_mm=int(row["width"]), height_mm=int(row["height"]))
    weight = int(row["weight_g"])
    return {
        "id": row["id"],
        "category": row["category"],
        "title": row["title"],
        "keywords": [word.strip() for word in row["keywords"].split(";")],
        "description": parts[-1],
        "used_price_low_cents": int(row["low"]) * 100,
        "used_price_high_cents": int(row["high"]) * 100,
        "weight_g": weight,
        "dimensions": dims.model_dump(),
        "shipping": [m.value for m in sensible_methods(Item(weight_g=weight, dimensions=dims))],
    }


def build(source: str) -> str:
    """The catalogue JSON text for a source text; raises on any invalid line."""
    entries = [
        _entry(line, number)
        for number, line in enumerate(source.splitlines(), start=1)
        if line.strip() and not line.startswith("#")
    ]
    document = {"sources": SOURCES, "compiled_on": COMPILED_ON, "currency": "USD", "entries": entries}
    Catalogue.model_validate(document)
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = build(SOURCE_PATH.read_text(encoding="utf-8"))
    if "--check" in argv:
        stale = CATALOGUE_PATH.read_text(encoding="utf-8") != text
        print(f"{CATALOGUE_PATH.name}: {'stale, rebuild it' if stale else 'up to date'}")
        return 1 if stale else 0
    CATALOGUE_PATH.write_text(text, encoding="utf-8")
    print(f"wrote {CATALOGUE_PATH} ({text.count(chr(10))} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
