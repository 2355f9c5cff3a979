"""The Stripe adapter of the payment port, through the official `stripe` SDK (async, httpx).

Every request carries our idempotency key, so Stripe answers a repeat with the
first answer; a connection error, a timeout, a 409 (the same key still in
flight), a 429 or a 5xx is retried with that same key by tenacity (the SDK's
own retries are off). A card decline, and a request Stripe refuses, are
answers, not errors to retry. Idempotency keys last 24 hours at Stripe: an
operation still failing after that is left to reconcile and an operator.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import stripe
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from haggle.runtime.settings import Settings, revealed
from services.settlement.payments.domain import Answer, PaymentOp, ProviderResult
from services.settlement.payments.port import IntentView, Party, TransferView

CURRENCY = "usd"
T = TypeVar("T")
UNEXPECTED_STATE = "payment_intent_unexpected_state"


class ProviderUnavailable(Exception):
    """Stripe could not be reached or kept failing; the operation is tried again later, same key."""


def _transient(exc: BaseException) -> bool:
    """Worth sending again with the same key: no answer, a conflict with our own request in flight
    (409), a rate limit or a server error. A 400 (including a key reused with other parameters),
    401, 402, 403 or 404 is an answer."""
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    status = getattr(exc, "http_status", None)
    return isinstance(exc, stripe.StripeError) and (status is None or status == 409 or status >= 500)


def _metadata(op: PaymentOp) -> dict[str, str]:
    return {"market_id": op.market_id, "deal_id": op.deal_id, "transfer_id": op.transfer_id}


def _intent_view(pi: Any) -> IntentView:
    charge = pi.get("latest_charge")
    charge_id = charge if isinstance(charge, str) or charge is None else charge.get("id")
    refunded = 0
    if charge is not None and not isinstance(charge, str):
        refunded = int(charge.get("amount_refunded") or 0)
    return IntentView(
        intent_id=pi["id"],
        status=pi["status"],
        amount_cents=int(pi["amount"]),
        amount_received_cents=int(pi.get("amount_received") or 0),
        charge_id=charge_id,
        amount_refunded_cents=refunded,
        metadata=dict(pi.get("metadata") or {}),
    )


def _charge_of(pi: Any) -> str | None:
    return _intent_view(pi).charge_id


class StripeRails:
    def __init__(self, settings: Settings, client: stripe.StripeClient | None = None) -> None:
        self.settings = settings
        self.client = client or stripe_client(settings)

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        """One request, retried on transient errors with the same key; the answer as a plain dict."""
        found = await self._retried(call)
        return dict(found.to_dict())

    async def _retried(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_transient),
                stop=stop_after_delay(self.settings.payments_retry_seconds),
                wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
                reraise=True,
            ):
                with attempt:
                    return await call()
        except stripe.StripeError as exc:
            if _transient(exc):
                raise ProviderUnavailable(f"{type(exc).__name__} {getattr(exc, 'code', '')}") from exc
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _options(self, op: PaymentOp, move: str | None = None) -> Any:
        key = op.key if move is None else f"{move}:{op.transfer_id}"
        return {"idempotency_key": key}

    async def authorize(self, op: PaymentOp, buyer: Party) -> ProviderResult:
        params: Any = {
            "amount": op.amount_cents,
            "currency": CURRENCY,
            "customer": buyer.customer_id,
            "payment_method": buyer.payment_method_id,
            "capture_method": "manual",
            "confirm": True,
            "off_session": True,
            "transfer_group": op.deal_id,
            "metadata": _metadata(op),
        }
        try:
            pi = await self._call(
                lambda: self.client.v1.payment_intents.create_async(params, self._options(op))
            )
        except stripe.CardError as exc:
            error = exc.error
            code = (error.decline_code if error else None) or exc.code or "card_declined"
            intent_id = getattr(error.payment_intent, "id", None) if error else None
            return ProviderResult(Answer.DECLINED, intent_id, status="requires_payment_method", code=code)
        if pi["status"] not in ("requires_capture", "succeeded"):
            return ProviderResult(Answer.DECLINED, pi["id"], status=pi["status"], code=pi["status"])
        return ProviderResult(Answer.OK, pi["id"], _charge_of(pi), pi["status"])

    async def capture(self, op: PaymentOp, intent_id: str) -> ProviderResult:
        try:
            pi = await self._call(
                lambda: self.client.v1.payment_intents.capture_async(intent_id, {}, self._options(op))
            )
        except stripe.InvalidRequestError as exc:
            if exc.code != UNEXPECTED_STATE:
                raise
            pi = await self._call(lambda: self.client.v1.payment_intents.retrieve_async(intent_id))
        if pi["status"] == "succeeded":
            return ProviderResult(Answer.OK, pi["id"], _charge_of(pi), pi["status"])
        return ProviderResult(Answer.GONE, pi["id"], status=pi["status"], code=pi["status"])

    async def payout(self, op: PaymentOp, seller: Party, charge_id: str | None) -> ProviderResult:
        if seller.connected_account_id is None:
            return ProviderResult(Answer.GONE, code="no_connected_account")
        params: Any = {
            "amount": op.amount_cents,
            "currency": CURRENCY,
            "destination": seller.connected_account_id,
            "transfer_group": op.deal_id,
            "metadata": _metadata(op),
        }
        if charge_id:
            params["source_transaction"] = charge_id
        transfer = await self._call(lambda: self.client.v1.transfers.create_async(params, self._options(op)))
        return ProviderResult(Answer.OK, transfer["id"], status="paid")

    async def void(self, op: PaymentOp, intent_id: str, captured: bool) -> ProviderResult:
        """Cancel an authorization; refund a capture (also when the cancel finds it captured)."""
        if not captured:
            try:
                pi = await self._call(
                    lambda: self.client.v1.payment_intents.cancel_async(
                        intent_id, {}, self._options(op, "cancel")
                    )
                )
            except stripe.InvalidRequestError as exc:
                if exc.code != UNEXPECTED_STATE:
                    raise
                pi = await self._call(lambda: self.client.v1.payment_intents.retrieve_async(intent_id))
            if pi["status"] != "succeeded":
                return ProviderResult(Answer.OK, pi["id"], status=pi["status"])
        params: Any = {"payment_intent": intent_id, "metadata": _metadata(op)}
        refund = await self._call(
            lambda: self.client.v1.refunds.create_async(params, self._options(op, "refund"))
        )
        return ProviderResult(Answer.OK, refund["id"], status="refunded")

    async def intent(self, intent_id: str) -> IntentView:
        params: Any = {"expand": ["latest_charge"]}
        pi = await self._call(lambda: self.client.v1.payment_intents.retrieve_async(intent_id, params))
        return _intent_view(pi)

    async def transfer(self, transfer_id: str) -> TransferView:
        found = await self._call(lambda: self.client.v1.transfers.retrieve_async(transfer_id))
        return TransferView(
            transfer_id=found["id"],
            amount_cents=int(found["amount"]),
            destination=str(found.get("destination") or ""),
            reversed=bool(found.get("reversed")),
            metadata=dict(found.get("metadata") or {}),
        )

    async def intents_of(self, market_id: str) -> list[IntentView]:
        """Every PaymentIntent whose metadata names the market (newest first, paged by id)."""
        found: list[IntentView] = []
        after: str | None = None
        while True:
            params: Any = {"limit": 100, "expand": ["data.latest_charge"]}
            if after:
                params["starting_after"] = after
            page = await self._call(functools.partial(self.client.v1.payment_intents.list_async, params))
            views = [_intent_view(pi) for pi in page["data"]]
            found += [v for v in views if v.metadata.get("market_id") == market_id]
            if not page.get("has_more") or not views:
                return found
            after = views[-1].intent_id


class _HTTPXClient(stripe.HTTPXClient):
    """The SDK's httpx client, sending the encoded form as `content` (httpx 0.28 deprecates `data=`)."""

    def _get_request_args_kwargs(self, method: str, url: str, headers: Any, post_data: Any) -> Any:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data", None)
        if body:
            kwargs["content"] = body
        return [args, kwargs]


