"""Read the audited topics of one market from Kafka into an `Index`."""

from __future__ import annotations

from haggle.audit.trail import AUDITED_TOPICS, Index
from haggle.events import Filter, Record, read


class DealNotFound(LookupError):
    """No DealAgreed with this id on negotiation.events."""


async def market_of_deal(bootstrap: str, deal_id: str) -> str:
    async for item in read(bootstrap, ["negotiation.events"], Filter(types=frozenset({"DealAgreed"}))):
        if isinstance(item, Record) and item.envelope.payload.get("deal_id") == deal_id:
            return item.envelope.market_id
    raise DealNotFound(f"no deal {deal_id!r} on negotiation.events")


async def collect(bootstrap: str, market_id: str) -> Index:
    found = Index()
    async for item in read(bootstrap, AUDITED_TOPICS, Filter(market_id)):
        if isinstance(item, Record):
            found.add(item.topic, item.envelope)
    return found
