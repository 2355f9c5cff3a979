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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, linear_sum_assignment, milp

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


BUDGET_SOLVE_SECONDS = 60.0
"""A safety net only: the gap stops the solver long before (69 × 500: at the root node, 1.5–4 s
CPU). Were it ever hit, the answer would depend on the machine's load; the gap is reported."""
BUDGET_GAP = 0.01
"""The solver stops once its best matching is proven within 1% of the optimum: the last fraction of
a percent costs most of the time (69 × 500: 1.5 s CPU for a 0.9% gap, over 10 s for 0.2%). A
stop on the gap, not on the clock, gives the same answer however busy the machine is (as long
as the safety net above is not hit). The gap found is reported beside the figure."""


@dataclass(frozen=True, slots=True)
class BudgetOptimum:
    best: Optimum
    gap: float
    """How far the solver's proven bound is above `best` (0: proven optimal), relative to it."""


def within_budgets(
    wants: Sequence[WantSpec],
    listings: Sequence[SaleItem],
    budgets: Mapping[str, int],
    consent_limits: Mapping[str, int] | None = None,
    seconds: float = BUDGET_SOLVE_SECONDS,
) -> BudgetOptimum:
    """The best matching every buyer could pay for even at the sellers' floors: each buyer's trades
    cost at most its budget (floor plus cheapest shipping each). An integer program (scipy's
    `milp`, HiGHS) that stops within `BUDGET_GAP` of the optimum (or after `seconds`); the best
    matching found, and how far from proven optimal. An upper bound on what a market can realise
    (no price is below a floor), and at most `optimum`. Markets side by side over the same goods,
    wants and budgets (`--parallel`) solve it once."""
    edges, buyers, costs, limits = _budgeted(wants, listings, budgets, consent_limits, _cost)
    return _solve(edges, buyers, costs, limits, seconds)


def most_trades_within_budgets(
    wants: Sequence[WantSpec],
    listings: Sequence[SaleItem],
    budgets: Mapping[str, int],
    consent_limits: Mapping[str, int] | None = None,
    *,
    at_asking: bool = False,
    seconds: float = BUDGET_SOLVE_SECONDS,
) -> BudgetOptimum:
    """The most trades the buyers' budgets allow, whatever their surplus: each trade at the seller's
    floor plus the cheapest shipping (the least any market can charge), or with `at_asking` at the
    asking price plus it. Its `surplus_cents` is the number of trades (each edge weighs 1): a
    ceiling on the listings any market with these budgets can sell (`bench.market_bounds`)."""
    price = _asking if at_asking else _cost
    edges, buyers, costs, limits = _budgeted(wants, listings, budgets, consent_limits, price)
    counted = tuple(Edge(e.want_id, e.listing_id, 1) for e in edges)
    return _solve(counted, buyers, costs, limits, seconds)


def _budgeted(
    wants: Sequence[WantSpec],
    listings: Sequence[SaleItem],
    budgets: Mapping[str, int],
    consent_limits: Mapping[str, int] | None,
    price: Callable[[SaleItem], int],
) -> tuple[tuple[Edge, ...], tuple[str, ...], tuple[int, ...], tuple[tuple[str, int], ...]]:
    """The consented edges, each with its buyer and `price`, and each buyer's budget: `_solve`'s input."""
    items = {item.id: item for item in listings}
    by_id = {want.id: want for want in wants}
    edges = tuple(
        e
        for e in feasible_edges(wants, listings)
        if consented(by_id[e.want_id], items[e.listing_id], consent_limits or {})
    )
    buyers = tuple(by_id[e.want_id].buyer_id for e in edges)
    costs = tuple(price(items[e.listing_id]) for e in edges)
    limits = tuple(sorted((buyer, budgets.get(buyer, 0)) for buyer in set(buyers)))
    return edges, buyers, costs, limits


@lru_cache(maxsize=4)
def _solve(
    edges: tuple[Edge, ...],
    buyers: tuple[str, ...],
    costs: tuple[int, ...],
    limits: tuple[tuple[str, int], ...],
    seconds: float,
) -> BudgetOptimum:
    """`within_budgets` on its edges: each with its buyer and its cost; `limits`: buyer → budget."""
    if not edges:
        return BudgetOptimum(Optimum(0, (), 0), 0.0)
    budgets = dict(limits)
    entries: list[tuple[int, int, float]] = []
    bounds: list[float] = []
    groups = [
        *_groups(edges, lambda i: edges[i].want_id).values(),
        *_groups(edges, lambda i: edges[i].listing_id).values(),
    ]
    for members in groups:
        entries += [(len(bounds), i, 1.0) for i in members]
        bounds.append(1.0)
    for buyer, members in _groups(edges, lambda i: buyers[i]).items():
        entries += [(len(bounds), i, float(costs[i])) for i in members]
        bounds.append(float(budgets[buyer]))
    r, c, v = zip(*entries, strict=True)
    matrix = sparse.csr_array((v, (r, c)), shape=(len(bounds), len(edges)))
    weights = -np.array([e.surplus_cents for e in edges], dtype=float)
    constraint = LinearConstraint(matrix, -np.inf, np.array(bounds))
    result = milp(
        c=weights,
        constraints=constraint,
        integrality=np.ones(len(edges)),
        bounds=Bounds(0, 1),
        options={"time_limit": seconds, "mip_rel_gap": BUDGET_GAP},
    )
    if result.x is not None:
        chosen = tuple(sorted(e for e, x in zip(edges, result.x, strict=True) if x > 0.5))
        bound = -float(getattr(result, "mip_dual_bound", None) or result.fun)
    else:  # too large to solve in time: a greedy matching, and the linear relaxation as its bound
        chosen = _greedy(edges, buyers, costs, budgets)
        relaxed = milp(
            c=weights, constraints=constraint, bounds=Bounds(0, 1), options={"time_limit": seconds}
        )
        bound = -float(relaxed.fun) if relaxed.fun is not None else float(sum(e.surplus_cents for e in edges))
    total = sum(e.surplus_cents for e in chosen)
    return BudgetOptimum(Optimum(total, chosen, len(edges)), max(0.0, bound / total - 1) if total else 0.0)


def _greedy(
    edges: Sequence[Edge], buyers: Sequence[str], costs: Sequence[int], budgets: Mapping[str, int]
) -> tuple[Edge, ...]:
    left = dict(budgets)
    used: set[str] = set()
    chosen = []
    order = sorted(
        range(len(edges)), key=lambda i: (-edges[i].surplus_cents, edges[i].want_id, edges[i].listing_id)
    )
    for i in order:
        edge, buyer, cost = edges[i], buyers[i], costs[i]
        if edge.want_id in used or edge.listing_id in used or left.get(buyer, 0) < cost:
            continue
        used |= {edge.want_id, edge.listing_id}
        left[buyer] -= cost
        chosen.append(edge)
    return tuple(sorted(chosen))


def _cost(item: SaleItem) -> int:
    return item.floor_cents + item.cheapest_shipping_cents


def _asking(item: SaleItem) -> int:
    return item.asking_price_cents + item.cheapest_shipping_cents


def _groups(edges: Sequence[Edge], key: Callable[[int], str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for index in range(len(edges)):
        found.setdefault(key(index), []).append(index)
    return found
