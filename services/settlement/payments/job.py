"""The payment job: the provider operations settlement recorded, made outside any transaction.

    record (in the decision's transaction) → lease (a short transaction) → call the provider
    (no transaction open, retried with the same idempotency key) → commit the answer (results)

A kill -9 anywhere in between loses nothing and doubles nothing: an operation
whose answer was not committed comes due again when its lease ends and is sent
with the same key, which the provider answers with the first call's result.
The job also captures early the authorizations a deal would outlast.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import asyncpg
import stripe

from haggle.runtime.settings import Settings
from services.settlement import store as deals
from services.settlement.domain.deal import Deal
from services.settlement.handlers.outcomes import utcnow
from services.settlement.payments import domain, metrics, results, store
from services.settlement.payments.domain import Answer, OpKind, ProviderResult
from services.settlement.payments.port import PaymentRails
from services.settlement.payments.store import StoredOp
from services.settlement.payments.stripe_rails import ProviderUnavailable

log = logging.getLogger(__name__)
BATCH = 20
SWEEP_PAGE = 500


class PaymentJob:
    def __init__(
        self, pool: asyncpg.Pool, notify_channel: str | None, settings: Settings, rails: PaymentRails
    ) -> None:
        self.pool, self.notify_channel, self.settings, self.rails = pool, notify_channel, settings, rails
        self._sweep_at = 0.0

    async def call(self, stored: StoredOp) -> ProviderResult:
        """The provider call for one operation; a refusal that is not a card decline is an answer too."""
        op = stored.op
        deal = await deals.find_deal(self.pool, op.deal_id)
        assert deal is not None, f"operation {op.key} for an unknown deal"
        try:
            if op.kind is OpKind.AUTHORIZE:
                buyer = await store.party(self.pool, op.market_id, deal.buyer_principal_id)
                return await self.rails.authorize(op, buyer)
            intent = await store.intent_of(self.pool, op.deal_id)
            if intent is None:
                return ProviderResult(Answer.GONE, code="no_authorization")
            if op.kind is OpKind.CAPTURE:
                return await self.rails.capture(op, intent.intent_id)
            if op.kind is OpKind.PAYOUT:
                seller = await store.party(self.pool, op.market_id, deal.seller_principal_id)
                return await self.rails.payout(op, seller, intent.charge_id)
            return await self.rails.void(op, intent.intent_id, intent.captured)
        except ProviderUnavailable:
            raise
        except stripe.StripeError as exc:
            code = getattr(exc, "code", None) or type(exc).__name__
            answer = Answer.DECLINED if op.kind is OpKind.AUTHORIZE else Answer.GONE
            return ProviderResult(answer, code=str(code))

    async def run_op(self, stored: StoredOp) -> None:
        """One operation; whatever goes wrong, it is tried again later with the same key."""
        backoff = min(60.0, 2.0 ** min(stored.attempts, 6))
        try:
            result = await self.call(stored)
            if await results.commit(self.pool, self.notify_channel, stored, result, self.settings):
                metrics.PAYMENT_OPS.labels(stored.op.kind.value, result.answer.value).inc()
        except asyncio.CancelledError:
            raise
        except ProviderUnavailable as exc:
            metrics.PAYMENT_RETRIES.inc()
            log.warning("payment provider unavailable; retrying later", extra={"op": stored.op.key})
            await store.retry_later(self.pool, stored.id, backoff, str(exc))
        except Exception as exc:
            metrics.PAYMENT_RETRIES.inc()
            log.exception("payment operation failed; retrying later", extra={"op": stored.op.key})
            await store.retry_later(self.pool, stored.id, backoff, type(exc).__name__)

    async def capture_early(self) -> None:
        """Record a capture for each held authorization its deal would outlast (every candidate,
        page by page: a crowd of deals the rule leaves alone never hides one it would pick)."""
        now, after = utcnow(), ""
        while page := await store.capture_candidates(self.pool, now, after, SWEEP_PAGE):
            due = []
            for intent, data in page:
                deal = Deal.model_validate_json(data)
                rules = await deals.rules(self.pool, deal.market_id)
                if domain.capture_now(deal, intent.capture_before, rules, now):
                    due.append(domain.capture_op(deal))
            if due:
                async with self.pool.acquire() as conn:
                    await store.record_ops(conn, due)
            after = page[-1][0].deal_id

    async def run_once(self) -> int:
        loop = asyncio.get_running_loop()
        if loop.time() >= self._sweep_at:
            await self.capture_early()
            self._sweep_at = loop.time() + self.settings.payments_sweep_seconds
        claimed = await store.claim(self.pool, self.settings.payments_lease_seconds, BATCH)
        await asyncio.gather(*(self.run_op(s) for s in claimed))
        return len(claimed)


def payment_job(job: PaymentJob) -> Callable[[], Coroutine[Any, Any, None]]:
    async def settlement_payments() -> None:
        while True:  # run under the service's supervisor: an error restarts it after a backoff
            claimed = await job.run_once()
            if claimed < BATCH:
                await asyncio.sleep(job.settings.payments_tick_seconds)

    return settlement_payments
