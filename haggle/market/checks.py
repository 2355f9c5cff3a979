"""The report's `invariants`, each from an actual check on what happened — never assumed.

- `ledger_balanced`: the settlement ledger's own checks (sum zero, no negative
  wallet, each escrow resolved at most once, releases match prices less fees),
  asked of the settlement service over HTTP; the guards' refusals and the model
  usage are asked of the agents service the same way. No check reads another
  service's tables.
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

import httpx

from haggle import procs
from haggle.contracts import Envelope
from haggle.contracts.market import MarketPhase
from haggle.contracts.negotiation import Party, buyer_total_cents, seller_net_cents
from haggle.market.collect import Scope
from haggle.market.facts import ModelUsageFact
from haggle.market.lifecycle import MarketView
from haggle.market.population import Population
from haggle.runtime import operators


async def ledger_balanced(market_id: str, settlement_url: str | None = None) -> tuple[bool, list[str]]:
    """Settlement's own ledger checks for the market, asked over its HTTP API (`GET /ledger/checks`)."""
    found = await _ask(settlement_url or procs.url_for("settlement"), "/ledger/checks", market_id)
    failed = [c for c in found["checks"] if not c["ok"]]
    return not failed, [f"{c['name']}: {', '.join(c['offenders'][:5])}" for c in failed]


@dataclass(frozen=True)
class AgentsUsage:
    """What the agents report of one market (`GET /usage`): guard refusals and model usage."""

    guard_refusals: dict[str, int]
    model_usage: ModelUsageFact


async def agents_usage(scope: Scope, agents_url: str | None = None) -> AgentsUsage:
    found = await _ask(agents_url or procs.url_for("agents"), "/usage", scope.market_id)
    usage = found["model_usage"]
    return AgentsUsage(
        guard_refusals={reason: int(n) for reason, n in found["guard_refusals"].items()},
        model_usage=ModelUsageFact(
            **{k: v for k, v in usage.items() if not k.endswith("_by_principal")},
            tokens_by_principal={scope.unscope(p): n for p, n in usage["tokens_by_principal"].items()},
            micro_dollars_by_principal={
                scope.unscope(p): n for p, n in usage["micro_dollars_by_principal"].items()
            },
        ),
    )


async def _ask(base_url: str, path: str, market_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{base_url}{path}", params={"market": market_id})
        response.raise_for_status()
        found: dict[str, Any] = response.json()
        return found


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
    """Counted by event id: a relay that publishes an event again after a crash (before it could
    mark it sent) delivers the same sale twice, which consumers drop; two sales are two events."""

    def by_listing(kind: str) -> Counter[str]:
        events = {(e.payload["listing_id"], e.event_id) for _, e in seen if e.type == kind}
        return Counter(listing_id for listing_id, _ in events)

    sold, released = by_listing("ListingSold"), by_listing("FundsReleased")
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
