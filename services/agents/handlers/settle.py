"""After the handshake: ship what was sold, inspect what arrived, keep the budget honest."""

from __future__ import annotations

from haggle.contracts import Envelope
from haggle.contracts.settlement import (
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    Refunded,
    ShipmentDelivered,
)
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.runtime.outbox import UnitOfWork
from services.agents import store
from services.agents.domain import Principal, steps
from services.agents.domain.deals import DealStatus
from services.agents.handlers import shop
from services.agents.handlers.common import send


async def _party(uow: UnitOfWork, env: Envelope) -> Principal | None:
    return await store.principal_by_agent(uow.conn, str(env.agent_id))


async def on_escrow_funded(uow: UnitOfWork, env: Envelope, event: EscrowFunded) -> None:
    principal = await _party(uow, env)
    cmd = steps.on_escrow_funded(principal, event) if principal else None
    if principal and cmd:
        await send(uow, principal, cmd, SETTLEMENT_COMMANDS.name, event.deal_id)


async def on_delivered(uow: UnitOfWork, env: Envelope, event: ShipmentDelivered) -> None:
    """The buyer's inspection: the delivered condition against the listing's (`steps.inspect`)."""
    principal = await _party(uow, env)
    if principal is None:
        return
    known = await store.listing(uow.conn, event.listing_id)
    cmd = steps.inspect(principal, event, known[0] if known else None)
    if cmd is not None:
        await send(uow, principal, cmd, SETTLEMENT_COMMANDS.name, event.deal_id)


async def on_dispute_resolved(uow: UnitOfWork, env: Envelope, event: DisputeResolved) -> None:
    """A pickup item coming back: the seller confirms it has it again."""
    principal = await _party(uow, env)
    deal = await store.deal(uow.conn, event.deal_id, principal.principal_id) if principal else None
    cmd = steps.on_dispute_resolved(principal, deal, event) if principal and deal else None
    if principal and cmd:
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
    if principal and deal and steps.refuses_again(deal, event):
        await store.refuse_purchase(uow.conn, principal.principal_id, deal.listing_id, deal.want_id)
    await _close_deal(uow, env, event.deal_id, DealStatus.FAILED)


async def on_refunded(uow: UnitOfWork, env: Envelope, event: Refunded) -> None:
    await _close_deal(uow, env, event.deal_id, DealStatus.REFUNDED)


async def on_released(uow: UnitOfWork, env: Envelope, event: FundsReleased) -> None:
    await _close_deal(uow, env, event.deal_id, DealStatus.SETTLED)
