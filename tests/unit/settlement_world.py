"""A deal's world for the pure settlement tests: the in-process settlement of `haggle sim`
(`haggle_lab.sim.settlement.Settlement`) on its simulated clock, so the tests drive the engine's
`carry_out` and timer, which run the same domain as the service, rather than a copy of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import DisputeReason
from haggle_lab.sim.bus import Bus
from haggle_lab.sim.clock import Clock
from haggle_lab.sim.settlement import Settlement
from services.settlement.domain import fulfilment
from services.settlement.domain.deal import Deal, DealState, Outcome
from services.settlement.domain.ledger import Ledger

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
RULES = MarketRulesSet(
    fee_bps=500,
    inspection_window_seconds=100,
    approval_timeout_seconds=50,
    ship_deadline_seconds=300,
    carrier_pickup_seconds=10,
    carrier_transit_seconds=20,
    carrier_loss_bps=0,
)


def agreed(
    price: int = 10_000, method: ShippingMethod = ShippingMethod.PARCEL_STANDARD, **kw: object
) -> DealAgreed:
    fields: dict[str, object] = {
        "deal_id": "d1",
        "listing_id": "L1",
        "thread_id": "th1",
        "buyer_agent_id": "buyer",
        "buyer_principal_id": "pb",
        "seller_agent_id": "seller",
        "seller_principal_id": "ps",
        "price_cents": price,
        "shipping_method": method,
        "shipping_cost_cents": 0 if method is ShippingMethod.LOCAL_PICKUP else 1_500,
        "shipping_paid_by": Party.BUYER,
        "accepted_offer_id": "o1",
    }
    return DealAgreed.model_validate({**fields, **kw})


class World:
    """One market's settlement on a simulated clock, holding one deal."""

    def __init__(self, rules: MarketRulesSet = RULES) -> None:
        self.rules = rules
        self.clock = Clock(T0)
        self.desk = Settlement(self.clock, Bus(self.clock, "m"), rules, "m")

    @property
    def now(self) -> datetime:
        return self.clock.now

    @property
    def ledger(self) -> Ledger:
        return self.desk.ledger

    @property
    def deal(self) -> Deal | None:
        return next(iter(self.desk.deals.values()), None)

    def fund(self, principal: str, amount: int) -> None:
        self.desk.fund(principal, amount)

    def _since(self, start: int) -> Outcome:
        return reduce(Outcome.then, self.desk.outcomes[start:], Outcome())

    def run(self, outcome: Outcome) -> Outcome:
        """Carry out `outcome` fully; returns it with every follow-up's events merged in."""
        return self.desk.run(outcome)

    def agree(self, event_: DealAgreed, limit: int | None = 1_000_000) -> Outcome:
        return self.desk.agree(event_, limit)

    def tick(self, seconds: float) -> Outcome:
        """Let `seconds` pass; what the timers decided meanwhile."""
        start = len(self.desk.outcomes)
        self.clock.advance(self.clock.now + timedelta(seconds=seconds))
        return self._since(start)

    def until_quiet(self, limit: int = 50) -> None:
        for _ in range(limit):
            if self.deal is None or self.deal.due_at is None:
                return
            self.tick(max(0.0, (self.deal.due_at - self.now).total_seconds()) + 0.001)

    @property
    def current(self) -> Deal:
        assert self.deal is not None
        return self.deal

    def balance(self, account_id: str) -> int:
        return self.ledger.accounts[account_id].balance


def types(outcome: Outcome) -> list[str]:
    return [e.type for e in outcome.events]


def funded_world(price: int = 10_000, method: ShippingMethod = ShippingMethod.PARCEL_STANDARD) -> World:
    world = World()
    world.fund("pb", 50_000)
    world.agree(agreed(price, method))
    assert world.current.state is DealState.FUNDED
    return world


def delivered_world(packed: Condition, method: ShippingMethod = ShippingMethod.PARCEL_STANDARD) -> World:
    world = funded_world(method=method)
    if method is ShippingMethod.LOCAL_PICKUP:
        world.run(fulfilment.confirm_handover(world.current, Party.BUYER, None, RULES, world.now))
        world.run(fulfilment.confirm_handover(world.current, Party.SELLER, packed, RULES, world.now))
    else:
        world.run(fulfilment.ship(world.current, Party.SELLER, packed))
        world.tick(30)
    assert world.current.state is DealState.INSPECTING
    return world


def dispute(world: World, reason: DisputeReason, listed: Condition | None = Condition.VERY_GOOD) -> Outcome:
    return world.run(
        fulfilment.open_dispute(world.current, Party.BUYER, reason, "", listed, RULES, world.now, world.now)
    )
