"""Property tests over the referee's pure state machine.

The referee of `haggle sim` applies the decisions (the service's `decide`, its
state in memory); any sequence of moves by any actors must keep the invariants.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
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
from haggle_lab.sim.bus import Bus
from haggle_lab.sim.clock import Clock
from haggle_lab.sim.referee import Referee
from services.negotiation.domain import (
    Actor,
    ListingState,
    ListingView,
    Thread,
    ThreadStatus,
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


class World:
    """The referee of `haggle sim` (`haggle_lab.sim.referee.Referee`) on one listing: the engine's
    load → decide → apply around the service's pure `decide`, on a simulated clock whose thread
    deadlines fire as time passes."""

    def __init__(self, listing: ListingView = LISTING) -> None:
        self.clock = Clock(START)
        self.bus = Bus(self.clock, "m")
        self.referee = Referee(self.clock, self.bus, RULES, "m")
        for actor in ACTORS:
            self.referee.register(actor)
        self.referee.add_listing(listing)
        self._offers: dict[str, OfferMade] = {}
        self._read = 0

    @property
    def listing(self) -> ListingView:
        return self.referee.listings["L1"]

    @property
    def threads(self) -> dict[str, Thread]:
        return self.referee.threads

    @property
    def deals(self) -> list[DealAgreed]:
        return self.referee.deals

    @property
    def offers(self) -> dict[str, OfferMade]:
        fresh, self._read = self.bus.seen[self._read :], len(self.bus.seen)
        for _, env in fresh:
            if env.type == "OfferMade":
                self._offers[env.payload["offer_id"]] = OfferMade.model_validate(env.payload)
        return self._offers

    @property
    def now(self) -> datetime:
        return self.clock.now

    def wait(self, seconds: int) -> None:
        self.clock.advance(self.clock.now + timedelta(seconds=seconds))

    def apply(self, actor: Actor, cmd: object) -> bool:
        before = (self.listing, dict(self.threads), len(self.deals))
        published = len(self.bus.seen)
        decision = self.referee.command(actor.agent_id, cmd)  # type: ignore[arg-type]
        if decision.refused:
            assert not decision.threads and not decision.events and decision.listing is None
            assert (self.listing, self.threads, len(self.deals)) == before
            assert [e.type for _, e in self.bus.seen[published:]] == ["ActionRefused"]
            return False
        for thread in decision.threads:
            previous = before[1].get(thread.thread_id)
            assert previous is None or previous.status is ThreadStatus.OPEN, "an ended thread changed"
            assert self.threads[thread.thread_id] == thread, "a decided thread was not saved"
        if decision.listing is not None:
            assert self.listing == decision.listing
        sent = [e.type for _, e in self.bus.seen[published:]]
        assert sent == [e.type for e in decision.events], "the events published are not the decision's"
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
        world.wait(data.draw(st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(0, 90))))
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
