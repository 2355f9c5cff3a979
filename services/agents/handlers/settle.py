"""After the handshake: ship what was sold, inspect what arrived, keep the budget honest."""

from __future__ import annotations

from haggle.contracts import Envelope
from haggle.contracts.goods import Condition, ShippingMethod
from haggle.contracts.settlement import (
    ConfirmHandover,
    DisputeOutcome,
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    Refunded,
    ShipItem,
    ShipmentDelivered,
    ShipmentLeg,
)
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.runtime.outbox import UnitOfWork
from services.agents import store
from services.agents.domain import Principal, Role, deals, purchases
from services.agents.domain.deals import DealStatus
from services.agents.handlers import shop
from services.agents.handlers.common import send


def true_condition(principal: Principal, listing_id: str) -> Condition | None:
    """What is really in the box: the seller knows its item, whatever the listing says."""
    item_id = principal.item_id_of(listing_id)
    if item_id is None:
        return None
    item = principal.mandate.item(item_id)
    return item.true_condition or item.condition


async def _party(uow: UnitOfWork, env: Envelope) -> Principal | None:
    return await store.principal_by_agent(uow.conn, str(env.agent_id))


async def on_escrow_funded(uow: UnitOfWork, env: Envelope, event: EscrowFunded) -> None:
    principal = await _party(uow, env)
    if principal is None:
        return
    seller = principal.principal_id == event.seller_principal_id
    pickup = event.shipping_method is ShippingMethod.LOCAL_PICKUP
    if seller:
        packed = true_condition(principal, event.listing_id) or Condition.GOOD
        cmd = (
            ConfirmHandover(deal_id=event.deal_id, condition=packed)
            if pickup
            else ShipItem(deal_id=event.deal_id, packed_condition=packed)
        )
    elif pickup:
        cmd = ConfirmHandover(deal_id=event.deal_id)
    else:
        return
    await send(uow, principal, cmd, SETTLEMENT_COMMANDS.name, event.deal_id)


async def on_delivered(uow: UnitOfWork, env: Envelope, event: ShipmentDelivered) -> None:
    """The buyer's inspection: the delivered condition against the listing's condition enum."""
    principal = await _party(uow, env)
    if principal is None or event.leg is not ShipmentLeg.FORWARD or event.delivered_condition is None:
        return
    known = await store.listing(uow.conn, event.listing_id)
    if known is None or principal.item_id_of(event.listing_id) is not None:
        return
    inspects = principal.mandate.inspects_goods
    cmd = deals.inspection(event.deal_id, known[0].condition, event.delivered_condition, inspects)
    if cmd is not None:
        await send(uow, principal, cmd, SETTLEMENT_COMMANDS.name, event.deal_id)


async def on_dispute_resolved(uow: UnitOfWork, env: Envelope, event: DisputeResolved) -> None:
    """A pickup item coming back: the seller confirms it has it again."""
    principal = await _party(uow, env)
    deal = await store.deal(uow.conn, event.deal_id, principal.principal_id) if principal else None
    if principal is None or deal is None or deal.role is not Role.SELLER:
        return
    pickup = deal.shipping_method == ShippingMethod.LOCAL_PICKUP.value
    if event.outcome is DisputeOutcome.REFUND_AFTER_RETURN and pickup:
        cmd = ConfirmHandover(deal_id=event.deal_id, condition=true_condition(principal, deal.listing_id))
        await send(uow, principal, cmd, SETTLEMENT_COMMANDS.name, event.deal_id)


async def _close_deal(uow: UnitOfWork, env: Envelope, deal_id: str, status: DealStatus) -> None:
    """A failed or refunded purchase gives its money back to the budget; a settled one keeps it spent."""
    principal = await _party(uow, env)
    deal = await store.deal(uow.conn, deal_id, principal.principal_id) if principal else None
    if principal is None or deal is None:
        return
    budget = await store.budget(uow.conn, principal)
    after = deal.close(status, budget)
    if after is None:
        return
    await store.save_deal_status(uow.conn, deal)
    if deal.gives_money_back:
        await store.save_budget(uow.conn, principal, after)
        await shop.wake_declined(uow, principal)


async def on_escrow_failed(uow: UnitOfWork, env: Envelope, event: EscrowFailed) -> None:
    """A purchase the principal denied or never answered is not tried again (`purchases`)."""
    principal = await _party(uow, env)
    deal = await store.deal(uow.conn, event.deal_id, principal.principal_id) if principal else None
    if principal and deal and deal.role is Role.BUYER and purchases.consent_refused(event.reason):
        await store.refuse_purchase(uow.conn, principal.principal_id, deal.listing_id, deal.want_id)
    await _close_deal(uow, env, event.deal_id, DealStatus.FAILED)


async def on_refunded(uow: UnitOfWork, env: Envelope, event: Refunded) -> None:
    await _close_deal(uow, env, event.deal_id, DealStatus.REFUNDED)


async def on_released(uow: UnitOfWork, env: Envelope, event: FundsReleased) -> None:
    await _close_deal(uow, env, event.deal_id, DealStatus.SETTLED)