def stripe_client(settings: Settings) -> stripe.StripeClient:
    base = {"api": settings.stripe_api_base} if settings.stripe_api_base else None
    return stripe.StripeClient(
        revealed(settings.stripe_api_key),
        base_addresses=base,  # type: ignore[arg-type]
        http_client=_HTTPXClient(timeout=settings.payments_timeout_seconds, allow_sync_methods=True),
        max_network_retries=0,
    )


async def onboard_buyer(
    rails: StripeRails, market_id: str, principal_id: str, payment_method: str
) -> tuple[str, str]:
    """A Customer and a saved payment method (a confirmed off-session SetupIntent): (cus_, pm_)."""
    meta = {"market_id": market_id, "principal_id": principal_id}
    key = f"{market_id}:{principal_id}"
    customer_params: Any = {"metadata": meta}
    customer = await rails._call(
        lambda: rails.client.v1.customers.create_async(
            customer_params, {"idempotency_key": f"customer:{key}"}
        )
    )
    setup_params: Any = {
        "customer": customer["id"],
        "payment_method": payment_method,
        "payment_method_types": ["card"],
        "usage": "off_session",
        "confirm": True,
        "metadata": meta,
    }
    setup = await rails._call(
        lambda: rails.client.v1.setup_intents.create_async(setup_params, {"idempotency_key": f"setup:{key}"})
    )
    saved = setup["payment_method"]
    return customer["id"], saved if isinstance(saved, str) else saved["id"]


async def onboard_seller(
    rails: StripeRails, market_id: str, principal_id: str, return_url: str
) -> tuple[str, str]:
    """A connected account that can receive transfers, and its onboarding link: (acct_, url)."""
    params: Any = {
        "type": "express",
        "capabilities": {"transfers": {"requested": True}},
        "metadata": {"market_id": market_id, "principal_id": principal_id},
    }
    key = f"account:{market_id}:{principal_id}"
    account = await rails._call(
        lambda: rails.client.v1.accounts.create_async(params, {"idempotency_key": key})
    )
    link_params: Any = {
        "account": account["id"],
        "refresh_url": return_url,
        "return_url": return_url,
        "type": "account_onboarding",
    }
    link = await rails._call(lambda: rails.client.v1.account_links.create_async(link_params))
    return account["id"], link["url"]
