"""The report's `invariants`, each from an actual check on what happened — never assumed.

- `ledger_balanced`: the settlement ledger's own checks (sum zero, no negative
  wallet, each escrow resolved at most once, releases match prices less fees).
- `no_listing_sold_twice`: from the events: at most one released deal and at
  most one `ListingSold` per listing.
- `no_mandate_broken`: from the events against the population's private
  limits: no seller offer or deal under its floor, no buyer offer or deal over
  its max, and no buyer's agreed deals over its budget.
- `market_closed`: an operator-signed `MarketClosed` for the market was seen, and
  the services all say closed.
- `no_negotiation_after_close`: no `ThreadOpened` stamped after the moment the
  referee saw the market start closing.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from haggle.contracts import Envelope
from haggle.contracts.market import MarketPhase
from haggle.contracts.negotiation import Party, buyer_total_cents, seller_net_cents
from haggle.market.collect import Scope
from haggle.market.facts import ModelUsageFact
from haggle.market.lifecycle import MarketView
from haggle.market.population import Population
from haggle.runtime import operators


async def ledger_balanced(database_url: str, market_id: str) -> tuple[bool, list[str]]:
    # The operator's tool reads the ledger the way `haggle ledger check` does.
    from services.settlement.check import run_checks

    conn = await asyncpg.connect(database_url, server_settings={"search_path": "settlement,public"})
    try:
        results = await run_checks(conn, market_id)
    finally:
        await conn.close()
    return all(r.ok for r in results), [
        f"{r.name}: {', '.join(r.offenders[:5])}" for r in results if not r.ok
    ]


def market_closed(seen: list[tuple[str, Envelope]], view: MarketView) -> dict[str, bool]:
    closed = any(e.type == "MarketClosed" and operators.is_operator(e) for _, e in seen)
    closing_at = datetime.fromisoformat(view.closing_at) if view.closing_at else None
    late = [
        e for _, e in seen if e.type == "ThreadOpened" and (closing_at is None or e.occurred_at > closing_at)
    ]
    return {
        "market_closed": closed and view.all_in(MarketPhase.CLOSED),
        "no_negotiation_after_close": not late,
    }


def no_listing_sold_twice(seen: list[tuple[str, Envelope]]) -> tuple[bool, list[str]]:
    sold = Counter(e.payload["listing_id"] for _, e in seen if e.type == "ListingSold")
    released = Counter(e.payload["listing_id"] for _, e in seen if e.type == "FundsReleased")
    twice = sorted({lid for lid, n in (sold + released).items() if sold[lid] > 1 or released[lid] > 1})
    return not twice, twice


@dataclass(frozen=True)
class _Limits:
    """The population's private limits, looked up by the population's ids."""

    floors: dict[str, int]
    wants: dict[str, list[Any]]
    items: dict[str, Any]
    budgets: dict[str, int]

    @classmethod
    def of(cls, population: Population) -> _Limits:
        wants: dict[str, list[Any]] = defaultdict(list)
        for want in population.wants():
            wants[want.buyer_id].append(want)
        items = {item.id: item for item in population.listings()}
        floors = {item_id: item.floor_cents for item_id, item in items.items()}
        return cls(floors, wants, items, {p.id: p.budget_cents for p in population.principals})

    def under_floor(self, item_id: str, net: int) -> bool:
        return net < self.floors.get(item_id, 0)

    def over_max(self, buyer: str, item_id: str, total: int) -> bool:
        """Over the highest private max among the buyer's wants this item could fill (none: any price)."""
        item = self.items.get(item_id)
        cap = max(
            (w.max_price_cents for w in self.wants.get(buyer, []) if item and w.matches(item)), default=0
        )
        return total > cap


