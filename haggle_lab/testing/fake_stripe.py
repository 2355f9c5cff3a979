"""A small stateful Stripe for tests: PaymentIntents, charges, Transfers, Refunds, disputes, webhooks.

stripe-mock checks the shape of every request but answers each with a fixed
object; the flows need state. Point the real `stripe` SDK at `FakeStripe().base_url`
and it sees, for the calls settlement makes: Customers and SetupIntents,
connected accounts, PaymentIntents with manual capture (authorize, capture,
cancel, lapse), charges (expandable as `latest_charge`), Transfers (with
`source_transaction`), Refunds, and card declines as 402 card errors. Requests
with an `Idempotency-Key` are answered once: a repeat gets the first answer, a
repeat with other parameters a 400 `idempotency_error`, as Stripe does.
State changes are sent as signed webhooks (`Stripe-Signature`) to `webhook_url`,
retried while the receiver is down. `on_call` runs after a call took effect
and before its answer leaves (the fault tests kill settlement there).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from haggle_lab.testing.served import Served

Obj = dict[str, Any]
DECLINES = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
}


class StripeFail(Exception):
    def __init__(self, status: int, type_: str, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": type_, "code": code, "message": message, **extra}}


def parse_form(body: str) -> Obj:
    """Stripe's form encoding (`metadata[deal_id]=x`, `expand[0]=y`) back into nested values."""
    out: Obj = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    nested: Obj = _lists(out)
    return nested


def _lists(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_lists(node[k]) for k in sorted(node, key=int)]
    return {k: _lists(v) for k, v in node.items()}


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


