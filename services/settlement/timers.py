"""Deadlines as a background job: approval timeouts, ship-by dates, parcels in flight, inspection windows.

Every deal carries `due_at`, the next moment something may happen to it
without anyone sending a message. A deadline fires only once every command
the broker took before it has been handled (`HandledThrough`): a dispute sent
inside the window while settlement was down is read and judged first. The job picks due deals with
`FOR UPDATE SKIP LOCKED`, so several instances share the work, and decides
each in a savepoint of one transaction whose outbox rows commit with it:
a kill -9 at any point leaves either nothing done or everything done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from haggle.runtime.consumer import TRANSIENT_ERRORS
from haggle.runtime.handled import HandledThrough
from haggle.runtime.outbox import UnitOfWork, unit_of_work
from services.settlement import metrics, store
from services.settlement.carriers import carrier_for
from services.settlement.domain import fulfilment
from services.settlement.domain.carrier import Booking
from services.settlement.domain.deal import Deal
from services.settlement.handlers.outcomes import finish, utcnow

log = logging.getLogger(__name__)

RETRY_AFTER = timedelta(seconds=5)
GAUGE_EVERY_SECONDS = 5.0


async def _fire(uow: UnitOfWork, deal: Deal, now: datetime) -> None:
    rules = await store.rules(uow.conn, deal.market_id)
    if fulfilment.on_carrier(deal):
        assert deal.carrier and deal.tracking_id and deal.booked_at
        booking = Booking(deal.carrier, deal.tracking_id, deal.booked_at)
        tracking = await carrier_for(rules).track(booking, now)
        outcome = fulfilment.tracked(deal, tracking, rules, now)
    else:
        outcome = fulfilment.due(deal)
    await finish(uow, None, outcome, rules, now)


async def fire_due(pool: asyncpg.Pool, notify_channel: str | None, due_by: datetime, batch: int = 50) -> int:
    """Decide every deal due by `due_by` (up to `batch`); returns how many were looked at."""
    now = utcnow()
    async with unit_of_work(pool, notify_channel) as uow:
        deals = await store.due_deals(uow.conn, min(now, due_by), batch)
        for deal in deals:
            try:
                async with uow.conn.transaction():
                    await _fire(uow, deal, now)
            except TRANSIENT_ERRORS:
                raise
            except Exception:
                metrics.TIMER_FAILURES.inc()
                log.exception("deadline failed; retrying later", extra={"deal_id": deal.deal_id})
                await store.postpone(uow.conn, deal.deal_id, now + RETRY_AFTER)
    return len(deals)


async def fire_handled(
    pool: asyncpg.Pool, notify_channel: str | None, handled: HandledThrough, batch: int
) -> int:
    """The deals due, as far as the command topics are handled; 0 when none may fire yet."""
    due_by = await handled.fire_until(await store.first_due(pool))
    return 0 if due_by is None else await fire_due(pool, notify_channel, due_by, batch)


async def refresh_escrow_gauge(pool: asyncpg.Pool) -> None:
    held = await pool.fetchval(
        "SELECT coalesce(sum(credits_pending + credits_posted - debits_posted), 0)"
        " FROM accounts WHERE kind = 'escrow'"
    )
    metrics.ESCROW_BALANCE_CENTS.set(int(held))


def timer_job(
    pool: asyncpg.Pool, notify_channel: str | None, handled: HandledThrough, tick: float, batch: int = 50
) -> Callable[[], Coroutine[Any, Any, None]]:
    async def settlement_timers() -> None:
        loop = asyncio.get_running_loop()
        gauge_at = 0.0
        try:
            while True:  # run under the service's supervisor: an error restarts it after a backoff
                fired = await fire_handled(pool, notify_channel, handled, batch)
                if loop.time() >= gauge_at:
                    await refresh_escrow_gauge(pool)
                    gauge_at = loop.time() + GAUGE_EVERY_SECONDS
                if fired < batch:
                    await asyncio.sleep(tick)
        finally:
            await handled.close()

    return settlement_timers
