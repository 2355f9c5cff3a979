"""A deal's world for the pure settlement tests: one market's in-memory ledger, carrier and clock,
and a driver that carries out outcomes the way the handlers do."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import DisputeReason
from services.settlement.domain import escrow, fulfilment
from services.settlement.domain.carrier import Booking, ShipmentRequest, SimulatedCarrier
from services.settlement.domain.deal import (
    Deal,
    DealState,
    Outcome,
    deal_accounts,
    external_account_id,
    wallet_account_id,
)
from services.settlement.domain.ledger import (
    SUCCESS,
    Account,
    AccountKind,
    Ledger,
    Phase,
    Transfer,
    TransferResult,
)

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


@dataclass
class World:
    """One market's ledger, carrier and clock, and the driver that applies outcomes like the handlers."""

    rules: MarketRulesSet = RULES
    now: datetime = T0
    ledger: Ledger = field(default_factory=Ledger)
    deal: Deal | None = None

    def fund(self, principal: str, amount: int) -> None:
        wallet, source = wallet_account_id("m", principal), external_account_id("m")
        self.ledger.open(Account(wallet, AccountKind.WALLET))
        self.ledger.open(Account(source, AccountKind.EXTERNAL, no_overdraft=False))
        assert self.ledger.apply(Transfer(f"fund:{principal}", Phase.SINGLE, source, wallet, amount)) is (
            TransferResult.OK
        )

    @property
    def carrier(self) -> SimulatedCarrier:
        return SimulatedCarrier(
            self.rules.carrier_seed,
            timedelta(seconds=self.rules.carrier_pickup_seconds),
            timedelta(seconds=self.rules.carrier_transit_seconds),
            self.rules.carrier_loss_bps,
        )

    def run(self, outcome: Outcome) -> Outcome:
        """Carry out `outcome` fully; returns it with every follow-up's events merged in."""
        total = outcome
        while True:
            if outcome.deal is not None:
                self.deal = outcome.deal
                for account in deal_accounts(outcome.deal):
                    self.ledger.open(account)
            for transfer in outcome.transfers:
                assert self.ledger.apply(transfer) in SUCCESS, transfer
            if outcome.hold is not None:
                assert self.deal is not None
                outcome = escrow.held(self.deal, self.ledger.apply(outcome.hold), self.rules, self.now)
            elif outcome.book is not None:
                assert self.deal is not None
                request = ShipmentRequest(
                    self.deal.deal_id, outcome.book, self.deal.shipping_method, self.now
                )
                booking = self.carrier.booking(request)
                tracking = self.carrier.status_at(booking, self.now)
                outcome = fulfilment.booked(self.deal, outcome.book, booking, tracking, self.now)
            else:
                return total
            total = total.then(outcome)

    def agree(self, event_: DealAgreed, limit: int | None = 1_000_000) -> Outcome:
        return self.run(escrow.agree(event_, "m", self.rules, limit, self.now))

    def tick(self, seconds: float) -> Outcome:
        self.now += timedelta(seconds=seconds)
        deal = self.deal
        if deal is None or deal.due_at is None or deal.due_at > self.now:
            return Outcome()
        if fulfilment.on_carrier(deal):
            assert deal.carrier and deal.tracking_id and deal.booked_at
            tracking = self.carrier.status_at(
                Booking(deal.carrier, deal.tracking_id, deal.booked_at), self.now
            )
            return self.run(fulfilment.tracked(deal, tracking, self.rules, self.now))
        return self.run(fulfilment.due(deal))

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