class FakeStripe(Served):
    def __init__(self, api_key: str, webhook_secret: str, webhook_url: str | None = None) -> None:
        self.api_key, self.webhook_secret, self.webhook_url = api_key, webhook_secret, webhook_url
        self.objects: dict[str, Obj] = {}
        self.requests: list[tuple[str, str, str, str | None]] = []
        """(method, path, form body, idempotency key) of every API request."""
        self.events: list[Obj] = []
        self.deliveries: list[tuple[str, int]] = []
        self.on_call: Callable[[str, Obj], None] | None = None
        self._faults: list[int] = []
        self._idempotent: dict[str, tuple[str, str, int, Obj]] = {}
        self._ids = itertools.count(1)
        self._tag = f"{secrets.token_hex(4)}n"
        """Ends in a letter: hex alone can be all digits, and with the counter an id then held a
        14-digit run that a log check for card numbers took for one (one time in ten, by Luhn)."""
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self.app = Starlette(routes=[Route("/v1/{path:path}", self._api, methods=["GET", "POST", "DELETE"])])

    # what tests look at ------------------------------------------------------------

    def of_kind(self, kind: str) -> list[Obj]:
        with self._lock:
            return [o for o in self.objects.values() if o["object"] == kind]

    def keys_sent(self, path_prefix: str) -> list[str | None]:
        with self._lock:
            return [k for _, path, _, k in self.requests if path.startswith(path_prefix)]

    def fail_next(self, status: int = 500, times: int = 1) -> None:
        """The next `times` POSTs take effect, then answer `status`: the answer is lost on the way."""
        with self._lock:
            self._faults += [status] * times

    # the API -------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse({"error": {"type": "invalid_request_error", "message": "bad key"}}, 401)
        body = (await request.body()).decode()
        path, method = request.url.path, request.method
        params = parse_form(body if method == "POST" else request.url.query)
        key = request.headers.get("idempotency-key")
        with self._lock:
            self.requests.append((method, path, body, key))
            cached = self._idempotent.get(key) if key and method == "POST" else None
        if cached is not None:
            if (cached[0], cached[1]) != (path, body):
                fail = StripeFail(400, "idempotency_error", "idempotency_key_in_use", "keys reused")
                return JSONResponse(fail.body, fail.status)
            return JSONResponse(cached[3], cached[2], headers={"idempotent-replayed": "true"})
        try:
            status, answer = 200, self._route(method, path.removeprefix("/v1/"), params)
        except StripeFail as fail:
            status, answer = fail.status, fail.body
        if key and method == "POST":
            with self._lock:
                self._idempotent[key] = (path, body, status, answer)
        if self.on_call is not None and method == "POST":
            await asyncio.to_thread(self.on_call, path, answer)
        with self._lock:
            fault = self._faults.pop(0) if self._faults and method == "POST" else None
        if fault is not None:
            return JSONResponse({"error": {"type": "api_error", "message": "injected"}}, fault)
        return JSONResponse(answer, status)

    def _route(self, method: str, path: str, p: Obj) -> Obj:
        parts = path.split("/")
        if method == "GET":
            if parts == ["payment_intents"]:
                return self._list_intents(p)
            return self._expanded(self._get(parts[1]), p.get("expand") or [])
        if len(parts) == 1:
            create = getattr(self, f"_create_{parts[0]}", None)
            if create is None:
                raise StripeFail(404, "invalid_request_error", "resource_missing", f"no {path}")
            created: Obj = create(p)
            return created
        action = getattr(self, f"_{parts[0]}_{parts[2]}", None) if len(parts) == 3 else None
        if action is None:
            raise StripeFail(404, "invalid_request_error", "resource_missing", f"no {path}")
        acted: Obj = action(self._get(parts[1]), p)
        return acted

    def _new(self, prefix: str, kind: str, **fields: Any) -> Obj:
        obj: Obj = {
            "id": f"{prefix}_{self._tag}{next(self._ids):06d}",
            "object": kind,
            "created": int(time.time()),
        }
        obj.update(fields)
        with self._lock:
            self.objects[obj["id"]] = obj
        return obj

    def _get(self, object_id: str) -> Obj:
        with self._lock:
            found = self.objects.get(object_id)
        if found is None:
            raise StripeFail(404, "invalid_request_error", "resource_missing", f"No such object: {object_id}")
        return found

    def _expanded(self, obj: Obj, expand: list[str]) -> Obj:
        out = dict(obj)
        for field in expand:
            name = field.removeprefix("data.")
            if isinstance(out.get(name), str):
                out[name] = dict(self._get(out[name]))
        return out

    def _list_intents(self, p: Obj) -> Obj:
        expand = [e.removeprefix("data.") for e in p.get("expand") or []]
        found = sorted(self.of_kind("payment_intent"), key=lambda o: o["id"], reverse=True)
        if after := p.get("starting_after"):
            found = [o for o in found if o["id"] < after]
        limit = int(p.get("limit", 10))
        page = [self._expanded(o, expand) for o in found[:limit]]
        return {"object": "list", "data": page, "has_more": len(found) > limit, "url": "/v1/payment_intents"}

    # objects -------------------------------------------------------------------------

    def _create_customers(self, p: Obj) -> Obj:
        return self._new("cus", "customer", metadata=p.get("metadata", {}))

    def _create_setup_intents(self, p: Obj) -> Obj:
        self._get(p["customer"])
        return self._new(
            "seti",
            "setup_intent",
            customer=p["customer"],
            payment_method=p["payment_method"],
            status="succeeded",
        )

    def _create_accounts(self, p: Obj) -> Obj:
        return self._new("acct", "account", type=p.get("type"), metadata=p.get("metadata", {}))

    def _create_account_links(self, p: Obj) -> Obj:
        self._get(p["account"])
        return {"object": "account_link", "url": f"https://connect.invalid/setup/{p['account']}"}

    def _create_payment_intents(self, p: Obj) -> Obj:
        amount, method = int(p["amount"]), p.get("payment_method", "")
        intent = self._new(
            "pi",
            "payment_intent",
            amount=amount,
            currency=p["currency"],
            customer=p.get("customer"),
            payment_method=method,
            capture_method=p.get("capture_method", "automatic"),
            metadata=p.get("metadata", {}),
            status="requires_payment_method",
            amount_capturable=0,
            amount_received=0,
            latest_charge=None,
            last_payment_error=None,
            cancellation_reason=None,
        )
        if p.get("confirm") != "true":
            return intent
        if code := DECLINES.get(method):
            intent["last_payment_error"] = {
                "type": "card_error",
                "code": "card_declined",
                "decline_code": code,
            }
            self._emit("payment_intent.payment_failed", intent)
            raise StripeFail(
                402, "card_error", "card_declined", "Your card was declined.", decline_code=code,
                payment_intent=dict(intent),
            )  # fmt: skip
        charge = self._new(
            "ch", "charge", amount=amount, amount_refunded=0, captured=False, refunded=False,
            payment_intent=intent["id"], metadata=intent["metadata"], disputed=False,
        )  # fmt: skip
        intent.update(latest_charge=charge["id"], status="requires_capture", amount_capturable=amount)
        self._emit("payment_intent.amount_capturable_updated", intent)
        return intent

    def _unexpected(self, intent: Obj, doing: str) -> StripeFail:
        return StripeFail(
            400, "invalid_request_error", "payment_intent_unexpected_state",
            f"This PaymentIntent could not be {doing} because it has a status of {intent['status']}.",
        )  # fmt: skip

    def _payment_intents_capture(self, intent: Obj, p: Obj) -> Obj:
        if intent["status"] != "requires_capture":
            raise self._unexpected(intent, "captured")
        charge = self._get(intent["latest_charge"])
        charge["captured"] = True
        intent.update(status="succeeded", amount_received=intent["amount"], amount_capturable=0)
        self._emit("payment_intent.succeeded", intent)
        return intent

    def _payment_intents_cancel(self, intent: Obj, p: Obj) -> Obj:
        if intent["status"] in ("succeeded", "canceled"):
            raise self._unexpected(intent, "canceled")
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="requested_by_customer")
        self._emit("payment_intent.canceled", intent)
        return intent

    def _create_refunds(self, p: Obj) -> Obj:
        intent = self._get(p["payment_intent"])
        if intent["status"] != "succeeded":
            raise StripeFail(
                400, "invalid_request_error", "charge_not_captured", "nothing captured to refund"
            )
        charge = self._get(intent["latest_charge"])
        if charge["refunded"]:
            raise StripeFail(400, "invalid_request_error", "charge_already_refunded", "already refunded")
        charge.update(refunded=True, amount_refunded=charge["amount"])
        refund = self._new("re", "refund", amount=charge["amount"], charge=charge["id"], status="succeeded",
                           payment_intent=intent["id"], metadata=p.get("metadata", {}))  # fmt: skip
        self._emit("charge.refunded", charge)
        return refund

    def _create_transfers(self, p: Obj) -> Obj:
        destination = self._get(p["destination"])
        if source := p.get("source_transaction"):
            charge = self._get(source)
            if not charge["captured"]:
                raise StripeFail(400, "invalid_request_error", "charge_not_captured", "source not captured")
        return self._new(
            "tr", "transfer", amount=int(p["amount"]), currency=p["currency"], destination=destination["id"],
            source_transaction=source, transfer_group=p.get("transfer_group"), reversed=False,
            metadata=p.get("metadata", {}),
        )  # fmt: skip

    # what the provider does on its own -----------------------------------------------

    def lapse(self, intent_id: str) -> None:
        """The authorization expired uncaptured: Stripe cancels it ('automatic')."""
        intent = self._get(intent_id)
        assert intent["status"] == "requires_capture", intent["status"]
        intent.update(status="canceled", amount_capturable=0, cancellation_reason="automatic")
        self._emit("payment_intent.canceled", intent)

    def chargeback(self, intent_id: str, reason: str = "product_not_received") -> Obj:
        """The buyer disputes the card payment with their bank."""
        intent = self._get(intent_id)
        charge = self._get(intent["latest_charge"])
        charge["disputed"] = True
        dispute = self._new("dp", "dispute", amount=charge["amount"], charge=charge["id"],
                            payment_intent=intent_id, reason=reason, status="needs_response")  # fmt: skip
        self._emit("charge.dispute.created", dispute)
        return dispute

    # webhooks ------------------------------------------------------------------------

    def event(self, type_: str, obj: Obj) -> str:
        """A webhook body for `obj` (what `_emit` sends)."""
        event = {
            "id": f"evt_{self._tag}{next(self._ids):06d}",
            "object": "event",
            "type": type_,
            "created": int(time.time()),
            "livemode": False,
            "api_version": "2025-01-01",
            "data": {"object": dict(obj)},
        }
        with self._lock:
            self.events.append(event)
        return json.dumps(event)

    def _emit(self, type_: str, obj: Obj) -> None:
        payload = self.event(type_, obj)
        if self.webhook_url:
            task = asyncio.get_running_loop().create_task(self._deliver(payload))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, payload: str, attempts: int = 120) -> None:
        assert self.webhook_url
        async with httpx.AsyncClient(timeout=5) as client:
            for _ in range(attempts):
                try:
                    headers = {"stripe-signature": sign(payload, self.webhook_secret)}
                    response = await client.post(self.webhook_url, content=payload, headers=headers)
                    with self._lock:
                        self.deliveries.append((payload, response.status_code))
                    if response.status_code < 500:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
