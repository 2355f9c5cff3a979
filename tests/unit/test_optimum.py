"""haggle.market.optimum: maximum-weight matching of wants to listings, checked by hand and brute force."""

from __future__ import annotations

import itertools
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.market.optimum import (
    Edge,
    is_edge,
    max_weight_matching,
    most_trades_within_budgets,
    optimum,
    within_budgets,
)
from tests.unit.market_builders import sale, want


def _total(matches: tuple[Edge, ...]) -> int:
    return sum(m.surplus_cents for m in matches)


GREEDY_TRAP = [
    Edge("A", "X", 10),
    Edge("A", "Y", 9),
    Edge("B", "X", 9),
    Edge("C", "Y", 8),
    Edge("C", "Z", 5),
]


def test_three_by_three_where_greedy_is_wrong() -> None:
    # Greedy takes A-X (10), leaving B nothing and C-Y (8): 18. The optimum is A-Y, B-X, C-Z: 23.
    matches = max_weight_matching(GREEDY_TRAP)
    assert _total(matches) == 23
    assert {(m.want_id, m.listing_id) for m in matches} == {("A", "Y"), ("B", "X"), ("C", "Z")}


def test_each_want_and_each_listing_is_used_at_most_once() -> None:
    matches = max_weight_matching([Edge("A", "X", 5), Edge("A", "Y", 7), Edge("B", "Y", 3)])
    assert [(m.want_id, m.listing_id) for m in matches] == [("A", "X"), ("B", "Y")]
    assert _total(matches) == 8
    alone = max_weight_matching([Edge("A", "X", 5), Edge("A", "Y", 7), Edge("B", "Y", 1)])
    assert [(m.want_id, m.listing_id) for m in alone] == [("A", "Y")]


def test_empty_market_and_no_feasible_edges_give_zero() -> None:
    assert max_weight_matching([]) == ()
    assert optimum([], []).surplus_cents == 0
    # A buyer whose max is below the floor: no edge, no surplus.
    best = optimum([want("w1", "bob", 9_000)], [sale("s1", "alice", 10_000)])
    assert (best.surplus_cents, best.matches, best.feasible_edges) == (0, (), 0)


def test_a_principal_cannot_buy_its_own_listing() -> None:
    items = [sale("s1", "alice", 10_000), sale("s2", "carol", 12_000)]
    wants = [want("w1", "alice", 20_000)]
    best = optimum(wants, items)
    assert [(m.want_id, m.listing_id) for m in best.matches] == [("w1", "s2")]
    assert best.surplus_cents == 8_000


def test_the_true_condition_decides_not_the_listed_one() -> None:
    liar = sale("s1", "alice", 5_000, condition=Condition.LIKE_NEW, true_condition=Condition.ACCEPTABLE)
    honest = sale("s2", "carol", 9_000, condition=Condition.GOOD)
    strict = want("w1", "bob", 15_000, min_condition=Condition.GOOD)
    assert not is_edge(strict, liar) and is_edge(strict, honest)
    assert optimum([strict], [liar, honest]).surplus_cents == 6_000
    lenient = want("w2", "dan", 15_000, min_condition=Condition.ACCEPTABLE)
    assert is_edge(lenient, liar)


def test_surplus_subtracts_the_cheapest_offered_shipping() -> None:
    shipped = {ShippingMethod.PARCEL_SMALL: 800, ShippingMethod.PARCEL_STANDARD: 1_500}
    best = optimum([want("w1", "bob", 12_000)], [sale("s1", "alice", 10_000, shipping=shipped)])
    assert best.surplus_cents == 12_000 - 10_000 - 800


def test_matching_needs_category_and_every_keyword() -> None:
    item = sale("s1", "alice", 1_000, title="Canon EF 50mm f/1.8 STM lens", category="photography")
    assert is_edge(want("w1", "bob", 5_000, keywords=("50mm", "canon"), category="photography"), item)
    assert not is_edge(want("w2", "bob", 5_000, keywords=("50mm", "nikon"), category="photography"), item)
    assert not is_edge(want("w3", "bob", 5_000, keywords=("50mm",), category="electronics"), item)


