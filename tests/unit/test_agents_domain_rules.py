"""services.agents.domain: the rules the handlers and an in-process engine share (shopping, a deal
agreed, a purchase closed, opening a thread, a move as a command)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from haggle.contracts import AgentKey
from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import Mandate
from haggle.contracts.negotiation import OfferMade, OpenNegotiation, Party, ThreadOpened, WithdrawNegotiation
from haggle.contracts.settlement import AcceptGoods, DisputeReason, OpenDispute
from haggle.guard.moves import Accept, MakeOffer, Walk
from haggle.guard.view import MandateLimits, NegotiationView
from services.agents.domain import (
    Budget,
    EndedBecause,
    Negotiation,
    Principal,
    Role,
    Status,
    deals,
    shopping,
    turn,
)
from services.agents.domain.deals import DealStatus
from services.agents.domain.negotiation import Received
from services.agents.mandate import load_mandate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "mandates"
KEY = AgentKey.generate()


@pytest.fixture
def bob() -> Principal:
    return Principal("bob", "m", "bob.agent", "v", load_mandate(EXAMPLES / "buyer.json"), KEY, True, 0)


def listing(item_id: str = "alice-headphones", price: int | None = None) -> ListingPublished:
    alice: Mandate = load_mandate(EXAMPLES / "seller.yaml")
    create = alice.item(item_id).to_listing(f"alice.{item_id}", "alice.agent", "alice")
    data = create.model_dump() | {"type": "ListingPublished"}
    if price is not None:
        data["price_cents"] = price
    return ListingPublished.model_validate(data)


def buyer_neg(listing_id: str, want_id: str = "bob-headphones", **kw: object) -> Negotiation:
    return Negotiation(f"b|bob|{listing_id}", "bob", listing_id, Role.BUYER, want_id=want_id, **kw)  # type: ignore[arg-type]


def test_a_listing_matches_the_first_unfilled_want_it_satisfies(bob: Principal) -> None:
    caps = bob.buying_cap
    found = shopping.matching_want("bob", bob.mandate, listing(), set(), frozenset(), caps)
    assert found is not None and found.id == "bob-headphones"
    assert (
        shopping.matching_want("bob", bob.mandate, listing(), {"bob-headphones"}, frozenset(), caps) is None
    )
    refused = frozenset({"alice.alice-headphones"})
    assert shopping.matching_want("bob", bob.mandate, listing(), set(), refused, caps) is None
    assert shopping.matching_want("alice", bob.mandate, listing(), set(), frozenset(), caps) is None
    hopeless = listing(price=2 * caps("bob-headphones") + 1)
    assert shopping.matching_want("bob", bob.mandate, hopeless, set(), frozenset(), caps) is None


def test_hold_for_has_no_limit_only_when_told() -> None:
    assert shopping.hold_for(9_000, 10_000, 500, free_cents=None) == 9_000
    assert shopping.hold_for(9_000, 10_000, 500, free_cents=4_000) == 4_000
    with pytest.raises(TypeError):
        shopping.hold_for(9_000, 10_000, 500, 4_000)  # type: ignore[misc]


def test_wants_are_funded_by_surplus_per_dollar_when_money_is_short() -> None:
    best = [
        shopping.BestCandidate("cheap", 5_000, 2_000, 0, holding=False),
        shopping.BestCandidate("dear", 20_000, 18_000, 0, holding=False),
    ]
    assert shopping.funded_wants(best, 14_000) == {"cheap"}  # 12,000 left: under 70% of 18,000
    assert shopping.funded_wants(best, 20_000) == {"cheap", "dear"}


def test_the_rest_of_the_budget_goes_to_a_want_worth_haggling_down_to_it() -> None:
    """What is left when a want's asking price does not fit still funds it when it is worth opening
    on (at least 70% of the asking price plus shipping): the buyer haggles down to it. It takes the
    whole rest, so a want ranked below it waits."""
    best = [
        shopping.BestCandidate("cheap", 5_000, 2_000, 0, holding=False),
        shopping.BestCandidate("dear", 20_000, 18_000, 0, holding=False),
        shopping.BestCandidate("small", 1_100, 1_000, 0, holding=False),
    ]
    assert shopping.funded_wants(best, 15_000) == {"cheap", "dear"}  # 13,000 left ≥ 12,600
    assert shopping.funded_wants(best, 19_000) == {"cheap", "dear"}  # dear takes the last 17,000
    assert shopping.funded_wants(best, 21_000) == {"cheap", "dear", "small"}
    shipped = [shopping.BestCandidate("dear", 20_000, 18_000, 1_000, holding=False)]
    assert shopping.funded_wants(shipped, 13_599) == set()  # 12,600 + 1,000 shipping
    assert shopping.funded_wants(shipped, 13_600) == {"dear"}
    # The rest is what the wants ranked above leave: 14,000 alone would fund dear, but not after cheap.
    assert shopping.funded_wants(best[1:2], 14_000) == {"dear"}
    assert "dear" not in shopping.funded_wants(best, 14_000)


def test_opening_holds_the_thread_cap_or_declines(bob: Principal) -> None:
    facts = listing()
    neg = buyer_neg(facts.listing_id)
    held = turn.hold_for_opening(bob, neg, facts, bob.budget([neg]), {"bob-headphones"})
    assert held is not None and neg.reserved_cents == held.held_by(neg.neg_id) > 0
    assert neg.status is Status.OPENING
    unfunded = buyer_neg(facts.listing_id)
    assert turn.hold_for_opening(bob, unfunded, facts, bob.budget([]), set()) is None
    assert (unfunded.status, unfunded.end_reason) == (Status.ENDED, "unfunded")
    broke = buyer_neg(facts.listing_id)
    spent = Budget(bob.mandate.budget_cents, committed_cents=bob.mandate.budget_cents)
    assert turn.hold_for_opening(bob, broke, facts, spent, {"bob-headphones"}) is None


def test_a_move_becomes_the_referee_command() -> None:
    neg = buyer_neg("l")
    offer = MakeOffer(price_cents=100, shipping_method=ShippingMethod.LOCAL_PICKUP)
    assert isinstance(turn.command_for(neg, offer), OpenNegotiation)
    assert turn.command_for(neg, Accept(offer_id="o")) is None
    assert neg.status is Status.OPENING
    assert turn.command_for(neg, Walk()) is None
    assert (neg.status, neg.end_reason) == (Status.ENDED, "declined_to_open")
    opened = buyer_neg("l", status=Status.OPEN, thread_id="t")
    assert isinstance(turn.command_for(opened, Walk()), WithdrawNegotiation)


def test_a_deal_commits_and_drops_the_wants_other_threads() -> None:
    won = buyer_neg("a", status=Status.OPEN, thread_id="t1", reserved_cents=9_000)
    talking = buyer_neg("b", status=Status.OPEN, thread_id="t2", reserved_cents=8_000)
    waiting = buyer_neg("c")
    other_want = buyer_neg("d", want_id="bob-lens", status=Status.OPEN, thread_id="t3", reserved_cents=5_000)
    everyone = [won, talking, waiting, other_want]
    budget = Budget(30_000, 0, {n.neg_id: n.reserved_cents for n in everyone})
    outcome = deals.buyer_deal_agreed(won, 8_500, budget, everyone)
    assert (won.status, won.reserved_cents) == (Status.DEAL, 0)
    assert outcome.withdraw == (talking,) and talking.reserved_cents == 0 and talking.status is Status.OPEN
    assert outcome.dropped == (waiting,) and waiting.end_reason == EndedBecause.WANT_FULFILLED
    assert other_want.reserved_cents == 5_000
    assert outcome.budget == Budget(30_000, 8_500, {other_want.neg_id: 5_000})
    assert not outcome.overdrawn


def test_a_deal_over_held_and_free_is_recorded_and_flagged() -> None:
    won = buyer_neg("a", status=Status.OPEN, thread_id="t1", reserved_cents=1_000)
    outcome = deals.buyer_deal_agreed(won, 1_500, Budget(1_000, 0, {won.neg_id: 1_000}), [won])
    assert outcome.overdrawn and outcome.budget.committed_cents == 1_500


@pytest.mark.parametrize(
    ("now", "money_back"),
    [(DealStatus.FAILED, True), (DealStatus.REFUNDED, True), (DealStatus.SETTLED, False)],
)
def test_closing_a_purchase(now: DealStatus, money_back: bool) -> None:
    budget = Budget(10_000, committed_cents=4_000)
    deal = deals.Deal("d", "bob", Role.BUYER, "l", "w", 4_000, "local_pickup")
    after = deal.close(now, budget)
    assert deal.status is now and deal.gives_money_back is money_back
    assert after is not None and after.committed_cents == (0 if money_back else 4_000)
    assert deal.close(DealStatus.REFUNDED, after) is None  # closed once: a repeat changes nothing
    assert deal.status is now
    sold = deals.Deal("d", "alice", Role.SELLER, "l", None, 4_000, "local_pickup")
    assert sold.close(now, budget) == budget and not sold.gives_money_back


def test_reshopping_opens_the_cheapest_and_drops_past_the_shortlist() -> None:
    from datetime import UTC, datetime

    at = datetime(2026, 12, 7, tzinfo=UTC)
    negs = [buyer_neg(f"l{i}") for i in range(shopping.SHORTLIST + 2)]
    shortlist = [(n, 1_000 + 10 * i) for i, n in enumerate(reversed(negs))]
    outcome = shopping.reshop(shortlist, at)
    assert outcome.woken
    assert negs[-1].retry_at == at and all(n.retry_at is None for n in negs[:-1])
    dropped = [n for n in negs if n.status is Status.ENDED]
    assert dropped == [negs[0]] and dropped[0].end_reason == EndedBecause.OUTRANKED
    again = shopping.reshop([(n, t) for n, t in shortlist if n.live], at)
    assert again == shopping.Reshopped((), False)


def test_money_coming_free_revives_only_the_candidates_the_want_would_keep() -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    started = buyer_neg("open", status=Status.OPEN, thread_id="t", reserved_cents=100)

    def candidates() -> list[tuple[Negotiation, int]]:
        ended = [buyer_neg(f"l{i:02}") for i in range(shopping.SHORTLIST + 4)]
        for neg in ended:
            neg.end(EndedBecause.DECLINED_TO_OPEN)
        return [(n, 1_000 + 10 * i) for i, n in enumerate(ended)]  # l00 cheapest

    # The old way: revive every one, then reshop.
    everyone = candidates()
    for neg, _ in everyone:
        neg.revive()
    shopping.reshop([(started, 2_000), *everyone], at)
    # The new: only the shortlist's worth is revived (the want's one place is taken), the rest passed over.
    looked = candidates()
    outcome = shopping.revival([(started, 2_000)], looked)
    assert [n.neg_id for n in outcome.revive] == [n.neg_id for n, _ in looked[: shopping.SHORTLIST]]
    for neg in outcome.revive:
        neg.revive()
    for neg in outcome.passed_over:
        neg.passed_over()
    kept = shopping.reshop([(started, 2_000), *((n, t) for n, t in looked if n.live)], at)
    assert kept.changed == ()
    assert [vars(n) for n, _ in looked] == [vars(n) for n, _ in everyone]  # the same candidates after


def test_a_want_the_budget_does_not_fund_ends_its_waiting_candidates_with_it(bob: Principal) -> None:
    at = datetime(2026, 12, 7, tzinfo=UTC)
    facts = listing()
    started = buyer_neg("open", status=Status.OPEN, thread_id="t")
    first, *rest = [buyer_neg(f"l{i}") for i in range(4)]
    shortlist = [(started, 900), *((n, 1_000 + i) for i, n in enumerate(rest))]
    assert turn.hold_for_opening(bob, first, facts, bob.budget([]), funded_wants={"bob-lens"}) is None
    assert first.end_reason == EndedBecause.UNFUNDED and first.revivable(set())
    outcome = shopping.after_ending(first, shortlist, at)
    assert outcome == shopping.Reshopped(tuple(rest), False)  # no turn each, only to be declined
    assert all(n.end_reason == EndedBecause.UNFUNDED for n in rest) and started.live
    # Not worth opening with the money there is: the next candidate is tried instead.
    declined, *others = [buyer_neg(f"m{i}") for i in range(3)]
    declined.end(EndedBecause.DECLINED_TO_OPEN)
    again = shopping.after_ending(declined, [(n, 1_000 + i) for i, n in enumerate(others)], at)
    assert again.woken and others[0].retry_at == at and all(n.live for n in others)


def test_each_want_is_costed_at_its_cheapest_live_candidate() -> None:
    a = buyer_neg("a")
    b = buyer_neg("b", status=Status.OPEN, thread_id="t", reserved_cents=100)
    lens = buyer_neg("c", want_id="bob-lens")
    gone = buyer_neg("d", want_id="bob-lens", status=Status.ENDED)
    live = [(a, 9_000, 500), (b, 12_000, 0), (lens, 8_000, 300), (gone, 10, 0)]
    best = shopping.best_candidates(live, lambda want_id: {"bob-headphones": 16_000}.get(want_id, 9_500))
    assert best == [
        shopping.BestCandidate("bob-headphones", 16_000, 9_000, 500, holding=True),
        shopping.BestCandidate("bob-lens", 9_500, 8_000, 300, holding=False),
    ]


def test_an_amendment_the_mandate_allows_replaces_the_mandate(bob: Principal) -> None:
    want = bob.mandate.wants[0]
    raised = want.model_copy(update={"max_price_cents": want.max_price_cents + 1_000})
    amended = bob.mandate.model_copy(update={"wants": [raised, *bob.mandate.wants[1:]]})
    assert bob.amend(amended) == []
    assert bob.mandate == amended


def test_the_buying_cap_follows_an_amended_max_price(bob: Principal) -> None:
    """The cap the guard enforces is read again after an amendment, never an older mandate's."""
    want = bob.mandate.wants[0]
    before = bob.buying_cap(want.id)
    lowered = want.model_copy(update={"max_price_cents": want.max_price_cents // 2})
    assert bob.amend(bob.mandate.model_copy(update={"wants": [lowered, *bob.mandate.wants[1:]]})) == []
    assert bob.buying_cap(want.id) < before
    assert bob.buying_cap(want.id) <= lowered.max_price_cents


def test_an_amendment_of_a_fixed_field_is_refused_and_changes_nothing(bob: Principal) -> None:
    before = bob.mandate
    richer = before.model_copy(update={"budget_cents": before.budget_cents * 2})
    assert bob.amend(richer) == ["budget_cents: cannot change once the agent runs"]
    assert bob.mandate is before


def test_a_turn_folds_only_new_events_and_refolds_when_the_base_changes(bob: Principal) -> None:
    """`turn.view_of` keeps its fold on the negotiation: every turn must see what a fresh fold of
    the same events would, as events arrive and when the limits change."""
    facts = listing()
    neg = buyer_neg(facts.listing_id, thread_id="t1", status=Status.OPEN, reserved_cents=20_000)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    opened = ThreadOpened(
        thread_id="t1",
        listing_id=facts.listing_id,
        buyer_agent_id="bob.agent",
        seller_agent_id="alice.agent",
        deadline=start + timedelta(minutes=1),
        max_rounds=12,
    )
    neg.record(opened, start)

    def offer(round_: int, by: Party, price: int) -> OfferMade:
        agent = "bob.agent" if by is Party.BUYER else "alice.agent"
        return OfferMade(
            thread_id="t1",
            listing_id=facts.listing_id,
            offer_id=f"o{round_}",
            by=by,
            agent_id=agent,
            round=round_,
            price_cents=price,
            shipping_method=ShippingMethod.LOCAL_PICKUP,
            shipping_cost_cents=0,
            shipping_paid_by=Party.BUYER,
        )

    def fresh(limits: MandateLimits, now: datetime) -> NegotiationView:
        """A fold from scratch of the events as the store saves and loads them."""
        saved = json.loads(json.dumps([entry.saved() for entry in neg.events]))
        loaded = replace(neg, events=[Received.loaded(entry) for entry in saved])  # a copy: no fold
        return turn.view_of(bob, loaded, facts, limits, now)

    limits = turn.limits_for(bob, neg, bob.budget([neg]), None)
    for round_, (by, price) in enumerate(
        [(Party.BUYER, 9_000), (Party.SELLER, 12_000), (Party.BUYER, 9_500)]
    ):
        made = offer(round_ + 1, by, price)
        now = start + timedelta(seconds=10 * (round_ + 1))
        neg.record(made, now)
        assert turn.view_of(bob, neg, facts, limits, now) == fresh(limits, now)
    assert neg.folded is not None and neg.folded.count == 4
    tighter = replace(limits, remaining_budget_cents=5_000)  # money held elsewhere meanwhile
    assert turn.view_of(bob, neg, facts, tighter, now) == fresh(tighter, now)
    assert turn.view_of(bob, neg, facts, tighter, now).round == 3


def test_what_arrives_is_disputed_if_worse_and_else_accepted_unless_the_person_inspects() -> None:
    worse = deals.inspection("d1", Condition.VERY_GOOD, Condition.GOOD, principal_inspects=False)
    assert isinstance(worse, OpenDispute) and worse.reason is DisputeReason.CONDITION_WORSE
    assert worse.detail == "listed as very_good, arrived good"
    # A person who inspects is still protected from a worse condition by their agent...
    assert isinstance(deals.inspection("d1", Condition.VERY_GOOD, Condition.GOOD, True), OpenDispute)
    # ...but what is as described (or better) is left for them to accept or dispute.
    assert deals.inspection("d1", Condition.VERY_GOOD, Condition.LIKE_NEW, True) is None
    accepted = deals.inspection("d1", Condition.VERY_GOOD, Condition.VERY_GOOD, False)
    assert accepted == AcceptGoods(deal_id="d1")
