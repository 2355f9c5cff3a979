"""A live GMV-by-category view: an example of a consumer built only on the published contracts.

    .venv/bin/python examples/gmv_by_category.py [--market M] [--every 2] [--once]

It reads `listing.events` (a listing's category) and `negotiation.events` / `settlement.events`
(deals agreed, funds released, refunds) from the start, then follows them, and redraws a
table: per category, deals agreed, GMV agreed (price, integer cents), GMV settled (released to
the seller) and refunded. It needs nothing but Kafka and `haggle.contracts` (the same models the
AsyncAPI document in contracts/ describes); it joins no consumer group and writes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from collections import defaultdict
from dataclasses import dataclass, field

from haggle.contracts import Envelope, payload_of
from haggle.contracts.listing import ListingPublished
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.settlement import FundsReleased, Refunded
from haggle.events import Filter, Record, read

TOPICS = ("listing.events", "negotiation.events", "settlement.events")
TYPES = frozenset({"ListingPublished", "DealAgreed", "FundsReleased", "Refunded"})
UNKNOWN = "(unknown)"


@dataclass
class Row:
    deals: int = 0
    agreed_cents: int = 0
    settled_cents: int = 0
    refunded_cents: int = 0


@dataclass
class GmvByCategory:
    """The view: fold envelopes in, read `rows()` out.

    Topics are read side by side, so a deal may arrive before its listing: the view keeps the
    facts (listing → category, deal → listing and price, settled, refunded) and sums them when
    read. Replays are harmless: each deal counts once."""

    category_of_listing: dict[str, str] = field(default_factory=dict)
    deals: dict[str, tuple[str, int]] = field(default_factory=dict)
    settled: set[str] = field(default_factory=set)
    refunded: set[str] = field(default_factory=set)

    def apply(self, envelope: Envelope) -> None:
        if envelope.type not in TYPES:
            return
        event = payload_of(envelope)
        if isinstance(event, ListingPublished):
            self.category_of_listing[event.listing_id] = event.category
        elif isinstance(event, DealAgreed):
            self.deals.setdefault(event.deal_id, (event.listing_id, event.price_cents))
        elif isinstance(event, FundsReleased):
            self.settled.add(event.deal_id)
        elif isinstance(event, Refunded):
            self.refunded.add(event.deal_id)

    @property
    def by_category(self) -> dict[str, Row]:
        rows: dict[str, Row] = defaultdict(Row)
        for deal_id, (listing_id, price) in self.deals.items():
            row = rows[self.category_of_listing.get(listing_id, UNKNOWN)]
            row.deals += 1
            row.agreed_cents += price
            row.settled_cents += price if deal_id in self.settled else 0
            row.refunded_cents += price if deal_id in self.refunded else 0
        return rows

    def rows(self) -> list[tuple[str, Row]]:
        return sorted(self.by_category.items(), key=lambda item: (-item[1].agreed_cents, item[0]))

    def render(self) -> str:
        lines = [f"{'category':<24} {'deals':>6} {'agreed $':>12} {'settled $':>12} {'refunded $':>12}"]
        for category, row in self.rows():
            lines.append(
                f"{category[:24]:<24} {row.deals:>6} {row.agreed_cents / 100:>12.2f}"
                f" {row.settled_cents / 100:>12.2f} {row.refunded_cents / 100:>12.2f}"
            )
        return "\n".join(lines)


async def run(bootstrap: str, market_id: str | None, view: GmvByCategory, follow: bool = True) -> None:
    """Fill `view` from the topics' start; with `follow`, for ever."""
    wanted = Filter(market_id, TYPES)
    async for item in read(bootstrap, TOPICS, wanted, follow=follow):
        assert isinstance(item, Record)
        view.apply(item.envelope)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--market", default=None, help="one market's deals only")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between redraws")
    parser.add_argument("--once", action="store_true", help="read up to now, print, exit")
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _local_bootstrap()
    view = GmvByCategory()
    if args.once:
        await run(bootstrap, args.market, view, follow=False)
        print(view.render())
        return
    task = asyncio.create_task(run(bootstrap, args.market, view))
    while not task.done():
        print("\033[2J\033[H" + view.render(), flush=True)
        await asyncio.sleep(args.every)
    await task


def _local_bootstrap() -> str:
    from haggle.runtime.settings import Settings

    return Settings().kafka_bootstrap_servers


if __name__ == "__main__":
    asyncio.run(main())
