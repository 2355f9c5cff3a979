"""From funded escrow to money moved: shipping, hand-over, inspection, disputes, timers. Pure."""

from __future__ import annotations

from datetime import datetime

from haggle.contracts.goods import Condition
from haggle.contracts.market import MarketRulesSet
from haggle.contracts.negotiation import Party
from haggle.contracts.settlement import (
    Decider,
    DisputeOpened,
    DisputeOutcome,
    DisputeReason,
    DisputeResolved,
    FundsReleased,
    HandoverConfirmed,
    InspectionEnd,
    InspectionPassed,
    Refunded,
    SettlementRefusal,
    ShipmentBooked,
    ShipmentDelivered,
    ShipmentInTransit,
    ShipmentLeg,
    ShipmentLost,
)
from services.settlement.domain.carrier import Booking, Tracking, TrackingStatus
from services.settlement.domain.deal import (
    Deal,
    DealState,
    Outcome,
    RefundReason,
    refund_transfers,
    refused,
    release_transfers,
    seconds,
)
from services.settlement.domain.escrow import approval_expired

CARRIER = "carrier"


def _wrong_state(deal: Deal, action: str) -> Outcome:
    return refused(SettlementRefusal.WRONG_STATE, f"cannot {action}: deal is {deal.state}")


def release(deal: Deal, ended_by: InspectionEnd) -> Outcome:
    paid = FundsReleased(
        deal_id=deal.deal_id,
        listing_id=deal.listing_id,
        seller_principal_id=deal.seller_principal_id,
        amount_cents=deal.payout_cents,
        fee_cents=deal.fee_cents,
    )
    ended = deal.after(state=DealState.RELEASED, due_at=None, ended_reason=ended_by.value)
    passed = InspectionPassed(deal_id=deal.deal_id, ended_by=ended_by)
    return Outcome(ended, (passed, paid), release_transfers(deal))


def refund(deal: Deal, reason: RefundReason) -> Outcome:
    event = Refunded(
        deal_id=deal.deal_id,
        listing_id=deal.listing_id,
        buyer_principal_id=deal.buyer_principal_id,
        amount_cents=deal.escrow_cents,
        reason=reason.value,
    )
    ended = deal.after(state=DealState.REFUNDED, due_at=None, ended_reason=reason.value)
    return Outcome(ended, (event,), refund_transfers(deal))


# Shipping ------------------------------------------------------------------------


def ship(deal: Deal, party: Party, packed: Condition) -> Outcome:
    if party is not Party.SELLER:
        return refused(SettlementRefusal.WRONG_PARTY, "only the seller ships")
    if deal.state is not DealState.FUNDED:
        return _wrong_state(deal, "ship")
    if deal.local_pickup:
        return refused(SettlementRefusal.WRONG_SHIPPING_METHOD, "a local pickup is handed over, not shipped")
    return Outcome(deal.after(packed_condition=packed), book=ShipmentLeg.FORWARD)


def booked(deal: Deal, leg: ShipmentLeg, booking: Booking, tracking: Tracking, now: datetime) -> Outcome:
    state = DealState.SHIPPING if leg is ShipmentLeg.FORWARD else DealState.RETURNING
    updated = deal.after(
        state=state,
        leg=leg,
        carrier=booking.carrier,
        tracking_id=booking.tracking_id,
        booked_at=booking.booked_at,
        tracking_status=TrackingStatus.LABEL_BOOKED,
        due_at=tracking.next_check_at or now,
    )
    event = ShipmentBooked(
        deal_id=deal.deal_id,
        leg=leg,
        carrier=booking.carrier,
        tracking_id=booking.tracking_id,
        method=deal.shipping_method,
    )
    return Outcome(updated, (event,))


