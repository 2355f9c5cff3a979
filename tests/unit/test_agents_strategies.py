"""services.agents.brains.strategies: deterministic, monotone, within limits, the literature's ordering."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hypothesis import event, given, settings
from hypothesis import strategies as st

from haggle.contracts.goods import Condition, Dimensions, Item, ShippingMethod, ShippingOption
from haggle.contracts.negotiation import Party
from services.agents.brains.strategies import FixedAnchor, TimeDependent, TitForTat, strategy
from services.agents.mandate import StrategyName, StrategyParams
from services.agents.moves import NOTHING, Accept, MakeOffer, Reject, Walk
from services.agents.selfplay import Outcome, play
from services.agents.view import ListingView, MandateLimits, NegotiationView, OfferSeen

SHIPPING = (ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=1_000),)


def listing(asking: int = 12_000, condition: Condition = Condition.VERY_GOOD, **kw: object) -> ListingView:
    fields: dict[str, object] = {
        "listing_id": "L-1",
        "title": "Road bike",
        "description": "A bike.",
        "category": "bikes",
        "condition": condition,
        "asking_price_cents": asking,
        "shipping": SHIPPING,
        "item": Item(weight_g=9_000, dimensions=Dimensions(length_mm=1_100, width_mm=600, height_mm=200)),
    }
    fields.update(kw)
    return ListingView(**fields)  # type: ignore[arg-type]


def seller_limits(floor: int = 7_000) -> MandateLimits:
    return MandateLimits.for_seller(floor)


def buyer_limits(cap: int = 11_000, budget: int = 1_000_000) -> MandateLimits:
    """The buyer's max counts shipping (1 000 here): 11 000 means at most 10 000 on price."""
    return MandateLimits.for_buyer(cap, budget, Condition.GOOD)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def selfplay(buyer, seller, max_rounds: int = 20, **kw: object) -> Outcome:  # type: ignore[no-untyped-def]
    lst = kw.pop("listing", None) or listing()
    bl = kw.pop("buyer_limits", None) or buyer_limits()
    sl = kw.pop("seller_limits", None) or seller_limits()
    return run(play(buyer, seller, lst, bl, sl, max_rounds=max_rounds))  # type: ignore[arg-type]


def prices(outcome: Outcome, by: Party) -> list[int]:
    return [offer.price_cents for offer in outcome.offers if offer.by is by]


def test_boulware_gets_the_better_price_against_a_conceder_either_way() -> None:
    boulware, conceder = StrategyName.BOULWARE, StrategyName.CONCEDER
    hard_seller = selfplay(strategy(conceder), strategy(boulware))
    hard_buyer = selfplay(strategy(boulware), strategy(conceder))
    assert hard_seller.deal is not None and hard_buyer.deal is not None
    midpoint = (7_000 + 10_000) // 2  # the zone of agreement on price: floor 7 000 .. buyer's 10 000
    assert hard_seller.deal.price_cents > midpoint > hard_buyer.deal.price_cents
    linear = selfplay(strategy(StrategyName.LINEAR), strategy(StrategyName.LINEAR))
    assert linear.deal is not None
    assert hard_buyer.deal.price_cents < linear.deal.price_cents < hard_seller.deal.price_cents


def test_boulware_holds_out_longer_than_a_conceder() -> None:
    hard = selfplay(strategy(StrategyName.BOULWARE), strategy(StrategyName.BOULWARE))
    soft = selfplay(strategy(StrategyName.CONCEDER), strategy(StrategyName.CONCEDER))
    assert hard.deal is not None and soft.deal is not None
    assert hard.rounds > soft.rounds


def test_linear_sides_without_overlap_reach_their_limits_and_part() -> None:
    outcome = selfplay(
        strategy(StrategyName.LINEAR), strategy(StrategyName.LINEAR), buyer_limits=buyer_limits(cap=7_000)
    )
    assert outcome.deal is None and outcome.ended_by == "reject"
    assert prices(outcome, Party.SELLER)[-1] == 7_000  # the floor, in the last round
    # The buyer's ceiling is 6 000 (7 000 total less 1 000 shipping): its last offer (the 19th round
    # of 20; the seller has the 20th) reaches it, as the seller's last reaches its floor.
    assert prices(outcome, Party.BUYER)[-1] == 6_000
    assert outcome.refusals == ()


def test_the_seller_opens_at_asking_and_the_buyer_at_its_opening_fraction() -> None:
    outcome = selfplay(strategy(StrategyName.LINEAR), strategy(StrategyName.BOULWARE))
    assert prices(outcome, Party.BUYER)[0] == 6_000  # 60% of 10 000 (its cap less shipping)
    assert prices(outcome, Party.SELLER)[0] >= 11_999  # boulware barely moves from 12 000 at first


def test_same_seed_same_negotiation_and_another_seed_another() -> None:
    def noisy(seed: int) -> StrategyParams:
        return StrategyParams(seed=seed, noise=0.1)

    def once(seed: int) -> Outcome:
        return selfplay(
            strategy(StrategyName.LINEAR, noisy(seed)), strategy(StrategyName.CONCEDER, noisy(seed + 1))
        )

    assert once(1) == once(1)
    assert once(1).offers != once(2).offers


names = st.sampled_from(list(StrategyName))