def test_ties_resolve_the_same_way_whatever_the_edge_order() -> None:
    edges = [Edge(w, x, 10) for w in ("A", "B", "C") for x in ("X", "Y", "Z")]
    first = max_weight_matching(edges)
    assert _total(first) == 30
    rng = random.Random(3)
    for _ in range(5):
        rng.shuffle(edges)
        assert max_weight_matching(edges) == first


def _brute_force(edges: list[Edge]) -> int:
    weights = {(e.want_id, e.listing_id): e.surplus_cents for e in edges}
    wants = sorted({e.want_id for e in edges})
    listings = sorted({e.listing_id for e in edges})
    best = 0
    padded = listings + [None] * len(wants)
    for choice in itertools.permutations(padded, len(wants)):
        best = max(best, sum(weights.get((w, x), 0) for w, x in zip(wants, choice, strict=True) if x))
    return best


@st.composite
def _edge_sets(draw: st.DrawFn) -> list[Edge]:
    wants = [f"w{i}" for i in range(draw(st.integers(1, 4)))]
    listings = [f"l{i}" for i in range(draw(st.integers(1, 4)))]
    pairs = draw(st.lists(st.sampled_from(list(itertools.product(wants, listings))), unique=True))
    return [Edge(w, x, draw(st.integers(1, 1_000_000))) for w, x in pairs]


@settings(max_examples=150, deadline=None)
@given(_edge_sets())
def test_it_matches_brute_force_on_small_markets(edges: list[Edge]) -> None:
    matches = max_weight_matching(edges)
    assert _total(matches) == _brute_force(edges)
    assert len({m.want_id for m in matches}) == len(matches) == len({m.listing_id for m in matches})
    assert set(matches) <= set(edges)


# Within budgets: buyer B has $100; two listings it wants cost $60 and $50 at their floors (asking
# twice that). A third, cheap listing ($10 floor) adds little surplus but is one more trade. Each
# want matches one listing only (its category).
def _budgeted_market():  # type: ignore[no-untyped-def]
    items = [sale(i, "S", floor, category=i) for i, floor in (("X", 6_000), ("Y", 5_000), ("Z", 1_000))]
    wants = [
        want(w, "B", top, category=c)
        for w, top, c in (("w1", 9_000, "X"), ("w2", 8_000, "Y"), ("w3", 1_200, "Z"))
    ]
    return wants, items, {"B": 10_000}


def test_within_budgets_keeps_each_buyer_inside_its_budget() -> None:
    wants, items, budgets = _budgeted_market()
    blind = optimum(wants, items)
    best = within_budgets(wants, items, budgets)
    # Budget-blind: all three trades (3,000 + 3,000 + 200). Within $100 ($110 for X and Y): one of
    # them (3,000) and Z (200).
    assert blind.surplus_cents == 6_200
    assert best.best.surplus_cents == 3_200
    assert sum(_floor(items, m.listing_id) for m in best.best.matches) <= budgets["B"]


def test_most_trades_counts_trades_not_surplus() -> None:
    wants, items, budgets = _budgeted_market()
    at_floors = most_trades_within_budgets(wants, items, budgets)
    at_asking = most_trades_within_budgets(wants, items, budgets, at_asking=True)
    assert at_floors.best.surplus_cents == 2  # one of X/Y plus Z: $70 or $60 of $100
    assert at_asking.best.surplus_cents == 1  # asking doubles every cost: $120, $100, $20 → one fits
    assert {m.listing_id for m in at_asking.best.matches} <= {"Y", "Z"}


def _floor(items: list, listing_id: str) -> int:  # type: ignore[type-arg]
    return next(i.floor_cents + i.cheapest_shipping_cents for i in items if i.id == listing_id)
