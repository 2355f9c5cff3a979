"""The Stripe webhook endpoint: a signed event in, a `ProviderEvent` command out on settlement.commands.

Stripe signs each delivery (`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256>`);
a bad signature, or a timestamp outside the tolerance (an old delivery replayed),
is answered 400 and goes no further. An accepted event goes into the outbox in one
short transaction (no provider call), under an envelope id derived from Stripe's
event id, so a redelivery is the same message; the command handler takes each
provider event id once.
"""

from __future__ import annotations

import logging
import uuid

import asyncpg
import orjson
import stripe
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from haggle.contracts import wrap
from haggle.contracts.settlement import ProviderEvent
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.runtime.outbox import unit_of_work
from haggle.runtime.settings import Settings, revealed
from services.settlement.payments import metrics, store
from services.settlement.payments.handlers import STRIPE, _intent_id

log = logging.getLogger(__name__)
PATH = "/payments/stripe/webhook"
PRODUCER = "settlement-webhook"
EVENT_NAMESPACE = uuid.UUID("6b1d3c56-7f0e-4d8e-9a55-0a8f0c2b9e17")
MAX_BODY = 60_000


def webhook_route(pool: asyncpg.Pool, notify_channel: str | None, settings: Settings) -> Route:
    async def stripe_webhook(request: Request) -> Response:
        secret = revealed(settings.stripe_webhook_secret)
        body = await request.body()
        if not secret:
            return JSONResponse({"error": "webhooks_not_configured"}, 503)
        if len(body) > MAX_BODY:
            metrics.WEBHOOKS.labels("too_large").inc()
            return JSONResponse({"error": "too_large"}, 413)
        header = request.headers.get("stripe-signature", "")
        tolerance = settings.stripe_webhook_tolerance_seconds
        try:
            stripe.WebhookSignature.verify_header(body.decode(), header, secret, tolerance)
            event = orjson.loads(body)
            event_id, obj = str(event["id"]), dict(event["data"]["object"])
        except (ValueError, KeyError, TypeError, UnicodeDecodeError, stripe.SignatureVerificationError):
            metrics.WEBHOOKS.labels("bad_signature").inc()
            log.warning("webhook refused: bad signature or stale timestamp")
            return JSONResponse({"error": "bad_signature"}, 400)
        intent_id = _intent_id(obj)
        async with unit_of_work(pool, notify_channel) as uow:
            intent = await store.intent_by_provider_id(uow.conn, intent_id) if intent_id else None
            command = ProviderEvent(provider=STRIPE, payload=body.decode(), signature=header)
            envelope = wrap(
                command,
                market_id=intent.market_id if intent else "unknown",
                producer=PRODUCER,
                correlation_id=intent.deal_id if intent else None,
                event_id=uuid.uuid5(EVENT_NAMESPACE, event_id),
            )
            uow.emit(SETTLEMENT_COMMANDS.name, intent.deal_id if intent else event_id[:64], envelope)
        metrics.WEBHOOKS.labels("accepted").inc()
        return JSONResponse({"received": True})

    return Route(PATH, stripe_webhook, methods=["POST"])