@settings(max_examples=60, deadline=None)
@given(
    buyer_name=names,
    seller_name=names,
    seed=st.integers(0, 1_000),
    noise=st.sampled_from([0.0, 0.05, 0.2]),
    asking=st.integers(2_000, 100_000),
    floor_share=st.floats(0.3, 1.0),
    cap_share=st.floats(0.2, 1.5),
    max_rounds=st.integers(1, 30),
)
def test_any_pairing_concedes_monotonically_within_limits(
    buyer_name: StrategyName,
    seller_name: StrategyName,
    seed: int,
    noise: float,
    asking: int,
    floor_share: float,
    cap_share: float,
    max_rounds: int,
) -> None:
    floor = max(1, int(asking * floor_share))
    cap = max(1, int(asking * cap_share))
    params = StrategyParams(seed=seed, noise=noise)
    outcome = selfplay(
        strategy(buyer_name, params),
        strategy(seller_name, params),
        max_rounds=max_rounds,
        listing=listing(asking),
        buyer_limits=buyer_limits(cap),
        seller_limits=seller_limits(floor),
    )
    event(f"ended by {outcome.ended_by}")
    event("several rounds" if outcome.rounds > 3 else "three rounds or fewer")
    sells, buys = prices(outcome, Party.SELLER), prices(outcome, Party.BUYER)
    assert all(floor <= p <= asking for p in sells)
    assert all(p > 0 and p + 1_000 <= cap and p <= asking for p in buys)
    assert sells == sorted(sells, reverse=True) and buys == sorted(buys)
    assert outcome.refusals == ()  # strategies never even try to break their mandate
    assert outcome.rounds <= max_rounds
    if outcome.deal is not None:
        assert floor <= outcome.deal.price_cents and outcome.deal.buyer_total_cents <= cap


def _view(role: Party, offers: tuple[OfferSeen, ...], limits: MandateLimits, **kw: object) -> NegotiationView:
    return NegotiationView(
        agent_id="a",
        role=role,
        listing=listing(),
        limits=limits,
        max_rounds=20,
        thread_id="t",
        offers=offers,
        **kw,
    )  # type: ignore[arg-type]


def _offer(n: int, by: Party, price: int, final: bool = False) -> OfferSeen:
    return OfferSeen(f"t.{n}", by, n, price, ShippingMethod.PARCEL_STANDARD, 1_000, Party.BUYER, final)


def _history(last_buyer_price: int) -> tuple[OfferSeen, ...]:
    """Eleven offers, buyer first; the seller stood at 12 000 and the buyer's latest is on the table."""
    offers = [
        _offer(n, Party.BUYER if n % 2 else Party.SELLER, 6_000 if n % 2 else 12_000) for n in range(1, 11)
    ]
    return (*offers, _offer(11, Party.BUYER, last_buyer_price))


def test_ac_next_accepts_an_offer_at_least_as_good_as_my_next() -> None:
    seller = TimeDependent(1.0)
    # Offer 12 of 20: a linear seller would ask 12 000 - 5 000 * 11/19 = 9 105 next.
    assert run(seller.decide(_view(Party.SELLER, _history(9_105), seller_limits()))) == Accept("t.11")
    move = run(seller.decide(_view(Party.SELLER, _history(9_104), seller_limits())))
    assert move == MakeOffer(9_105, ShippingMethod.PARCEL_STANDARD)


def test_a_final_offer_is_accepted_within_limits_and_rejected_outside() -> None:
    buyer = TimeDependent(0.2)
    fine = _view(
        Party.BUYER,
        (_offer(1, Party.BUYER, 6_000), _offer(2, Party.SELLER, 9_999, final=True)),
        buyer_limits(),
    )
    assert run(buyer.decide(fine)) == Accept("t.2")
    steep = replace(fine, offers=(fine.offers[0], _offer(2, Party.SELLER, 10_001, final=True)))
    assert run(buyer.decide(steep)) == Reject("t.2")


def test_tit_for_tat_mirrors_the_opponents_relative_concession() -> None:
    offers = (
        _offer(1, Party.BUYER, 6_000),
        _offer(2, Party.SELLER, 12_000),
        _offer(3, Party.BUYER, 6_600),
    )
    move = run(TitForTat().decide(_view(Party.SELLER, offers, seller_limits())))
    assert move == MakeOffer(round(12_000 * 6_000 / 6_600), ShippingMethod.PARCEL_STANDARD)


def test_fixed_anchor_opens_at_its_anchor_and_barely_budges() -> None:
    brain = FixedAnchor(StrategyParams(anchor_fraction=0.5, step_fraction=0.02))
    first = run(brain.decide(_view(Party.SELLER, (_offer(1, Party.BUYER, 6_000),), seller_limits())))
    assert first == MakeOffer(9_500, ShippingMethod.PARCEL_STANDARD)  # halfway from 12 000 to 7 000
    offers = (_offer(1, Party.BUYER, 6_000), _offer(2, Party.SELLER, 9_500), _offer(3, Party.BUYER, 6_100))
    second = run(brain.decide(_view(Party.SELLER, offers, seller_limits())))
    assert second == MakeOffer(9_400, ShippingMethod.PARCEL_STANDARD)


def test_a_buyer_walks_when_there_is_nothing_it_may_buy() -> None:
    brain = strategy(StrategyName.LINEAR)
    worn = NegotiationView("b", Party.BUYER, listing(condition=Condition.ACCEPTABLE), buyer_limits(), 20)
    assert run(brain.decide(worn)) == Walk()
    pickup_only = replace(
        worn, listing=listing(shipping=(ShippingOption(method=ShippingMethod.PARCEL_SMALL, cost_cents=1),))
    )
    assert run(brain.decide(pickup_only)) == Walk()  # a 9 kg bike does not fit a small parcel
    broke = replace(worn, listing=listing(), limits=buyer_limits(budget=900))
    assert run(brain.decide(broke)) == Walk()


def test_no_move_when_it_is_not_my_turn() -> None:
    view = _view(Party.BUYER, (_offer(1, Party.BUYER, 6_000),), buyer_limits())
    assert run(strategy(StrategyName.CONCEDER).decide(view)) == NOTHING
