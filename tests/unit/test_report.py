"""haggle.market.report: figures of a hand-built market, computed by hand; surplus never beats the optimum."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.negotiation import EndReason, Party
from haggle.contracts.settlement import Decider, DisputeOutcome, DisputeReason
from haggle.market.facts import (
    REQUIRED_INVARIANTS,
    ApprovalAnswer,
    ApprovalFact,
    DealFact,
    DisputeFact,
    FactsError,
    MarketFacts,
    ModelUsageFact,
    NegotiationFact,
    SettlementFact,
    SettlementOutcome,
)
from haggle.market.goods import SaleItem
from haggle.market.optimum import feasible_edges, optimum
from haggle.market.population import Population, build_population
from haggle.market.render import render, render_comparison
from haggle.market.report import build_report, p90
from tests.unit.market_builders import population, sale, want

SMALL = {ShippingMethod.PARCEL_SMALL: 800, ShippingMethod.LOCAL_PICKUP: 0}
HEADPHONES = sale("L1", "alice", 10_000, asking=15_000, reference=14_000, shipping=SMALL)
LENS = sale(
    "L2",
    "alice",
    6_000,
    asking=10_000,
    reference=9_000,
    title="Canon EF 50mm f/1.8 STM lens",
    category="photography",
    condition=Condition.LIKE_NEW,
    true_condition=Condition.GOOD,
    shipping={ShippingMethod.PARCEL_SMALL: 600},
)
CONSOLE = sale(
    "L3",
    "carol",
    10_000,
    asking=13_000,
    reference=12_000,
    title="Nintendo Switch Lite handheld console",
    category="gaming",
    condition=Condition.GOOD,
    shipping={ShippingMethod.PARCEL_SMALL: 700},
)
GUITAR = sale(
    "L4",
    "bob",
    12_000,
    asking=17_000,
    reference=15_500,
    title="Yamaha FG800 acoustic guitar",
    category="music",
    condition=Condition.GOOD,
    shipping={ShippingMethod.PARCEL_STANDARD: 1_200},
)
WANTS = [
    want("W1", "bob", 16_000),
    want("W2", "bob", 11_000, keywords=("50mm",), category="photography", min_condition=Condition.VERY_GOOD),
    want("W3", "carol", 13_000),
    want(
        "W4",
        "alice",
        12_500,
        keywords=("switch lite",),
        category="gaming",
        min_condition=Condition.ACCEPTABLE,
    ),
]
POPULATION = population(
    {"alice": "boulware", "bob": "conceder", "carol": "boulware"}, [HEADPHONES, LENS, CONSOLE, GUITAR], WANTS
)
ALL_HELD = dict.fromkeys(REQUIRED_INVARIANTS, True)


def _deal(
    deal_id: str,
    item: SaleItem,
    buyer: str,
    price: int,
    paid_by: Party,
    option: int = 0,
    want_id: str | None = None,
) -> DealFact:
    shipping = item.shipping[option % len(item.shipping)]
    return DealFact(
        deal_id=deal_id,
        listing_id=item.id,
        thread_id=f"t-{deal_id}",
        buyer_principal_id=buyer,
        seller_principal_id=item.seller_id,
        price_cents=price,
        shipping_method=shipping.method,
        shipping_cost_cents=shipping.cost_cents,
        shipping_paid_by=paid_by,
        want_id=want_id,
    )


DEALS = (
    _deal("D1", HEADPHONES, "bob", 14_000, Party.BUYER),  # parcel, 8 dollars
    _deal("D2", LENS, "bob", 9_000, Party.SELLER),  # parcel, 6 dollars
    _deal("D3", CONSOLE, "alice", 11_000, Party.BUYER),  # parcel, 7 dollars
    _deal("D4", GUITAR, "carol", 15_000, Party.BUYER),  # parcel, 12 dollars
)


def _negotiation(
    thread: str, listing: str, buyer: str, seller: str, rounds: int, end: EndReason
) -> NegotiationFact:
    return NegotiationFact(
        thread_id=thread,
        listing_id=listing,
        buyer_principal_id=buyer,
        seller_principal_id=seller,
        rounds=rounds,
        end_reason=end,
    )


def _facts(**changes: Any) -> MarketFacts:
    fields: dict[str, Any] = {
        "market_id": "m-test",
        "population": POPULATION,
        "listing_ids": ("L1", "L2", "L3", "L4"),
        "negotiations": (
            _negotiation("t-D1", "L1", "bob", "alice", 3, EndReason.DEAL),
            _negotiation("t-x", "L1", "carol", "alice", 5, EndReason.LISTING_SOLD),
            _negotiation("t-D2", "L2", "bob", "alice", 2, EndReason.DEAL),
            _negotiation("t-D3", "L3", "alice", "carol", 4, EndReason.DEAL),
            _negotiation("t-D4", "L4", "carol", "bob", 1, EndReason.DEAL),
            _negotiation("t-y", "L3", "bob", "carol", 10, EndReason.REJECTED),
        ),
        "deals": DEALS,
        "settlements": (
            SettlementFact(deal_id="D1", outcome=SettlementOutcome.RELEASED),
            SettlementFact(deal_id="D2", outcome=SettlementOutcome.REFUNDED, reason="condition_worse"),
            SettlementFact(deal_id="D3", outcome=SettlementOutcome.RELEASED),
            SettlementFact(deal_id="D4", outcome=SettlementOutcome.ESCROW_FAILED, reason="approval_expired"),
        ),
        "approvals": (
            ApprovalFact(
                approval_id="A1",
                deal_id="D3",
                principal_id="alice",
                amount_cents=11_700,
                answer=ApprovalAnswer.GRANTED,
            ),
            ApprovalFact(
                approval_id="A2",
                deal_id="D4",
                principal_id="carol",
                amount_cents=16_200,
                answer=ApprovalAnswer.EXPIRED,
            ),
        ),
        "disputes": (
            DisputeFact(
                deal_id="D2",
                reason=DisputeReason.CONDITION_WORSE,
                outcome=DisputeOutcome.REFUND_AFTER_RETURN,
                decided_by=Decider.RULE,
            ),
        ),
        "refusals": {"referee": {"stale_offer": 1, "out_of_turn": 2}, "guard": {"below_floor": 3}},
        "invariants": ALL_HELD,
    }
    return MarketFacts(**(fields | changes))


def test_counts_completion_and_rounds() -> None:
    report = build_report(_facts())
    assert (report.participants, report.listings_published, report.negotiations) == (3, 4, 6)
    assert (report.deals_agreed, report.deals_settled, report.listings_sold) == (4, 2, 2)
    assert report.completion.deals_per_negotiation == pytest.approx(4 / 6)
    assert report.completion.listings_sold_share == 0.5
    # rounds 1, 2, 3, 4, 5, 10: median 3.5; nearest-rank p90 is the 6th value.
    assert (report.rounds.median, report.rounds.p90) == (3.5, 10)


def test_gmv_agreed_and_settled_and_the_median_price() -> None:
    money = build_report(_facts()).money
    assert money.gmv_agreed_cents == 14_000 + 9_000 + 11_000 + 15_000
    assert money.gmv_settled_cents == 14_000 + 11_000
    assert money.median_price_cents == 11_000  # prices 90, 110, 140, 150: the lower middle


def test_approvals_disputes_settlements_and_refusals() -> None:
    report = build_report(_facts())
    a = report.approvals
    assert (a.requested, a.granted, a.denied, a.expired, a.pending) == (2, 1, 0, 1, 0)
    assert report.disputes.by_reason == {"condition_worse": 1}
    assert report.disputes.by_outcome == {"refund_after_return": 1}
    s = report.settlements
    assert (s.released, s.refunded, s.escrow_failed, s.open) == (2, 1, 1, 0)
    assert s.escrow_failures_by_reason == {"approval_expired": 1}
    assert s.refunds_by_reason == {"condition_worse": 1}
    assert report.refused_moves == 6
    assert list(report.refusals) == ["guard", "referee"]
    assert list(report.refusals["referee"]) == ["out_of_turn", "stale_offer"]


def test_surplus_split_and_efficiency_by_hand() -> None:
    surplus = build_report(_facts()).surplus
    # D1: bob values W1 at 160 and pays 140 + 8 shipping; alice nets 140 over a floor of 100.
    # D3: alice values W4 at 125 and pays 110 + 7; carol nets 110 over a floor of 100.
    # D2 was refunded, D4 never funded: they count nothing.
    assert surplus.buyers_cents == (16_000 - 14_800) + (12_500 - 11_700)
    assert surplus.sellers_cents == (14_000 - 10_000) + (11_000 - 10_000)
    assert surplus.realised_cents == 7_000
    # Optimum: W1-L1 (160 - 100 - free pickup) + W4-L3 (125 - 100 - 7); W2 is not met by L2's true condition.
    assert (
        surplus.optimum_cents
        == 6_000 + 1_800
        == optimum(POPULATION.wants(), POPULATION.listings()).surplus_cents
    )
    assert surplus.efficiency == pytest.approx(7_000 / 7_800)
    assert (surplus.optimum_trades, surplus.wants_filled) == (2, 2)


def test_per_variant_deals_prices_and_surplus_share() -> None:
    boulware, conceder = build_report(_facts()).variants
    assert (boulware.variant, boulware.principals, boulware.deals) == ("boulware", 2, 5)
    assert boulware.deals_per_principal == 2.5
    assert boulware.seller_price_index == pytest.approx((1.0 + 1.0 + 11_000 / 12_000) / 3)
    assert boulware.buyer_price_index == pytest.approx((11_000 / 12_000 + 15_000 / 15_500) / 2)
    assert boulware.surplus_cents == 4_000 + 1_000 + 800
    assert boulware.surplus_share == pytest.approx(5_800 / 7_000)
    assert (conceder.principals, conceder.deals, conceder.deals_per_principal) == (1, 3, 3.0)
    assert conceder.seller_price_index == pytest.approx(15_000 / 15_500)
    assert conceder.buyer_price_index == pytest.approx(1.0)
    assert conceder.surplus_cents == 1_200


def test_a_misdescribed_item_kept_by_the_buyer_is_worth_nothing_to_it() -> None:
    settlements = (SettlementFact(deal_id="D2", outcome=SettlementOutcome.RELEASED),)
    surplus = build_report(_facts(settlements=settlements)).surplus
    assert surplus.buyers_cents == -9_000  # W2 wants very good; the lens is only good
    assert surplus.sellers_cents == 9_000 - 600 - 6_000
    assert surplus.efficiency is not None and surplus.efficiency < 0


def test_a_named_want_is_used_and_a_sale_counts_once_per_listing() -> None:
    deals = (DEALS[0].model_copy(update={"want_id": "W1"}), DEALS[0].model_copy(update={"deal_id": "D9"}))
    settlements = tuple(SettlementFact(deal_id=d.deal_id, outcome=SettlementOutcome.RELEASED) for d in deals)
    surplus = build_report(_facts(deals=deals, settlements=settlements, approvals=(), disputes=())).surplus
    assert surplus.realised_cents == 16_000 - 14_800 + 14_000 - 10_000


def test_missing_invariants_fail_loudly_and_a_broken_one_fails_the_report() -> None:
    with pytest.raises(FactsError, match="no_mandate_broken"):
        _facts(invariants={"ledger_balanced": True, "no_listing_sold_twice": True})
    report = build_report(_facts(invariants=ALL_HELD | {"ledger_balanced": False}))
    assert report.ok is False and report.invariants["ledger_balanced"] is False
    assert build_report(_facts()).ok is True


@pytest.mark.parametrize(
    ("changes", "complaint"),
    [
        ({"listing_ids": ("L1", "L9")}, "L9 is not in the population"),
        ({"deals": (DEALS[0].model_copy(update={"seller_principal_id": "carol"}),)}, "not the seller's"),
        ({"deals": (DEALS[0].model_copy(update={"want_id": "W3"}),)}, "not the buyer's"),
        ({"deals": DEALS[:1]}, "unknown deal D2"),
        ({"deals": (DEALS[0].model_copy(update={"shipping_cost_cents": 0}), *DEALS[1:])}, "does not offer"),
    ],
)
def test_contradictory_facts_are_refused(changes: dict[str, Any], complaint: str) -> None:
    with pytest.raises(FactsError, match=complaint):
        _facts(**changes)


def test_json_is_stable_and_complete() -> None:
    text = build_report(_facts()).to_json()
    assert text == build_report(_facts()).to_json()
    data = json.loads(text)
    assert list(data)[:3] == ["market_id", "population_digest", "participants"]
    assert data["money"]["gmv_settled_cents"] == 25_000
    assert data["invariants"] == dict(sorted(ALL_HELD.items()))


def test_it_renders_as_terminal_tables() -> None:
    report = build_report(_facts())
    out = io.StringIO()
    console = Console(file=out, width=120, color_system=None)
    render(report, console)
    render_comparison([report, report], console)
    text = out.getvalue()
    for expected in ("GMV settled", "$250.00", "$490.00", "89.7%", "boulware", "below_floor", "held"):
        assert expected in text


def test_model_tokens_cache_hits_and_dollars_per_negotiation_and_deal() -> None:
    usage = ModelUsageFact(
        input_tokens=1_000,
        output_tokens=200,
        cache_read_tokens=3_000,
        cache_write_tokens=1_000,
        micro_dollars=12_345,
        negotiations=2,
        tokens_by_principal={"alice": 5_000, "bob": 200},
        micro_dollars_by_principal={"alice": 12_000, "bob": 345},
    )
    report = build_report(_facts(model_usage=usage))
    variant_of = {p.id: p.variant for p in POPULATION.principals}
    for stats in report.variants:
        members = [pid for pid, v in variant_of.items() if v == stats.variant]
        assert stats.model_tokens == sum(usage.tokens_by_principal.get(pid, 0) for pid in members)
    assert sum(v.model_tokens for v in report.variants) == 5_200
    tokens = report.tokens
    assert tokens.cache_hit_ratio == pytest.approx(3_000 / 5_000)
    assert tokens.dollars_estimate == pytest.approx(0.012345)
    assert tokens.tokens_per_negotiation == 2_600 and tokens.tokens_per_deal == 5_200 / 4
    assert json.loads(report.to_json())["tokens"]["output_tokens"] == 200
    out = io.StringIO()
    render(report, Console(file=out, width=120, color_system=None))
    assert (
        "cache hit ratio" in out.getvalue()
        and "$0.0123" in out.getvalue()
        and "model tokens" in out.getvalue()
    )
    quiet = build_report(_facts()).tokens
    assert quiet.cache_hit_ratio is None and quiet.dollars_estimate == 0 and quiet.tokens_per_deal is None


def test_p90_is_nearest_rank() -> None:
    assert p90([]) is None
    assert p90([7]) == 7
    assert p90(list(range(1, 11))) == 9
    assert p90(list(range(1, 12))) == 10


def _random_facts(seed: int, picks: list[tuple[bool, int, int, int, int, bool]]) -> MarketFacts:
    """Deals on the optimum's own edges (named want or not) mixed with arbitrary ones, all released."""
    built: Population = build_population(seed, 6, 12, 100_000, 0.3, ["boulware", "conceder"], False)
    listings, ids = built.listings(), [p.id for p in built.principals]
    by_id, wants = {i.id: i for i in listings}, {w.id: w for w in built.wants()}
    edges = feasible_edges(built.wants(), listings)
    deals = []
    for n, (on_edge, index, buyer_index, price, option, named) in enumerate(picks):
        if on_edge and edges:
            edge = edges[index % len(edges)]
            buyer = wants[edge.want_id].buyer_id
            deal = _deal(
                f"D{n}",
                by_id[edge.listing_id],
                buyer,
                price,
                Party.BUYER,
                option,
                edge.want_id if named else None,
            )
        else:
            deal = _deal(
                f"D{n}",
                listings[index % len(listings)],
                ids[buyer_index % len(ids)],
                price,
                Party.SELLER,
                option,
            )
        deals.append(deal)
    settled = tuple(SettlementFact(deal_id=d.deal_id, outcome=SettlementOutcome.RELEASED) for d in deals)
    return MarketFacts(
        market_id="m-random",
        population=built,
        listing_ids=tuple(i.id for i in listings),
        deals=tuple(deals),
        settlements=settled,
        invariants=ALL_HELD,
    )