def no_mandate_broken(
    seen: list[tuple[str, Envelope]], population: Population, scope: Scope
) -> tuple[bool, list[str]]:
    limits = _Limits.of(population)
    broken: list[str] = []
    for _, env in seen:
        p = env.payload
        if env.type not in ("OfferMade", "DealAgreed"):
            continue
        item_id, total, net = scope.unscope(p["listing_id"]), *_money(p)
        offer = env.type == "OfferMade"
        what = f"{env.type} {p.get('offer_id') or p.get('deal_id')} on {item_id}"
        if (not offer or p["by"] == "seller") and limits.under_floor(item_id, net):
            broken.append(f"{what}: under the seller's floor")
        buyer = scope.unscope(p["agent_id"] if offer else p["buyer_principal_id"])
        if (not offer or p["by"] == "buyer") and limits.over_max(buyer, item_id, total):
            broken.append(f"{what}: over the buyer's max")
    broken += _budget_problems(seen, scope, limits.budgets)
    return not broken, broken


def _money(p: dict[str, Any]) -> tuple[int, int]:
    """(what the buyer pays in total, what the seller nets) under the offer's shipping terms."""
    price, cost, payer = p["price_cents"], p["shipping_cost_cents"], Party(p["shipping_paid_by"])
    return buyer_total_cents(price, cost, payer), seller_net_cents(price, cost, payer)


def _budget_problems(seen: list[tuple[str, Envelope]], scope: Scope, budgets: dict[str, int]) -> list[str]:
    """At no moment may a buyer's live deals (agreed, not failed or refunded) exceed its budget.
    Events are replayed in the order they happened (all services stamp one clock here)."""
    live: dict[str, tuple[str, int]] = {}
    owed: Counter[str] = Counter()
    found = []
    for env in sorted((env for _, env in seen), key=lambda e: e.occurred_at):
        p = env.payload
        if env.type == "DealAgreed" and p["deal_id"] not in live:
            buyer = scope.unscope(p["buyer_principal_id"])
            live[p["deal_id"]] = (buyer, _money(p)[0])
            owed[buyer] += live[p["deal_id"]][1]
            if owed[buyer] > budgets.get(buyer, 0):
                found.append(f"{buyer} owed {owed[buyer]} cents on a {budgets.get(buyer, 0)} budget")
        elif env.type in ("EscrowFailed", "Refunded") and p["deal_id"] in live:
            buyer, amount = live.pop(p["deal_id"])
            owed[buyer] -= amount
    return found


async def guard_refusals(database_url: str, scope: Scope) -> dict[str, int]:
    """Reasons the agents' guards refused their brains in this market (from the agents' audit table)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT reason, count(*) AS n FROM agents.moves, unnest(refusal_reasons) AS reason"
            " WHERE principal_id LIKE $1 || '%' GROUP BY reason",
            scope.prefix,
        )
    finally:
        await conn.close()
    return {r["reason"]: int(r["n"]) for r in rows}


async def model_usage(database_url: str, scope: Scope) -> ModelUsageFact:
    """Tokens and estimated dollars of this market's model brains (from the agents' usage table)."""
    conn = await asyncpg.connect(database_url)
    try:
        per_principal = await conn.fetch(
            "SELECT principal_id,"
            " sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens) AS tokens,"
            " sum(micro_dollars) AS micro FROM agents.model_usage"
            " WHERE principal_id LIKE $1 || '%' GROUP BY principal_id",
            scope.prefix,
        )
        row = await conn.fetchrow(
            "SELECT coalesce(sum(input_tokens), 0) AS i, coalesce(sum(output_tokens), 0) AS o,"
            " coalesce(sum(cache_read_tokens), 0) AS r, coalesce(sum(cache_write_tokens), 0) AS w,"
            " coalesce(sum(micro_dollars), 0) AS d, count(DISTINCT (principal_id, listing_id)) AS n"
            " FROM agents.model_usage WHERE principal_id LIKE $1 || '%'",
            scope.prefix,
        )
    finally:
        await conn.close()
    assert row is not None
    return ModelUsageFact(
        input_tokens=row["i"],
        output_tokens=row["o"],
        cache_read_tokens=row["r"],
        cache_write_tokens=row["w"],
        micro_dollars=row["d"],
        negotiations=row["n"],
        tokens_by_principal={scope.unscope(r["principal_id"]): int(r["tokens"]) for r in per_principal},
        micro_dollars_by_principal={scope.unscope(r["principal_id"]): int(r["micro"]) for r in per_principal},
    )
