"""The settlement state machine, pure: each decision by example, then random lives of a deal by property.

A tiny driver carries out outcomes the way the handlers do, against the
in-memory ledger and the simulated carrier, so the money side is checked too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import DealAgreed, Party
from haggle.contracts.settlement import (
    DisputeOutcome,
    DisputeReason,
    EscrowFailure,
    SettlementRefusal,
    ShipmentLeg,
)
from services.settlement.domain import escrow, fulfilment
from services.settlement.domain.carrier import ShipmentRequest, SimulatedCarrier, TrackingStatus
from services.settlement.domain.deal import (
    Deal,
    DealState,
    Outcome,
    deal_accounts,
    escrow_account_id,
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
    invariant_violations,
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
            from services.settlement.domain.carrier import Booking

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


# Escrow -------------------------------------------------------------------------------


def test_within_the_limit_the_price_and_buyer_paid_shipping_are_held() -> None:
    world = World()
    world.fund("pb", 50_000)
    outcome = world.agree(agreed(10_000))
    assert types(outcome) == ["EscrowFunded"]
    assert world.current.escrow_cents == 11_500
    assert world.ledger.accounts[wallet_account_id("m", "pb")].available == 50_000 - 11_500
    assert world.ledger.accounts[escrow_account_id("d1")].credits_pending == 11_500
    assert world.current.due_at == T0 + timedelta(seconds=RULES.ship_deadline_seconds)


def test_seller_paid_shipping_stays_outside_escrow() -> None:
    world = World()
    world.fund("pb", 50_000)
    world.agree(agreed(10_000, shipping_paid_by=Party.SELLER))
    assert world.current.escrow_cents == 10_000


def test_insufficient_funds_fail_the_escrow_and_move_nothing() -> None:
    world = World()
    world.fund("pb", 5_000)
    outcome = world.agree(agreed(10_000))
    assert types(outcome) == ["EscrowFailed"]
    assert outcome.events[0].reason == EscrowFailure.INSUFFICIENT_FUNDS  # type: ignore[attr-defined]
    assert world.current.state is DealState.FAILED and world.current.due_at is None
    assert world.ledger.accounts[wallet_account_id("m", "pb")].available == 5_000


def test_a_buyer_without_a_wallet_fails_with_no_wallet() -> None:
    outcome = World().agree(agreed(), limit=None)
    assert outcome.events[0].reason == EscrowFailure.NO_WALLET  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "overrides", [{"price_cents": 0}, {"seller_principal_id": "pb"}, {"shipping_cost_cents": -1}]
)
def test_an_impossible_deal_fails_as_invalid(overrides: dict[str, object]) -> None:
    outcome = World().agree(agreed(**overrides))
    assert outcome.events[0].reason == EscrowFailure.INVALID_DEAL  # type: ignore[attr-defined]


def test_above_the_limit_a_human_is_asked_and_nothing_is_held_yet() -> None:
    world = World()
    world.fund("pb", 50_000)
    outcome = world.agree(agreed(10_000), limit=11_499)
    assert types(outcome) == ["ApprovalRequested"]
    assert world.current.state is DealState.AWAITING_APPROVAL
    assert world.current.due_at == T0 + timedelta(seconds=RULES.approval_timeout_seconds)
    assert escrow_account_id("d1") not in world.ledger.accounts or world.balance(escrow_account_id("d1")) == 0


def test_granted_approval_holds_denied_fails_late_answers_change_nothing() -> None:
    world = World()
    world.fund("pb", 50_000)
    world.agree(agreed(), limit=0)
    approval = world.current.approval_id
    assert approval is not None
    assert escrow.approval_granted(world.current, "apr-other").deal is None
    assert types(world.run(escrow.approval_granted(world.current, approval))) == ["EscrowFunded"]
    assert escrow.approval_denied(world.current, approval).deal is None
    assert escrow.approval_granted(world.current, approval).deal is None


def test_denied_and_expired_approvals_fail_the_escrow() -> None:
    world = World()
    world.agree(agreed(), limit=0)
    outcome = escrow.approval_denied(world.current, world.current.approval_id or "")
    assert outcome.events[0].reason == EscrowFailure.APPROVAL_DENIED  # type: ignore[attr-defined]
    world = World()
    world.agree(agreed(), limit=0)
    expired = world.tick(RULES.approval_timeout_seconds + 1)
    assert types(expired) == ["ApprovalExpired", "EscrowFailed"]
    assert world.current.state is DealState.FAILED


def test_a_hold_the_ledger_refuses_for_another_reason_is_a_bug_not_a_failure() -> None:
    deal = escrow.new_deal(agreed(), "m", RULES)
    with pytest.raises(Exception, match="hold for d1"):
        escrow.held(deal, TransferResult.PENDING_TRANSFER_NOT_FOUND, RULES, T0)


# Shipping, inspection, release ----------------------------------------------------


def test_happy_path_pays_the_seller_price_less_fee_and_the_carrier_its_cost() -> None:
    world = funded_world(10_000)
    assert world.run(fulfilment.ship(world.current, Party.SELLER, Condition.VERY_GOOD)).events[0].type == (
        "ShipmentBooked"
    )
    assert world.current.state is DealState.SHIPPING
    assert types(world.tick(10)) == ["ShipmentInTransit"]
    delivered = world.tick(20)
    assert types(delivered) == ["ShipmentDelivered"]
    assert world.current.state is DealState.INSPECTING
    assert world.current.delivered_condition is Condition.VERY_GOOD
    assert types(world.tick(100)) == ["InspectionPassed", "FundsReleased"]
    assert world.current.state is DealState.RELEASED
    assert world.balance(wallet_account_id("m", "ps")) == 9_500
    assert world.balance("fees:m") == 500
    assert world.balance("carrier:m") == 1_500
    assert world.balance(escrow_account_id("d1")) == 0
    assert world.balance(wallet_account_id("m", "pb")) == 50_000 - 11_500


def test_the_buyer_may_accept_before_the_window_ends() -> None:
    world = funded_world()
    world.run(fulfilment.ship(world.current, Party.SELLER, Condition.GOOD))
    world.tick(30)
    outcome = world.run(fulfilment.accept_goods(world.current, Party.BUYER))
    assert types(outcome) == ["InspectionPassed", "FundsReleased"]


def test_only_the_seller_ships_only_when_funded_and_never_a_pickup() -> None:
    world = funded_world()
    assert fulfilment.ship(world.current, Party.BUYER, Condition.NEW).refusal.reason is (  # type: ignore[union-attr]
        SettlementRefusal.WRONG_PARTY
    )
    pickup = funded_world(method=ShippingMethod.LOCAL_PICKUP)
    refusal = fulfilment.ship(pickup.current, Party.SELLER, Condition.NEW).refusal
    assert refusal is not None and refusal.reason is SettlementRefusal.WRONG_SHIPPING_METHOD
    world.run(fulfilment.ship(world.current, Party.SELLER, Condition.NEW))
    refusal = fulfilment.ship(world.current, Party.SELLER, Condition.NEW).refusal
    assert refusal is not None and refusal.reason is SettlementRefusal.WRONG_STATE


def test_not_shipped_by_the_deadline_refunds_the_buyer() -> None:
    world = funded_world()
    outcome = world.tick(RULES.ship_deadline_seconds + 1)
    assert types(outcome) == ["Refunded"]
    assert world.balance(wallet_account_id("m", "pb")) == 50_000
    assert world.ledger.accounts[wallet_account_id("m", "pb")].available == 50_000


def test_a_lost_parcel_is_refunded_by_rule() -> None:
    world = World(rules=RULES.model_copy(update={"carrier_loss_bps": 10_000}))
    world.fund("pb", 50_000)
    world.agree(agreed())
    world.run(fulfilment.ship(world.current, Party.SELLER, Condition.GOOD))
    outcome = world.tick(30)
    assert types(outcome) == [
        "ShipmentInTransit",
        "ShipmentLost",
        "DisputeOpened",
        "DisputeResolved",
        "Refunded",
    ]
    assert world.current.state is DealState.REFUNDED
    assert world.balance(wallet_account_id("m", "pb")) == 50_000


def test_the_simulated_carrier_is_deterministic_and_honours_its_loss_rate() -> None:
    carrier = SimulatedCarrier(seed=7, loss_bps=2_000)
    ids = [SimulatedCarrier.tracking_id_for(f"d{i}", ShipmentLeg.FORWARD) for i in range(2_000)]
    lost = sum(carrier.loses(i) for i in ids)
    assert 300 < lost < 500
    assert [carrier.loses(i) for i in ids] == [SimulatedCarrier(seed=7, loss_bps=2_000).loses(i) for i in ids]
    assert not any(SimulatedCarrier(loss_bps=0).loses(i) for i in ids)
    with pytest.raises(ValueError):
        SimulatedCarrier(loss_bps=10_001)


def test_the_carrier_reports_by_elapsed_time() -> None:
    carrier = SimulatedCarrier(pickup=timedelta(seconds=10), transit=timedelta(seconds=20), loss_bps=0)
    booking = carrier.booking(ShipmentRequest("d", ShipmentLeg.FORWARD, ShippingMethod.PARCEL_SMALL, T0))
    statuses = [carrier.status_at(booking, T0 + timedelta(seconds=s)).status for s in (0, 9, 10, 29, 30)]
    assert statuses == [TrackingStatus.LABEL_BOOKED] * 2 + [TrackingStatus.IN_TRANSIT] * 2 + [
        TrackingStatus.DELIVERED
    ]


# Local pickup -------------------------------------------------------------------------


def test_pickup_needs_both_sides_and_the_seller_states_the_condition() -> None:
    world = funded_world(method=ShippingMethod.LOCAL_PICKUP)
    refusal = fulfilment.confirm_handover(world.current, Party.SELLER, None, RULES, world.now).refusal
    assert refusal is not None and refusal.reason is SettlementRefusal.CONDITION_REQUIRED
    assert types(
        world.run(fulfilment.confirm_handover(world.current, Party.BUYER, None, RULES, world.now))
    ) == ["HandoverConfirmed"]
    again = fulfilment.confirm_handover(world.current, Party.BUYER, None, RULES, world.now).refusal
    assert again is not None and again.reason is SettlementRefusal.WRONG_STATE
    outcome = world.run(
        fulfilment.confirm_handover(world.current, Party.SELLER, Condition.GOOD, RULES, world.now)
    )
    assert types(outcome) == ["HandoverConfirmed", "ShipmentDelivered"]
    assert world.current.state is DealState.INSPECTING
    world.until_quiet()
    assert world.current.state is DealState.RELEASED
    assert world.balance(wallet_account_id("m", "ps")) == 9_500


def test_a_shipped_deal_has_no_handover() -> None:
    world = funded_world()
    refusal = fulfilment.confirm_handover(
        world.current, Party.SELLER, Condition.NEW, RULES, world.now
    ).refusal
    assert refusal is not None and refusal.reason is SettlementRefusal.WRONG_SHIPPING_METHOD


# Disputes -----------------------------------------------------------------------------


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
        fulfilment.open_dispute(world.current, Party.BUYER, reason, "", listed, RULES, world.now)
    )


def test_condition_below_listing_is_refunded_after_the_item_comes_back() -> None:
    world = delivered_world(Condition.ACCEPTABLE)
    outcome = dispute(world, DisputeReason.CONDITION_WORSE)
    assert types(outcome) == ["DisputeOpened", "DisputeResolved", "ShipmentBooked"]
    assert world.current.state is DealState.RETURNING and world.current.leg is ShipmentLeg.RETURN
    world.until_quiet()
    assert world.current.state is DealState.REFUNDED
    assert world.balance(wallet_account_id("m", "pb")) == 50_000


def test_a_pickup_return_ends_when_the_seller_confirms_it_came_back() -> None:
    world = delivered_world(Condition.FOR_PARTS, ShippingMethod.LOCAL_PICKUP)
    dispute(world, DisputeReason.CONDITION_WORSE)
    assert world.current.state is DealState.RETURNING
    refusal = fulfilment.confirm_handover(world.current, Party.BUYER, None, RULES, world.now).refusal
    assert refusal is not None and refusal.reason is SettlementRefusal.WRONG_PARTY
    outcome = world.run(fulfilment.confirm_handover(world.current, Party.SELLER, None, RULES, world.now))
    assert types(outcome) == ["Refunded"]


@pytest.mark.parametrize(
    ("reason", "packed", "listed"),
    [
        (DisputeReason.CONDITION_WORSE, Condition.VERY_GOOD, Condition.VERY_GOOD),
        (DisputeReason.CONDITION_WORSE, Condition.ACCEPTABLE, None),
        (DisputeReason.WRONG_ITEM, Condition.VERY_GOOD, Condition.VERY_GOOD),
        (DisputeReason.NOT_DELIVERED, Condition.VERY_GOOD, Condition.VERY_GOOD),
    ],
)
def test_unclear_disputes_wait_for_a_human(
    reason: DisputeReason, packed: Condition, listed: Condition | None
) -> None:
    world = delivered_world(packed)
    assert types(dispute(world, reason, listed)) == ["DisputeOpened"]
    assert world.current.state is DealState.DISPUTED and world.current.due_at is None


@pytest.mark.parametrize(
    ("outcome", "state", "seller_gets"),
    [(DisputeOutcome.RELEASE, DealState.RELEASED, 9_500), (DisputeOutcome.REFUND, DealState.REFUNDED, 0)],
)
def test_a_human_resolves_by_posting_or_voiding_once(
    outcome: DisputeOutcome, state: DealState, seller_gets: int
) -> None:
    world = delivered_world(Condition.VERY_GOOD)
    dispute(world, DisputeReason.WRONG_ITEM)
    world.run(fulfilment.resolve(world.current, outcome, RULES, world.now, resolved_by="ops"))
    assert world.current.state is state
    assert world.balance(wallet_account_id("m", "ps")) == seller_gets
    again = fulfilment.resolve(world.current, outcome, RULES, world.now, resolved_by="ops").refusal
    assert again is not None and again.reason is SettlementRefusal.WRONG_STATE


def test_disputes_come_from_the_buyer_within_the_window() -> None:
    world = delivered_world(Condition.VERY_GOOD)
    seller = fulfilment.open_dispute(
        world.current, Party.SELLER, DisputeReason.WRONG_ITEM, "", None, RULES, world.now
    ).refusal
    assert seller is not None and seller.reason is SettlementRefusal.WRONG_PARTY
    late = world.now + timedelta(seconds=RULES.inspection_window_seconds + 1)
    closed = fulfilment.open_dispute(
        world.current, Party.BUYER, DisputeReason.WRONG_ITEM, "", None, RULES, late
    )
    assert closed.refusal is not None and closed.refusal.reason is SettlementRefusal.INSPECTION_CLOSED
    accept = fulfilment.accept_goods(world.current, Party.SELLER).refusal
    assert accept is not None and accept.reason is SettlementRefusal.WRONG_PARTY


# Any life of a deal ---------------------------------------------------------------------

ACTIONS = st.one_of(
    st.tuples(st.just("tick"), st.integers(min_value=1, max_value=200)),
    st.tuples(st.just("ship"), st.sampled_from(list(Condition))),
    st.tuples(st.just("handover"), st.sampled_from(list(Party)), st.sampled_from([None, *Condition])),
    st.tuples(st.just("accept"), st.sampled_from(list(Party))),
    st.tuples(st.just("dispute"), st.sampled_from(list(Party)), st.sampled_from(list(DisputeReason))),
    st.tuples(st.just("resolve"), st.sampled_from(list(DisputeOutcome))),
    st.tuples(st.just("answer"), st.booleans()),
)


def act(world: World, action: tuple[object, ...]) -> Outcome:
    deal, now = world.current, world.now
    match action:
        case ("tick", int(seconds)):
            return world.tick(seconds)
        case ("ship", Condition() as packed):
            decision = fulfilment.ship(deal, Party.SELLER, packed)
        case ("handover", Party() as party, condition):
            decision = fulfilment.confirm_handover(deal, party, condition, world.rules, now)  # type: ignore[arg-type]
        case ("accept", Party() as party):
            decision = fulfilment.accept_goods(deal, party)
        case ("dispute", Party() as party, DisputeReason() as reason):
            decision = fulfilment.open_dispute(deal, party, reason, "", Condition.VERY_GOOD, world.rules, now)
        case ("resolve", DisputeOutcome() as outcome):
            decision = fulfilment.resolve(deal, outcome, world.rules, now, resolved_by="ops")
        case ("answer", bool(granted)):
            answer = escrow.approval_granted if granted else escrow.approval_denied
            decision = answer(deal, deal.approval_id or "")
        case _:
            raise AssertionError(action)
    return world.run(decision)


@settings(max_examples=250, deadline=None)
@given(
    method=st.sampled_from([ShippingMethod.PARCEL_STANDARD, ShippingMethod.LOCAL_PICKUP]),
    paid_by=st.sampled_from(list(Party)),
    price=st.integers(min_value=1, max_value=40_000),
    funds=st.one_of(st.just(60_000), st.integers(min_value=0, max_value=50_000)),
    limit=st.sampled_from([0, 20_000, 1_000_000, 1_000_000]),
    loss_bps=st.sampled_from([0, 5_000, 10_000]),
    actions=st.lists(ACTIONS, max_size=40),
)
def test_any_life_of_a_deal_moves_money_exactly_once(
    method: ShippingMethod,
    paid_by: Party,
    price: int,
    funds: int,
    limit: int,
    loss_bps: int,
    actions: list[tuple[object, ...]],
) -> None:
    world = World(rules=RULES.model_copy(update={"carrier_loss_bps": loss_bps}))
    world.fund("pb", funds + 1)
    world.agree(agreed(price, method, shipping_paid_by=paid_by), limit=limit)
    for action in actions:
        act(world, action)
    world.until_quiet()
    deal = world.current
    event(f"{method.value}: {deal.state.value}")
    assert invariant_violations(world.ledger.accounts.values(), world.ledger.transfers.values()) == []
    buyer = world.ledger.accounts[wallet_account_id("m", "pb")]
    escrow_ = world.ledger.accounts.get(escrow_account_id("d1"))
    if deal.state is DealState.DISPUTED:
        assert escrow_ is not None and escrow_.credits_pending == deal.escrow_cents
        return
    assert deal.final, deal.state
    assert escrow_ is None or (escrow_.balance, escrow_.credits_pending) == (0, 0)
    seller = world.ledger.accounts.get(wallet_account_id("m", "ps"))
    if deal.state is DealState.RELEASED:
        assert seller is not None and seller.balance == price - price * 500 // 10_000
        assert buyer.balance == funds + 1 - deal.escrow_cents
    else:
        assert seller is None or seller.balance == 0
        assert buyer.balance == buyer.available == funds + 1