_PICK = st.tuples(
    st.booleans(),
    st.integers(0, 99),
    st.integers(0, 9),
    st.integers(1, 200_000),
    st.integers(0, 3),
    st.booleans(),
)


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.lists(_PICK, max_size=30))
def test_realised_surplus_never_exceeds_the_optimum(
    seed: int, picks: list[tuple[bool, int, int, int, int, bool]]
) -> None:
    report = build_report(_random_facts(seed, picks))
    assert report.surplus.realised_cents <= report.surplus.optimum_cents
    if report.surplus.efficiency is not None:
        assert report.surplus.efficiency <= 1.0


def test_trading_exactly_the_optimum_at_the_cheapest_shipping_is_fully_efficient() -> None:
    built = build_population(5, 20, 60, 100_000, 0.2, ["boulware", "conceder"], False)
    by_id, wants = {i.id: i for i in built.listings()}, {w.id: w for w in built.wants()}
    best = optimum(built.wants(), built.listings())
    assert best.matches, "the population must offer trades"
    deals = []
    for n, match in enumerate(best.matches):
        item = by_id[match.listing_id]
        cheapest = min(range(len(item.shipping)), key=lambda i: item.shipping[i].cost_cents)
        deals.append(
            _deal(f"D{n}", item, wants[match.want_id].buyer_id, item.floor_cents, Party.BUYER, cheapest)
        )
    settled = tuple(SettlementFact(deal_id=d.deal_id, outcome=SettlementOutcome.RELEASED) for d in deals)
    facts = MarketFacts(
        market_id="m-best",
        population=built,
        listing_ids=tuple(by_id),
        deals=tuple(deals),
        settlements=settled,
        invariants=ALL_HELD,
    )
    surplus = build_report(facts).surplus
    assert surplus.realised_cents == best.surplus_cents and surplus.efficiency == 1.0
    assert surplus.sellers_cents == 0 and surplus.buyers_cents == best.surplus_cents


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.lists(_PICK, max_size=30), st.lists(st.integers(0, 3), max_size=30))
def test_the_waterfall_accounts_for_every_lost_cent(
    seed: int, picks: list[tuple[bool, int, int, int, int, bool]], fates: list[int]
) -> None:
    facts = _random_facts(seed, picks)
    fate = [
        (SettlementOutcome.RELEASED, ""),
        (SettlementOutcome.REFUNDED, "condition_worse"),
        (SettlementOutcome.ESCROW_FAILED, "approval_denied"),
        (SettlementOutcome.OPEN, ""),
    ]
    settlements = tuple(
        SettlementFact(deal_id=s.deal_id, outcome=fate[f][0], reason=fate[f][1])
        for s, f in zip(facts.settlements, [*fates, *[0] * len(facts.settlements)], strict=False)
    )
    surplus = build_report(facts.model_copy(update={"settlements": settlements})).surplus
    assert sum(surplus.lost_cents.values()) == surplus.optimum_cents - surplus.realised_cents
    assert all(cents > 0 for cause, cents in surplus.lost_cents.items() if cause != "allocation")