def tracked(deal: Deal, tracking: Tracking, rules: MarketRulesSet, now: datetime) -> Outcome:
    """The carrier's latest word on a parcel in flight, forward or back."""
    assert deal.leg is not None and deal.tracking_id is not None
    leg, tracking_id = deal.leg, deal.tracking_id
    if tracking.status is deal.tracking_status:
        return Outcome(deal.after(due_at=tracking.next_check_at or now))
    steps: tuple[ShipmentInTransit, ...] = ()
    if deal.tracking_status is TrackingStatus.LABEL_BOOKED:
        steps = (ShipmentInTransit(deal_id=deal.deal_id, leg=leg, tracking_id=tracking_id),)
    moving = deal.after(tracking_status=tracking.status, due_at=tracking.next_check_at)
    if tracking.status is TrackingStatus.IN_TRANSIT:
        return Outcome(moving, steps)
    if tracking.status is TrackingStatus.DELIVERED:
        arrived = delivered(moving, rules, now) if leg is ShipmentLeg.FORWARD else _returned(moving)
        return Outcome(moving, steps).then(arrived)
    lost = ShipmentLost(deal_id=deal.deal_id, leg=leg, tracking_id=tracking_id)
    if leg is ShipmentLeg.RETURN:
        return Outcome(moving, (*steps, lost)).then(refund(moving, RefundReason.RETURNED))
    return Outcome(moving, (*steps, lost)).then(_lost_parcel(moving))


def delivered(deal: Deal, rules: MarketRulesSet, now: datetime) -> Outcome:
    ends_at = now + seconds(rules.inspection_window_seconds)
    event = ShipmentDelivered(
        deal_id=deal.deal_id,
        listing_id=deal.listing_id,
        leg=ShipmentLeg.FORWARD,
        method=deal.shipping_method,
        tracking_id=deal.tracking_id,
        delivered_condition=deal.packed_condition,
        inspection_ends_at=ends_at,
    )
    inspecting = deal.after(
        state=DealState.INSPECTING, delivered_condition=deal.packed_condition, due_at=ends_at
    )
    return Outcome(inspecting, (event,))


def _returned(deal: Deal) -> Outcome:
    event = ShipmentDelivered(
        deal_id=deal.deal_id,
        listing_id=deal.listing_id,
        leg=ShipmentLeg.RETURN,
        method=deal.shipping_method,
        tracking_id=deal.tracking_id,
    )
    return Outcome(deal, (event,)).then(refund(deal, RefundReason.RETURNED))


def _lost_parcel(deal: Deal) -> Outcome:
    """The clearest case: the carrier lost it, so the rules refund without waiting for the buyer."""
    reason = DisputeReason.NOT_DELIVERED
    opened = DisputeOpened(deal_id=deal.deal_id, reason=reason, opened_by=CARRIER, detail="carrier: lost")
    resolved = DisputeResolved(
        deal_id=deal.deal_id,
        reason=reason,
        outcome=DisputeOutcome.REFUND,
        decided_by=Decider.RULE,
        rule="lost_parcel",
    )
    disputed = deal.after(dispute_reason=reason, dispute_detail="carrier: lost")
    return Outcome(disputed, (opened, resolved)).then(refund(disputed, RefundReason.LOST_PARCEL))


# Local pickup --------------------------------------------------------------------


def confirm_handover(
    deal: Deal, party: Party, condition: Condition | None, rules: MarketRulesSet, now: datetime
) -> Outcome:
    if not deal.local_pickup:
        return refused(SettlementRefusal.WRONG_SHIPPING_METHOD, "a shipped deal has no hand-over")
    if deal.state is DealState.RETURNING:
        if party is not Party.SELLER:
            return refused(SettlementRefusal.WRONG_PARTY, "the seller confirms the item came back")
        return refund(deal, RefundReason.RETURNED)
    if deal.state is not DealState.FUNDED:
        return _wrong_state(deal, "confirm a hand-over")
    if party is Party.SELLER:
        if condition is None:
            return refused(SettlementRefusal.CONDITION_REQUIRED, "the seller states the condition")
        if deal.seller_handed_over:
            return _wrong_state(deal, "confirm twice")
        updated = deal.after(seller_handed_over=True, packed_condition=condition)
    else:
        if deal.buyer_received:
            return _wrong_state(deal, "confirm twice")
        updated = deal.after(buyer_received=True)
    confirmed = Outcome(updated, (HandoverConfirmed(deal_id=deal.deal_id, by=party),))
    if updated.seller_handed_over and updated.buyer_received:
        return confirmed.then(delivered(updated, rules, now))
    return confirmed


# Inspection and disputes -----------------------------------------------------------


