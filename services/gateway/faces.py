"""The gateway's two faces over the same operations: an HTTP API and an MCP server.

HTTP: `Authorization: Bearer <api key>`; GET /v1/listings?q=, /v1/negotiations, /v1/deals;
POST /v1/negotiations (open), /v1/negotiations/{thread_id}/counter|accept|reject|messages;
GET /v1/changes?after=N&timeout=S waits for a change after cursor N (instead of polling).
An agent with its own Ed25519 key POSTs the envelopes it signed (its registration, then its
negotiation commands, as contracts/ describes them) to /v1/signed, and reads its agent.inbox.
A refusal is `{"refused": reason, "detail": ...}` with 401 (unauthorized), 429 (rate limited),
409 (replayed request) or 422 (anything else, the guard's reasons as `guard:<reason>`).

MCP (streamable HTTP at /mcp, the same bearer key): the tools search_listings,
open_negotiation, counter, accept, reject, send_message, my_negotiations, wait_for_changes,
my_deals. A refusal is a tool error whose text is the same JSON.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import Party
from services.gateway import domain, store
from services.gateway.api import Gateway
from services.gateway.domain import GatewayRefusal, Refused

STATUS = {
    GatewayRefusal.UNAUTHORIZED: 401,
    GatewayRefusal.BAD_SIGNATURE: 401,
    GatewayRefusal.RATE_LIMITED: 429,
    GatewayRefusal.REPLAYED_REQUEST: 409,
}


def bearer(headers: Any) -> str | None:
    value = (headers or {}).get("authorization", "")
    return value[7:].strip() or None if value.lower().startswith("bearer ") else None


def _invalid(exc: ValidationError) -> Refused:
    problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:5])
    return Refused(GatewayRefusal.INVALID_REQUEST, problems)


# HTTP ------------------------------------------------------------------------

Op = Callable[[store.Principal, Request], Awaitable[dict[str, Any]]]


def http_routes(gateway: Gateway) -> list[BaseRoute]:
    def route(path: str, op: Op, method: str) -> Route:
        async def endpoint(request: Request) -> Response:
            try:
                who = await gateway.authenticate(bearer(request.headers))
                return JSONResponse(await op(who, request), 202 if method == "POST" else 200)
            except Refused as refused:
                return JSONResponse(refused.as_json(), STATUS.get(refused.reason, 422))

        return Route(path, endpoint, methods=[method])

    def body(model: type[BaseModel], op: Callable[[store.Principal, Any], Awaitable[dict[str, Any]]]) -> Op:
        async def run(who: store.Principal, request: Request) -> dict[str, Any]:
            try:
                raw = await request.json()
                if isinstance(raw, dict) and "thread_id" in request.path_params:
                    raw = {**raw, "thread_id": request.path_params["thread_id"]}
                req = model.model_validate(raw)
            except ValidationError as exc:
                raise _invalid(exc) from None
            except json.JSONDecodeError:
                raise Refused(GatewayRefusal.INVALID_REQUEST, "the body is not JSON") from None
            return await op(who, req)

        return run

    async def changes(who: store.Principal, request: Request) -> dict[str, Any]:
        after, timeout = request.query_params.get("after", "0"), request.query_params.get("timeout", "20")
        if not after.isdigit() or not timeout.replace(".", "", 1).isdigit():
            raise Refused(GatewayRefusal.INVALID_REQUEST, "after is a whole cursor, timeout seconds")
        return await gateway.wait_for_changes(who, int(after), float(timeout))

    async def search(who: store.Principal, request: Request) -> dict[str, Any]:
        limit = request.query_params.get("limit", "20")
        return await gateway.search(who, request.query_params.get("q"), int(limit) if limit.isdigit() else 20)

    async def signed(request: Request) -> Response:
        """An agent that signs for itself: the body is its signed envelope (no API key)."""
        try:
            raw = await request.json()
            return JSONResponse(await gateway.signed(raw), 202)
        except json.JSONDecodeError:
            return JSONResponse(
                Refused(GatewayRefusal.INVALID_REQUEST, "the body is not JSON").as_json(), 422
            )
        except Refused as refused:
            return JSONResponse(refused.as_json(), STATUS.get(refused.reason, 422))

    thread = "/v1/negotiations/{thread_id}"
    return [
        Route("/v1/signed", signed, methods=["POST"]),
        route("/v1/listings", search, "GET"),
        route("/v1/negotiations", lambda who, _: gateway.my_negotiations(who), "GET"),
        route("/v1/deals", lambda who, _: gateway.my_deals(who), "GET"),
        route("/v1/changes", changes, "GET"),
        route("/v1/negotiations", body(domain.OpenRequest, gateway.open), "POST"),
        route("/v1/listings", body(domain.ListRequest, gateway.list_item), "POST"),
        route(f"{thread}/counter", body(domain.CounterRequest, gateway.counter), "POST"),
        route(f"{thread}/accept", body(domain.AnswerRequest, gateway.accept), "POST"),
        route(f"{thread}/reject", body(domain.AnswerRequest, gateway.reject), "POST"),
        route(f"{thread}/messages", body(domain.SayRequest, gateway.say), "POST"),
    ]


# MCP -------------------------------------------------------------------------


def mcp_server(gateway: Gateway) -> MCPServer:
    server = MCPServer(
        "haggle-gateway",
        instructions=(
            "Trade for your principal on a haggle market. To buy: search listings, open a negotiation"
            " with an offer, then counter, accept or reject the seller's offers. To sell: list your"
            " principal's items, then answer buyers' offers. Wait for the other side with"
            " wait_for_changes. Every move is checked against your principal's mandate; a refused move"
            " returns its reason. Money is integer cents. Give each move a fresh request_id."
        ),
    )

    async def call(
        ctx: Context, op: Callable[[store.Principal], Awaitable[dict[str, Any]]]
    ) -> dict[str, Any]:
        try:
            return await op(await gateway.authenticate(bearer(ctx.headers)))
        except Refused as refused:
            raise ToolError(json.dumps(refused.as_json())) from None

    def parsed(model: type[BaseModel], values: dict[str, Any]) -> Any:
        try:
            return model.model_validate({k: values[k] for k in model.model_fields if k in values})
        except ValidationError as exc:
            raise ToolError(json.dumps(_invalid(exc).as_json())) from None

    @server.tool()
    async def search_listings(ctx: Context, text: str | None = None, limit: int = 20) -> dict[str, Any]:
        """Active listings of your market whose title has `text` (or whose category is `text`)."""
        return await call(ctx, lambda who: gateway.search(who, text, limit))

    @server.tool()
    async def open_negotiation(
        ctx: Context,
        request_id: str,
        listing_id: str,
        price_cents: int,
        shipping_method: ShippingMethod,
        shipping_paid_by: Party = Party.BUYER,
        message: str = "",
        want_id: str | None = None,
    ) -> dict[str, Any]:
        """Open a negotiation on a listing with a first offer (cents, one of its shipping methods)."""
        req = parsed(domain.OpenRequest, locals())
        return await call(ctx, lambda who: gateway.open(who, req))

    @server.tool()
    async def counter(
        ctx: Context,
        request_id: str,
        thread_id: str,
        price_cents: int,
        shipping_method: ShippingMethod,
        shipping_paid_by: Party = Party.BUYER,
        message: str = "",
    ) -> dict[str, Any]:
        """Answer the other side's offer with a counter-offer."""
        req = parsed(domain.CounterRequest, locals())
        return await call(ctx, lambda who: gateway.counter(who, req))

    @server.tool()
    async def accept(ctx: Context, request_id: str, thread_id: str, offer_id: str) -> dict[str, Any]:
        """Accept the other side's latest offer: a binding deal at its terms."""
        req = parsed(domain.AnswerRequest, locals())
        return await call(ctx, lambda who: gateway.accept(who, req))

    @server.tool()
    async def reject(
        ctx: Context, request_id: str, thread_id: str, offer_id: str, message: str = ""
    ) -> dict[str, Any]:
        """Reject the other side's latest offer and end the negotiation."""
        req = parsed(domain.AnswerRequest, locals())
        return await call(ctx, lambda who: gateway.reject(who, req))

    @server.tool()
    async def send_message(ctx: Context, request_id: str, thread_id: str, text: str) -> dict[str, Any]:
        """Say something in a negotiation without making a move (it binds nobody)."""
        req = parsed(domain.SayRequest, locals())
        return await call(ctx, lambda who: gateway.say(who, req))

    @server.tool()
    async def list_item(
        ctx: Context, request_id: str, item_id: str, asking_price_cents: int | None = None
    ) -> dict[str, Any]:
        """List one of the items your principal's mandate sells (at its asking price, or the one you
        give: never under the principal's floor). Buyers' offers then arrive in my_negotiations."""
        req = parsed(domain.ListRequest, locals())
        return await call(ctx, lambda who: gateway.list_item(who, req))

    @server.tool()
    async def my_negotiations(ctx: Context) -> dict[str, Any]:
        """Your negotiations: thread ids, every offer so far, whose turn it is, the last refusal."""
        return await call(ctx, gateway.my_negotiations)

    @server.tool()
    async def wait_for_changes(ctx: Context, after: int = 0, timeout_seconds: float = 20.0) -> dict[str, Any]:
        """Wait until something changes in your negotiations or deals after `after` (the cursor a
        previous call returned; 0 at first), up to `timeout_seconds` (at most 30): returns the new
        cursor and what changed. Call this instead of polling my_negotiations."""
        return await call(ctx, lambda who: gateway.wait_for_changes(who, after, timeout_seconds))

    @server.tool()
    async def my_deals(ctx: Context) -> dict[str, Any]:
        """Your deals and where their settlement is."""
        return await call(ctx, gateway.my_deals)

    return server


def mcp_route(server: MCPServer) -> Mount:
    app = server.streamable_http_app(streamable_http_path="/", stateless_http=True, json_response=True)
    return Mount("/mcp", app=app)