def test_the_waterfall_names_what_became_of_each_optimal_trade() -> None:
    """Budgets large enough not to bind: the waterfall's matching is the optimum's own."""
    built = build_population(5, 20, 60, 1_000_000, 0.0, ["boulware", "conceder"], False)
    by_id, wants = {i.id: i for i in built.listings()}, {w.id: w for w in built.wants()}
    best = optimum(built.wants(), built.listings())
    assert len(best.matches) >= 3
    refunded, denied, untried = best.matches[:3]
    deals, settled = [], []
    for n, (match, outcome, reason) in enumerate(
        [
            (refunded, SettlementOutcome.REFUNDED, "condition_worse"),
            (denied, SettlementOutcome.ESCROW_FAILED, "approval_denied"),
        ]
    ):
        item = by_id[match.listing_id]
        deals.append(_deal(f"D{n}", item, wants[match.want_id].buyer_id, item.floor_cents, Party.BUYER, 0))
        settled.append(SettlementFact(deal_id=f"D{n}", outcome=outcome, reason=reason))
    negotiations = tuple(
        NegotiationFact(
            thread_id=d.thread_id,
            listing_id=d.listing_id,
            buyer_principal_id=d.buyer_principal_id,
            seller_principal_id=d.seller_principal_id,
            rounds=3,
            end_reason=EndReason.DEAL,
        )
        for d in deals
    )
    facts = MarketFacts(
        market_id="m-fates",
        population=built,
        listing_ids=tuple(by_id),
        negotiations=negotiations,
        deals=tuple(deals),
        settlements=tuple(settled),
        invariants=ALL_HELD,
    )
    lost = build_report(facts).surplus.lost_cents
    assert lost["refund_condition_worse"] == refunded.surplus_cents
    assert lost["approval_denied"] == denied.surplus_cents
    untouched = sum(m.surplus_cents for m in best.matches[2:])
    assert lost["no_negotiation"] == untouched
    assert untried.surplus_cents <= untouched
    assert "beyond_budget" not in lost


def test_what_no_budget_could_buy_is_named_beyond_budget() -> None:
    tight = build_population(5, 20, 60, 5_000, 0.0, ["boulware", "conceder"], False)
    facts = MarketFacts(
        market_id="m-tight",
        population=tight,
        listing_ids=tuple(i.id for i in tight.listings()),
        invariants=ALL_HELD,
    )
    surplus = build_report(facts).surplus
    assert surplus.budget_optimum_cents is not None and surplus.budget_optimum_cents < surplus.optimum_cents
    assert surplus.lost_cents["beyond_budget"] == surplus.optimum_cents - surplus.budget_optimum_cents
    assert surplus.lost_cents["no_negotiation"] == surplus.budget_optimum_cents
