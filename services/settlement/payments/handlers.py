"""settlement.commands from the payment side: linked provider accounts (operator) and provider events.

A `ProviderEvent` is trusted by the provider's signature over its payload,
checked here again (the webhook endpoint checked it and its timestamp on
arrival), and taken once per provider event id, however often it is sent.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
import stripe

from haggle.contracts import Envelope
from haggle.contracts.settlement import LinkPaymentAccount, PaymentRole, ProviderEvent, SettlementRefusal
from haggle.runtime import operators
from haggle.runtime.outbox import UnitOfWork
from haggle.runtime.settings import Settings, revealed
from services.settlement import ledger_store
from services.settlement import store as deals
from services.settlement.domain.deal import Refusal, wallet_account_id
from services.settlement.domain.ledger import Account, AccountKind
from services.settlement.handlers.outcomes import finish, refuse, utcnow
from services.settlement.payments import domain, metrics, store
from services.settlement.payments.port import Party

log = logging.getLogger(__name__)
STRIPE = "stripe"


def _link_defect(cmd: LinkPaymentAccount) -> str | None:
    if cmd.role is PaymentRole.BUYER and not (cmd.customer_id and cmd.payment_method_id):
        return "a buyer links a customer and a saved payment method"
    if cmd.role is PaymentRole.SELLER and not cmd.connected_account_id:
        return "a seller links a connected account"
    return None


async def link_payment_account(uow: UnitOfWork, env: Envelope, cmd: LinkPaymentAccount) -> None:
    """Operator: a principal's provider accounts; a buyer's wallet row carries the auto-approve limit."""
    defect = None if operators.is_operator(env) else f"{env.type} needs an operator's signature"
    reason = SettlementRefusal.NOT_OPERATOR
    if defect is None and (defect := _link_defect(cmd)):
        reason = SettlementRefusal.INVALID_PAYLOAD
    if defect:
        await refuse(uow, env, "", Refusal(reason, defect), key=cmd.principal_id)
        return
    party = Party(cmd.customer_id, cmd.payment_method_id, cmd.connected_account_id)
    await store.link_account(uow.conn, env.market_id, cmd.principal_id, party)
    wallet = wallet_account_id(env.market_id, cmd.principal_id)
    await ledger_store.open_accounts(uow.conn, env.market_id, (Account(wallet, AccountKind.WALLET),))
    limit = cmd.auto_approve_limit_cents if cmd.role is PaymentRole.BUYER else None
    await ledger_store.set_wallet(uow.conn, env.market_id, cmd.principal_id, wallet, limit)


def _intent_id(obj: dict[str, Any]) -> str | None:
    if obj.get("object") == "payment_intent":
        return str(obj["id"])
    found = obj.get("payment_intent")
    return found if isinstance(found, str) else None


def _code(fact: domain.Fact, obj: dict[str, Any]) -> str:
    if fact is domain.Fact.PAYMENT_FAILED:
        error = obj.get("last_payment_error") or {}
        return str(error.get("decline_code") or error.get("code") or "")
    if fact in (domain.Fact.DISPUTE_OPENED, domain.Fact.DISPUTE_CLOSED):
        return str(obj.get("reason") or "")
    return ""


async def provider_event(settings: Settings, uow: UnitOfWork, env: Envelope, cmd: ProviderEvent) -> None:
    """Bound to the service's settings (`HAGGLE_STRIPE_WEBHOOK_SECRET`) in its subscriptions."""
    secret = revealed(settings.stripe_webhook_secret)
    try:
        if cmd.provider != STRIPE or not secret:
            raise ValueError(f"no webhook secret for provider {cmd.provider!r}")
        stripe.WebhookSignature.verify_header(cmd.payload, cmd.signature, secret, tolerance=None)
        event = orjson.loads(cmd.payload)
        event_id, event_type, obj = str(event["id"]), str(event["type"]), dict(event["data"]["object"])
    except (ValueError, KeyError, TypeError, stripe.SignatureVerificationError) as exc:
        metrics.WEBHOOKS.labels("refused").inc()
        await refuse(uow, env, "", Refusal(SettlementRefusal.BAD_SIGNATURE, f"provider event: {exc}"[:300]))
        return
    intent_id = _intent_id(obj)
    intent = await store.intent_by_provider_id(uow.conn, intent_id) if intent_id else None
    deal_id = intent.deal_id if intent else None
    if not await store.first_event(uow.conn, event_id, cmd.provider, event_type, deal_id):
        metrics.WEBHOOKS.labels("replayed").inc()
        log.info("provider event taken before", extra={"provider_event": event_id})
        return
    fact = domain.fact_of(event_type)
    if fact is None or intent is None:
        metrics.WEBHOOKS.labels("ignored").inc()
        return
    metrics.WEBHOOKS.labels(fact.value).inc()
    if fact is domain.Fact.CAPTURED:
        charge = obj.get("latest_charge")
        await store.set_intent_status(uow.conn, intent.deal_id, "succeeded", charge if charge else None)
    elif fact is domain.Fact.CANCELED:
        await store.set_intent_status(uow.conn, intent.deal_id, "canceled")
    deal = await deals.load_deal(uow.conn, intent.deal_id)
    if deal is None:
        return
    outcome = domain.on_fact(deal, fact, intent.captured, _code(fact, obj))
    await finish(uow, env, outcome, await deals.rules(uow.conn, deal.market_id), utcnow())
