"""The payment rails' part of the settlement service: its webhook route and its payment job.

Both exist only where Stripe is configured (`HAGGLE_STRIPE_API_KEY`); without
it, a card market's operations wait (and `haggle payments reconcile` says so).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.routing import BaseRoute

from haggle.runtime.settings import Settings
from services.settlement.payments.job import PaymentJob, payment_job
from services.settlement.payments.stripe_rails import StripeRails
from services.settlement.payments.webhooks import webhook_route

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Wiring:
    routes: Sequence[BaseRoute] = ()
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()


def wiring(pool: asyncpg.Pool, notify_channel: str | None, settings: Settings) -> Wiring:
    if not settings.stripe_configured:
        log.info("no payment provider configured: card markets' payments wait")
        return Wiring()
    job = PaymentJob(pool, notify_channel, settings, StripeRails(settings))
    return Wiring([webhook_route(pool, notify_channel, settings)], [payment_job(job)])