def accept_goods(deal: Deal, party: Party) -> Outcome:
    if party is not Party.BUYER:
        return refused(SettlementRefusal.WRONG_PARTY, "only the buyer accepts the goods")
    if deal.state is not DealState.INSPECTING:
        return _wrong_state(deal, "accept the goods")
    return release(deal, InspectionEnd.ACCEPTED)


def dispute_rule(deal: Deal, reason: DisputeReason, listed: Condition | None) -> str | None:
    """The clear cases the rules decide; None leaves the dispute to a human."""
    arrived = deal.delivered_condition
    if reason is DisputeReason.CONDITION_WORSE and listed and arrived and not arrived.at_least(listed):
        return "condition_below_listing"
    return None


def open_dispute(
    deal: Deal,
    party: Party,
    reason: DisputeReason,
    detail: str,
    listed: Condition | None,
    rules: MarketRulesSet,
    now: datetime,
    sent_at: datetime,
) -> Outcome:
    """`sent_at`: when the broker took the dispute. A dispute sent inside the window is honoured
    however late it is handled (the window's timer waits for it)."""
    if party is not Party.BUYER:
        return refused(SettlementRefusal.WRONG_PARTY, "only the buyer opens a dispute")
    if deal.state is not DealState.INSPECTING:
        return _wrong_state(deal, "open a dispute")
    if deal.due_at is not None and sent_at > deal.due_at:
        return refused(
            SettlementRefusal.INSPECTION_CLOSED, f"sent {sent_at}; the window closed at {deal.due_at}"
        )
    opened = DisputeOpened(deal_id=deal.deal_id, reason=reason, opened_by=deal.buyer_agent_id, detail=detail)
    disputed = deal.after(state=DealState.DISPUTED, due_at=None, dispute_reason=reason, dispute_detail=detail)
    first = Outcome(disputed, (opened,))
    rule = dispute_rule(deal, reason, listed)
    if rule is None:
        return first
    return first.then(resolve(disputed, DisputeOutcome.REFUND_AFTER_RETURN, rules, now, rule=rule))


def resolve(
    deal: Deal,
    outcome: DisputeOutcome,
    rules: MarketRulesSet,
    now: datetime,
    *,
    rule: str | None = None,
    resolved_by: str | None = None,
    note: str = "",
) -> Outcome:
    """Settle a dispute by a rule or a human: each outcome posts or voids the hold exactly once."""
    if deal.state is not DealState.DISPUTED or deal.dispute_reason is None:
        return _wrong_state(deal, "resolve a dispute")
    event = DisputeResolved(
        deal_id=deal.deal_id,
        reason=deal.dispute_reason,
        outcome=outcome,
        decided_by=Decider.RULE if rule else Decider.OPERATOR,
        rule=rule,
        resolved_by=resolved_by,
        note=note,
    )
    first = Outcome(deal, (event,))
    if outcome is DisputeOutcome.RELEASE:
        return first.then(release(deal, InspectionEnd.DISPUTE_RELEASED))
    if outcome is DisputeOutcome.REFUND:
        return first.then(refund(deal, RefundReason.DISPUTE_REFUND))
    if deal.local_pickup:
        back_by = now + seconds(rules.ship_deadline_seconds)
        return first.then(Outcome(deal.after(state=DealState.RETURNING, due_at=back_by)))
    return first.then(Outcome(deal, book=ShipmentLeg.RETURN))


# Timers ------------------------------------------------------------------------------


def on_carrier(deal: Deal) -> bool:
    """A parcel in flight: the timer asks the carrier before deciding."""
    return deal.state in (DealState.SHIPPING, DealState.RETURNING) and deal.tracking_id is not None


def due(deal: Deal) -> Outcome:
    """What a passed deadline means in each state that has one (parcels in flight aside)."""
    if deal.state is DealState.AWAITING_APPROVAL:
        return approval_expired(deal)
    if deal.state is DealState.FUNDED:
        return refund(deal, RefundReason.NOT_SHIPPED)
    if deal.state is DealState.INSPECTING:
        return release(deal, InspectionEnd.WINDOW_ELAPSED)
    if deal.state is DealState.RETURNING:
        # A local pickup whose seller never confirmed the item came back: the rules already sided
        # with the buyer, and the buyer cannot prove a hand-back the seller will not confirm.
        return refund(deal, RefundReason.RETURNED)
    return Outcome(deal.after(due_at=None))
