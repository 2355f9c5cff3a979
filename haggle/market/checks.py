"""The report's `invariants`, each from an actual check on what happened — never assumed.

- `ledger_balanced`: the settlement ledger's own checks (sum zero, no negative
  wallet, each escrow resolved at most once, releases match prices less fees).
- `no_listing_sold_twice`: from the events: at most one released deal and at
  most one `ListingSold` per listing.
- `no_mandate_broken`: from the events against the population's private
  limits: no seller offer or deal under its floor, no buyer offer or deal over
  its max, and no buyer's agreed deals over its budget.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import asyncpg

from haggle.contracts import Envelope
from haggle.market.collect import Scope
from haggle.market.population import Population


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


def no_listing_sold_twice(seen: list[tuple[str, Envelope]]) -> tuple[bool, list[str]]:
    sold = Counter(e.payload["listing_id"] for _, e in seen if e.type == "ListingSold")
    released = Counter(e.payload["listing_id"] for _, e in seen if e.type == "FundsReleased")
    twice = sorted({lid for lid, n in (sold + released).items() if sold[lid] > 1 or released[lid] > 1})
    return not twice, twice


def _limits(population: Population) -> tuple[dict[str, int], dict[str, list[Any]], dict[str, int]]:
    floors = {item.id: item.floor_cents for item in population.listings()}
    wants: dict[str, list[Any]] = defaultdict(list)
    for want in population.wants():
        wants[want.buyer_id].append(want)
    budgets = {p.id: p.budget_cents for p in population.principals}
    return floors, wants, budgets


def no_mandate_broken(
    seen: list[tuple[str, Envelope]], population: Population, scope: Scope
) -> tuple[bool, list[str]]:
    floors, wants, budgets = _limits(population)
    items = {item.id: item for item in population.listings()}
    broken: list[str] = []
    spent: Counter[str] = Counter()
    for _, env in seen:
        p = env.payload
        if env.type == "OfferMade":
            item_id, agent = scope.unscope(p["listing_id"]), scope.unscope(p["agent_id"])
            total = p["price_cents"] + (p["shipping_cost_cents"] if p["shipping_paid_by"] == "buyer" else 0)
            net = p["price_cents"] - (p["shipping_cost_cents"] if p["shipping_paid_by"] == "seller" else 0)
            if p["by"] == "seller" and net < floors.get(item_id, 0):
                broken.append(f"{agent} offered {item_id} under its floor")
            if p["by"] == "buyer" and total > _buyer_cap(wants.get(agent, []), items.get(item_id)):
                broken.append(f"{agent} offered over its max for {item_id}")
        elif env.type == "DealAgreed":
            item_id, buyer = scope.unscope(p["listing_id"]), scope.unscope(p["buyer_principal_id"])
            total = p["price_cents"] + (p["shipping_cost_cents"] if p["shipping_paid_by"] == "buyer" else 0)
            net = p["price_cents"] - (p["shipping_cost_cents"] if p["shipping_paid_by"] == "seller" else 0)
            if net < floors.get(item_id, 0):
                broken.append(f"deal {p['deal_id']} under the seller's floor")
            if total > _buyer_cap(wants.get(buyer, []), items.get(item_id)):
                broken.append(f"deal {p['deal_id']} over the buyer's max")
            spent[buyer] += total
    broken += [
        f"{b} agreed {n} cents over a {budgets[b]} budget" for b, n in spent.items() if n > budgets.get(b, 0)
    ]
    return not broken, broken


def _buyer_cap(wants: list[Any], item: Any) -> int:
    """The highest private max among the buyer's wants this item could fill (0: none could)."""
    if item is None:
        return 0
    return max((w.max_price_cents for w in wants if w.matches(item)), default=0)


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
