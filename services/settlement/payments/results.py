"""Committing what the provider answered: the operation's row, the intent, and what it means for the deal.

One transaction per answer, opened only after the provider call returned. The
operation row is locked first: if another instance (or an earlier life of this
one) already committed an answer, this one changes nothing.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg

from haggle.runtime.outbox import UnitOfWork, unit_of_work
from haggle.runtime.settings import Settings
from services.settlement import ledger_store
from services.settlement import store as deals
from services.settlement.handlers.outcomes import finish, utcnow
from services.settlement.payments import domain, store
from services.settlement.payments.domain import Answer, OpKind, OpStatus, ProviderResult
from services.settlement.payments.store import StoredOp

log = logging.getLogger(__name__)


async def commit(
    pool: asyncpg.Pool,
    notify_channel: str | None,
    stored: StoredOp,
    result: ProviderResult,
    settings: Settings,
) -> bool:
    """False when the operation was answered before (nothing is written twice)."""
    async with unit_of_work(pool, notify_channel) as uow:
        if await store.lock_op(uow.conn, stored.id) != OpStatus.PENDING.value:
            return False
        failed = result.answer is Answer.DECLINED or (
            result.answer is Answer.GONE and stored.op.kind is not OpKind.CAPTURE
        )
        await store.finish_op(uow.conn, stored.id, OpStatus.FAILED if failed else OpStatus.DONE, result)
        op = stored.op
        if op.kind is OpKind.AUTHORIZE:
            await _authorized(uow, stored, result, settings)
        elif op.kind is OpKind.CAPTURE and result.answer is Answer.OK:
            await store.set_intent_status(uow.conn, op.deal_id, "succeeded", result.charge_id)
        elif op.kind is OpKind.VOID and result.answer is Answer.OK:
            await store.set_intent_status(uow.conn, op.deal_id, result.status)
    if failed:
        log.error(
            "payment operation failed",
            extra={"deal_id": stored.op.deal_id, "op": stored.op.key, "code": result.code},
        )
    return True


async def _authorized(uow: UnitOfWork, stored: StoredOp, result: ProviderResult, s: Settings) -> None:
    op, now = stored.op, utcnow()
    if result.provider_id:
        before = domain.capture_before(
            now,
            timedelta(seconds=s.payments_auth_validity_seconds),
            timedelta(seconds=s.payments_capture_margin_seconds),
        )
        await store.save_intent(uow.conn, op.deal_id, op.market_id, result, op.amount_cents, now, before)
    deal = await deals.load_deal(uow.conn, op.deal_id)
    if deal is None:
        return
    outcome = domain.authorized(deal, result)
    if outcome.hold is not None:
        await ledger_store.open_accounts(uow.conn, deal.market_id, (domain.card_account(deal),))
    await finish(uow, None, outcome, await deals.rules(uow.conn, deal.market_id), now)
