"""Many populations, one table: means with 95% confidence intervals over seeds.

Each seed is an independent market, so a figure's interval is the Student t
interval over the per-seed values (None with fewer than two seeds).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from scipy import stats

from haggle.market.report import MarketReport


def interval(values: Sequence[float]) -> dict[str, float | int | None]:
    """Mean and 95% t interval half-width of independent per-seed values."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return {"n": 0, "mean": None, "ci95": None}
    mean = statistics.fmean(clean)
    if len(clean) < 2:
        return {"n": 1, "mean": mean, "ci95": None}
    half = float(stats.t.ppf(0.975, len(clean) - 1)) * statistics.stdev(clean) / math.sqrt(len(clean))
    return {"n": len(clean), "mean": mean, "ci95": half}


def summarise(reports: Sequence[MarketReport]) -> dict[str, Any]:
    variants = sorted({v.variant for r in reports for v in r.variants})

    def per_variant(variant: str, pick: str) -> dict[str, float | int | None]:
        values = []
        for r in reports:
            row = next((v for v in r.variants if v.variant == variant), None)
            value = getattr(row, pick, None) if row else None
            if value is not None:
                values.append(float(value) / (row.principals if pick == "surplus_cents" and row else 1))
        return interval(values)

    return {
        "markets": [r.market_id for r in reports],
        "welfare_efficiency": interval(
            [r.surplus.efficiency for r in reports if r.surplus.efficiency is not None]
        ),
        "budget_efficiency": interval(
            [r.surplus.budget_efficiency for r in reports if r.surplus.budget_efficiency is not None]
        ),
        "listings_sold_share": interval(
            [
                r.completion.listings_sold_share
                for r in reports
                if r.completion.listings_sold_share is not None
            ]
        ),
        "variants": {
            variant: {
                "seller_price_index": per_variant(variant, "seller_price_index"),
                "buyer_price_index": per_variant(variant, "buyer_price_index"),
                "surplus_cents_per_principal": per_variant(variant, "surplus_cents"),
            }
            for variant in variants
        },
        "all_invariants_held": all(r.ok for r in reports),
    }


def _cell(figure: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    if figure["mean"] is None:
        return "—"
    text = f"{figure['mean'] * scale:.{digits}f}"
    return text + (f" ± {figure['ci95'] * scale:.{digits}f}" if figure["ci95"] is not None else "")


def render_seeds(summary: dict[str, Any], console: Console) -> None:
    n = len(summary["markets"])
    table = Table(title=f"Over {n} seeds (mean ± 95% CI)", title_justify="left")
    for column in ("figure", "value"):
        table.add_column(column)
    table.add_row("welfare efficiency", _cell(summary["welfare_efficiency"]))
    table.add_row("efficiency within budgets", _cell(summary["budget_efficiency"]))
    table.add_row("listings sold", _cell(summary["listings_sold_share"]))
    for variant, figures in summary["variants"].items():
        table.add_row(f"{variant}: seller price index", _cell(figures["seller_price_index"]))
        table.add_row(f"{variant}: buyer price index", _cell(figures["buyer_price_index"]))
        table.add_row(
            f"{variant}: surplus per principal ($)", _cell(figures["surplus_cents_per_principal"], 0.01, 2)
        )
    console.print(table)
