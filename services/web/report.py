"""A market's report page, drawn from the web app's read models with the market report's charts.

The figures are the same `haggle.market.charts` the CLI's `--html` file uses, fed a
report-shaped dict: deals (price, catalogue value, time), concessions (offers by round,
per side), approvals, disputes and settlement outcomes. Public facts only. Drawing is
slow, so a market's figures are kept for a few seconds and drawn off the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import asyncpg
import orjson
from markupsafe import Markup

from haggle.contracts.goods import Condition
from haggle.market import charts
from haggle.market.catalogue import load_catalogue
from services.web.domain import deal_phase

CACHE_SECONDS = 15.0
_CATALOGUE = {entry.title: entry for entry in load_catalogue().entries}
_DRAWING = threading.Lock()
_cache: dict[str, tuple[float, list[tuple[str, Markup]], dict[str, Any]]] = {}


def reference_cents(title: str, condition: str | None) -> int | None:
    """The catalogue's value for an item of that title in that condition, if the catalogue has it."""
    entry = _CATALOGUE.get(title)
    return entry.value_cents(Condition(condition)) if entry is not None and condition else None


async def market_report(pool: asyncpg.Pool, market_id: str) -> dict[str, Any]:
    deals = await pool.fetch(
        "SELECT d.deal_id, d.price_cents, d.agreed_at, l.title, l.condition,"
        " coalesce(array_agg(e.type) FILTER (WHERE e.type IS NOT NULL), '{}') AS events"
        " FROM deals d LEFT JOIN listings l USING (listing_id) LEFT JOIN deal_events e USING (deal_id)"
        " WHERE d.market_id = $1 GROUP BY d.deal_id, l.title, l.condition LIMIT 20000",
        market_id,
    )
    offers = await pool.fetch(
        "SELECT i.by_party, i.round, i.price_cents FROM thread_items i JOIN threads t USING (thread_id)"
        " WHERE t.market_id = $1 AND i.kind = 'offer' LIMIT 50000",
        market_id,
    )
    approvals = await pool.fetch(
        "SELECT status, count(*) AS n FROM approvals WHERE market_id = $1 GROUP BY status", market_id
    )
    phases = [deal_phase(d["events"]).value for d in deals]
    return {
        "market_id": market_id,
        "deals_agreed": len(deals),
        "deals": [
            {
                "price_cents": d["price_cents"],
                "reference_cents": reference_cents(d["title"] or "", d["condition"]),
                "agreed_at": d["agreed_at"].isoformat(),
            }
            for d in deals
        ],
        "concessions": [
            {"series": o["by_party"], "round": o["round"], "price_cents": o["price_cents"]} for o in offers
        ],
        "approvals": {r["status"]: int(r["n"]) for r in approvals},
        "settlements": {phase: phases.count(phase) for phase in sorted(set(phases))},
        "disputes": await _disputes(pool, market_id),
    }


async def _disputes(pool: asyncpg.Pool, market_id: str) -> dict[str, dict[str, int]]:
    rows = await pool.fetch(
        "SELECT e.type, e.payload FROM deal_events e JOIN deals d USING (deal_id)"
        " WHERE d.market_id = $1 AND e.type IN ('DisputeOpened', 'DisputeResolved')",
        market_id,
    )
    by_reason: dict[str, int] = {}
    by_outcome: dict[str, int] = {}
    for row in rows:
        payload = orjson.loads(row["payload"])
        if row["type"] == "DisputeOpened":
            by_reason[payload["reason"]] = by_reason.get(payload["reason"], 0) + 1
        else:
            by_outcome[payload["outcome"]] = by_outcome.get(payload["outcome"], 0) + 1
    return {"by_reason": by_reason, "by_outcome": by_outcome}


def _draw(report: dict[str, Any]) -> list[tuple[str, Markup]]:
    with _DRAWING:  # pyplot keeps global state: one drawing at a time
        return charts.figures(report)


async def figures(pool: asyncpg.Pool, market_id: str) -> tuple[list[tuple[str, Markup]], dict[str, Any]]:
    cached = _cache.get(market_id)
    if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
        return cached[1], cached[2]
    report = await market_report(pool, market_id)
    drawn = await asyncio.to_thread(_draw, report)
    _cache[market_id] = (time.monotonic(), drawn, report)
    return drawn, report
