"""The most surplus a market could have produced: a maximum-weight matching of wants to listings.

Welfare of one trade is the buyer's value minus the seller's reservation minus
what the carrier is paid: `max_price - floor - cheapest offered shipping`.
Who pays the shipping and at what price they agree only moves surplus
between the two sides, never changes the sum (the buyer's max includes the
shipping it pays; the seller's floor is net of the shipping it pays).

A want and a listing are joined by an edge when:
- the want matches the listing as an agent would see it (category, keywords);
- the listing's TRUE condition meets the want's minimum. The listed
  condition is never worse than the truth, so the agent would also accept
  the listing as described; an item worse than the buyer's minimum is
  worth nothing to the buyer (it would be disputed and refunded), so a
  misdescribed listing is an edge only for buyers its real state satisfies;
- the seller is not the buyer;
- the trade's surplus is positive (a zero-surplus trade adds nothing).
Each listing sells at most once and each want is filled at most once.
Budgets are not coupled: each want's max price is already within its
principal's budget, but one principal's wants may together exceed it. The
optimum is therefore an upper bound and the efficiency it yields is
conservative (never flattering).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from haggle.market.goods import SaleItem, WantSpec


@dataclass(frozen=True, slots=True, order=True)
class Edge:
    want_id: str
    listing_id: str
    surplus_cents: int


@dataclass(frozen=True, slots=True)
class Optimum:
    surplus_cents: int
    matches: tuple[Edge, ...]
    feasible_edges: int

    def listing_for(self, want_id: str) -> str | None:
        return next((m.listing_id for m in self.matches if m.want_id == want_id), None)


def trade_surplus_cents(want: WantSpec, item: SaleItem) -> int:
    return want.max_price_cents - item.floor_cents - item.cheapest_shipping_cents


def is_edge(want: WantSpec, item: SaleItem) -> bool:
    """Whether this want and listing could trade to mutual gain (see the module docstring)."""
    return (
        item.seller_id != want.buyer_id
        and want.matches(item)
        and item.true_condition.at_least(want.min_condition)
        and trade_surplus_cents(want, item) > 0
    )


def feasible_edges(wants: Sequence[WantSpec], listings: Sequence[SaleItem]) -> list[Edge]:
    by_category: dict[str, list[SaleItem]] = {}
    for item in sorted(listings, key=lambda item: item.id):
        by_category.setdefault(item.category, []).append(item)
    return [
        Edge(want.id, item.id, trade_surplus_cents(want, item))
        for want in sorted(wants, key=lambda want: want.id)
        for item in by_category.get(want.category, ())
        if is_edge(want, item)
    ]


def max_weight_matching(edges: Sequence[Edge]) -> tuple[Edge, ...]:
    """A maximum-weight matching (each want and each listing used at most once), sorted by want id.

    Ties resolve the same way for the same edge set, whatever order the edges come in.
    """
    positive = [edge for edge in edges if edge.surplus_cents > 0]
    if not positive:
        return ()
    want_ids = sorted({edge.want_id for edge in positive})
    listing_ids = sorted({edge.listing_id for edge in positive})
    row = {want_id: index for index, want_id in enumerate(want_ids)}
    col = {listing_id: index for index, listing_id in enumerate(listing_ids)}
    weights = np.zeros((len(want_ids), len(listing_ids)), dtype=np.int64)
    for edge in positive:
        r, c = row[edge.want_id], col[edge.listing_id]
        weights[r, c] = max(weights[r, c], edge.surplus_cents)
    rows, cols = linear_sum_assignment(weights, maximize=True)
    return tuple(
        Edge(want_ids[r], listing_ids[c], int(weights[r, c]))
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
        if weights[r, c] > 0
    )


def consented(want: WantSpec, item: SaleItem, consent_limits: Mapping[str, int]) -> bool:
    """Whether the buyer would approve the trade at its cheapest: the floor plus the cheapest shipping."""
    limit = consent_limits.get(want.buyer_id)
    return limit is None or item.floor_cents + item.cheapest_shipping_cents <= limit


def optimum(
    wants: Sequence[WantSpec], listings: Sequence[SaleItem], consent_limits: Mapping[str, int] | None = None
) -> Optimum:
    """The best matching; with `consent_limits`, only trades each buyer would approve (see
    `haggle.market.approvals`)."""
    edges = feasible_edges(wants, listings)
    if consent_limits:
        items = {item.id: item for item in listings}
        by_id = {want.id: want for want in wants}
        edges = [e for e in edges if consented(by_id[e.want_id], items[e.listing_id], consent_limits)]
    matches = max_weight_matching(edges)
    return Optimum(sum(m.surplus_cents for m in matches), matches, len(edges))
