"""The operator console: markets (open, close) with live counters, disputes to decide, invites."""

from __future__ import annotations

import re
from typing import Any

from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from haggle.contracts.market import MarketRulesSet
from haggle.contracts.settlement import DisputeOutcome
from haggle.runtime.outbox import unit_of_work
from haggle.runtime.settings import Settings
from services.web import auth, commands, store
from services.web.live import Audience, events
from services.web.site import Page, Web, operator_page

ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


def public_url(settings: Settings) -> str:
    from haggle.procs import url_for

    return settings.web_public_url or url_for("web")


def invite_link(token: str, settings: Settings) -> str:
    return f"{public_url(settings).rstrip('/')}/signin/{token}"


async def console(
    page: Page, link: str | None = None, error: str | None = None, status: int = 200
) -> Response:
    return page.render(
        "ops.html",
        status,
        title="Operator console",
        stream="/ops/stream",
        markets=await store.counters(page.db),
        disputes=await store.disputes_waiting(page.db),
        outcomes=[o.value for o in DisputeOutcome],
        link=link,
        error=error,
    )


async def home(page: Page) -> Response:
    return await console(page)


async def _posted(page: Page, *names: str) -> dict[str, str] | None:
    form = await page.form()
    return None if form is None else {n: str(form.get(n, "")).strip() for n in names}


async def open_market(page: Page) -> Response:
    form = await _posted(page, "market_id")
    if form is None:
        return page.refused()
    if not ID.match(form["market_id"]):
        return await console(page, error="a market id is 1-64 letters, digits or _.:-", status=422)
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        commands.open_market(uow, form["market_id"], MarketRulesSet())
    return RedirectResponse("/ops", 303)


async def close_market(page: Page) -> Response:
    market_id = page.request.path_params["market_id"]
    form = await _posted(page, "reason")
    if form is None:
        return page.refused()
    if await store.market_phase(page.db, market_id) is None and not await store.counters(page.db, market_id):
        return page.not_found("market")
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        commands.close_market(uow, market_id, form["reason"][:200] or "closed by the operator")
    return RedirectResponse("/ops", 303)


async def invite(page: Page) -> Response:
    form = await _posted(page, "principal_id", "market_id")
    if form is None:
        return page.refused()
    if not (ID.match(form["principal_id"]) and ID.match(form["market_id"])):
        return await console(page, error="ids are 1-64 letters, digits or _.:-", status=422)
    token = await auth.create_invite(page.db, auth.Role.PRINCIPAL, form["principal_id"], form["market_id"])
    return await console(page, link=invite_link(token, page.web.settings))


async def resolve(page: Page) -> Response:
    deal_id = page.request.path_params["deal_id"]
    form = await _posted(page, "outcome", "note")
    if form is None:
        return page.refused()
    market_id = await store.deal_market(page.db, deal_id)
    if market_id is None:
        return page.not_found("deal")
    try:
        outcome = DisputeOutcome(form["outcome"])
    except ValueError:
        return await console(page, error="choose release, refund or refund_after_return", status=422)
    async with unit_of_work(page.web.pool, page.web.notify_channel) as uow:
        commands.resolve_dispute(uow, market_id, deal_id, outcome, form["note"][:2_000])
    return RedirectResponse("/ops", 303)


async def stream(page: Page) -> Response:
    return StreamingResponse(
        events(page.web.hub, Audience(operator=True)),
        media_type="text/event-stream",
        headers={"cache-control": "no-store"},
    )


def routes(web: Web) -> list[Route]:
    def o(path: str, handler: Any, methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(path, operator_page(web, handler), methods=list(methods))

    return [
        o("/ops", home),
        o("/ops/markets", open_market, ("POST",)),
        o("/ops/markets/{market_id}/close", close_market, ("POST",)),
        o("/ops/invites", invite, ("POST",)),
        o("/ops/disputes/{deal_id}", resolve, ("POST",)),
        o("/ops/stream", stream),
    ]
