"""The settlement state machine, pure: each decision by example (escrow, shipping, pickup, disputes).

`settlement_world.World` carries outcomes out against the in-memory ledger and the
simulated carrier, so each example checks the money as well as the events.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.negotiation import Party
from haggle.contracts.settlement import (
    DisputeOutcome,
    DisputeReason,
    EscrowFailure,
    SettlementRefusal,
    ShipmentLeg,
)
from services.settlement.domain import escrow, fulfilment
from services.settlement.domain.carrier import ShipmentRequest, SimulatedCarrier, TrackingStatus
from services.settlement.domain.deal import DealState, escrow_account_id, wallet_account_id
from services.settlement.domain.ledger import TransferResult
from tests.unit.settlement_world import (
    RULES,
    T0,
    World,
    agreed,
    delivered_world,
    dispute,
    funded_world,
    types,
)

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
        world.current, Party.SELLER, DisputeReason.WRONG_ITEM, "", None, RULES, world.now, world.now
    ).refusal
    assert seller is not None and seller.reason is SettlementRefusal.WRONG_PARTY
    late = world.now + timedelta(seconds=RULES.inspection_window_seconds + 1)
    closed = fulfilment.open_dispute(
        world.current, Party.BUYER, DisputeReason.WRONG_ITEM, "", None, RULES, world.now, late
    )
    assert closed.refusal is not None and closed.refusal.reason is SettlementRefusal.INSPECTION_CLOSED
    sent_inside = fulfilment.open_dispute(
        world.current, Party.BUYER, DisputeReason.WRONG_ITEM, "", None, RULES, late, world.now
    )
    assert sent_inside.refusal is None and sent_inside.deal is not None
    assert sent_inside.deal.state is DealState.DISPUTED
    accept = fulfilment.accept_goods(world.current, Party.SELLER).refusal
    assert accept is not None and accept.reason is SettlementRefusal.WRONG_PARTY
