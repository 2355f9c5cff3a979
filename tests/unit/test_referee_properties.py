"""Property tests over the referee's pure state machine.

A tiny in-memory "store" applies decisions exactly as the handler does; any
sequence of moves by any actors must keep the invariants.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import event, given, settings
from hypothesis import strategies as st

from haggle.contracts import Dimensions, Item, ShippingMethod, ShippingOption
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import (
    AcceptOffer,
    CounterOffer,
    DealAgreed,
    OfferMade,
    OpenNegotiation,
    RejectOffer,
    SendMessage,
    WithdrawNegotiation,
)
from services.negotiation.domain import (
    Actor,
    Context,
    ListingState,
    ListingView,
    Thread,
    ThreadStatus,
    decide,
)

START = datetime(2026, 1, 1, tzinfo=UTC)
SELLER = Actor("seller", "p-seller", None, can_buy=False, can_sell=True)
BUYERS = [Actor(f"buyer{i}", f"p-buyer{i}", None, can_buy=True, can_sell=False) for i in range(3)]
OUTSIDER = Actor("outsider", "p-out", None, can_buy=True, can_sell=False)
SELF_DEALER = Actor("selfie", "p-seller", None, can_buy=True, can_sell=False)
ACTORS = [SELLER, *BUYERS, OUTSIDER, SELF_DEALER]
RULES = MarketRulesSet(max_rounds=4, negotiation_ttl_seconds=100)
LISTING = ListingView(
    "L1",
    "m",
    SELLER.agent_id,
    SELLER.principal_id,
    ListingState.ACTIVE,
    Item(weight_g=3_000, dimensions=Dimensions(length_mm=400, width_mm=300, height_mm=200)),
    (ShippingOption(method=ShippingMethod.PARCEL_STANDARD, cost_cents=900),),
)


@dataclass
class World:
    listing: ListingView = LISTING
    threads: dict[str, Thread] = field(default_factory=dict)
    deals: list[DealAgreed] = field(default_factory=list)
    offers: dict[str, OfferMade] = field(default_factory=dict)
    now: datetime = START

    def context(self, actor: Actor, cmd: object) -> Context:
        thread = self.threads.get(getattr(cmd, "thread_id", ""))
        open_others = tuple(
            t
            for t in self.threads.values()
            if t.status is ThreadStatus.OPEN and (thread is None or t.thread_id != thread.thread_id)
        )
        seen = any(
            t.buyer.agent_id == actor.agent_id and t.epoch == self.listing.epoch
            for t in self.threads.values()
        )
        return Context(
            actor=actor,
            listing=self.listing,
            thread=thread,
            rules=RULES,
            now=self.now,
            market_id="m",
            open_threads_of_actor=sum(
                1
                for t in self.threads.values()
                if t.status is ThreadStatus.OPEN and t.buyer.agent_id == actor.agent_id
            ),
            others_open=open_others,
            seen_thread_before=seen,
        )

    def apply(self, actor: Actor, cmd: object) -> bool:
        before = (self.listing, dict(self.threads), len(self.deals))
        decision = decide(cmd, self.context(actor, cmd))  # type: ignore[arg-type]
        if decision.refused:
            assert not decision.threads and not decision.events and decision.listing is None
            assert (self.listing, self.threads, len(self.deals)) == before
            return False
        for thread in decision.threads:
            previous = self.threads.get(thread.thread_id)
            assert previous is None or previous.status is ThreadStatus.OPEN, "an ended thread changed"
            self.threads[thread.thread_id] = thread
        if decision.listing is not None:
            self.listing = decision.listing
        for emitted in decision.events:
            if isinstance(emitted, OfferMade):
                self.offers[emitted.offer_id] = emitted
            if isinstance(emitted, DealAgreed):
                self.deals.append(emitted)
        return True


def commands(world: World) -> st.SearchStrategy[tuple[Actor, object]]:
    thread_ids = st.sampled_from([*world.threads, "t-bogus"])
    offer_ids = st.sampled_from([*world.offers, "t-bogus.1"])
    price = st.integers(min_value=-5, max_value=40_000)
    method = st.sampled_from(list(ShippingMethod))
    actor = st.sampled_from(ACTORS)
    return st.one_of(
        st.tuples(
            actor,
            st.builds(OpenNegotiation, listing_id=st.just("L1"), price_cents=price, shipping_method=method),
        ),
        st.tuples(
            actor,
            st.builds(
                CounterOffer,
                listing_id=st.just("L1"),
                thread_id=thread_ids,
                price_cents=price,
                shipping_method=method,
            ),
        ),
        st.tuples(
            actor, st.builds(AcceptOffer, listing_id=st.just("L1"), thread_id=thread_ids, offer_id=offer_ids)
        ),
        st.tuples(
            actor, st.builds(RejectOffer, listing_id=st.just("L1"), thread_id=thread_ids, offer_id=offer_ids)
        ),
        st.tuples(actor, st.builds(WithdrawNegotiation, listing_id=st.just("L1"), thread_id=thread_ids)),
        st.tuples(
            actor, st.builds(SendMessage, listing_id=st.just("L1"), thread_id=thread_ids, text=st.just("hi"))
        ),
    )


def sensible_moves(world: World) -> st.SearchStrategy[tuple[Actor, object]]:
    """Moves a well-behaved party would make: so that deals, rejections and round limits are reached."""
    live = [t for t in world.threads.values() if t.status is ThreadStatus.OPEN and t.latest is not None]
    if not live:
        buyer = st.sampled_from(BUYERS)
        return st.tuples(
            buyer,
            st.builds(
                OpenNegotiation,
                listing_id=st.just("L1"),
                price_cents=st.integers(1, 30_000),
                shipping_method=st.just(ShippingMethod.PARCEL_STANDARD),
            ),
        )

    def move(thread: Thread, kind: str, price: int) -> tuple[Actor, object]:
        actor = thread.buyer if thread.turn.value == "buyer" else thread.seller
        latest = thread.latest
        assert latest is not None
        if kind == "accept":
            return actor, AcceptOffer(listing_id="L1", thread_id=thread.thread_id, offer_id=latest.offer_id)
        if kind == "reject":
            return actor, RejectOffer(listing_id="L1", thread_id=thread.thread_id, offer_id=latest.offer_id)
        return actor, CounterOffer(
            listing_id="L1",
            thread_id=thread.thread_id,
            price_cents=price,
            shipping_method=ShippingMethod.PARCEL_STANDARD,
        )

    return st.builds(
        move,
        st.sampled_from(live),
        st.sampled_from(["counter", "counter", "accept", "reject"]),
        st.integers(1, 30_000),
    )


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_sequence_of_moves_keeps_the_invariants(data: st.DataObject) -> None:
    world = World()
    for _ in range(data.draw(st.integers(min_value=10, max_value=40))):
        world.now += timedelta(
            seconds=data.draw(st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(0, 90)))
        )
        pick = sensible_moves if data.draw(st.integers(0, 9)) < 6 else commands
        actor, cmd = data.draw(pick(world))
        applied = world.apply(actor, cmd)
        if applied and isinstance(cmd, AcceptOffer):
            deal = world.deals[-1]
            accepted = world.offers[cmd.offer_id]
            assert deal.price_cents == accepted.price_cents
            assert deal.shipping_method == accepted.shipping_method
            assert accepted.agent_id != actor.agent_id, "accepted its own offer"
        thread = world.threads.get(str(getattr(cmd, "thread_id", "")))
        if applied and thread is not None and not isinstance(cmd, WithdrawNegotiation):
            assert world.now < thread.deadline, "a move was applied after the deadline"
    event(f"deals={len(world.deals)}")
    assert len(world.deals) <= 1, "two deals on one listing"
    for thread in world.threads.values():
        assert thread.buyer.principal_id != thread.seller.principal_id
        assert len(thread.offers) <= RULES.max_rounds
        assert all(o.price_cents > 0 for o in thread.offers)
        turns = [o.by for o in thread.offers]
        assert all(a is not b for a, b in itertools.pairwise(turns)), "two offers in a row by one side"
    if world.deals:
        assert world.listing.deal_id == world.deals[0].deal_id
        assert all(t.status is ThreadStatus.ENDED for t in world.threads.values())


def test_a_listing_sold_elsewhere_refuses_every_later_move() -> None:
    world = World(listing=replace(LISTING, deal_id="d-other"))
    assert not world.apply(
        BUYERS[0],
        OpenNegotiation(listing_id="L1", price_cents=1_000, shipping_method=ShippingMethod.PARCEL_STANDARD),
    )
