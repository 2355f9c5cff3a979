"""The web app's frame: templates, who is asking, CSRF, security headers, request metrics.

Every page handler gets a `Page` (the request, its session, the shared `Web`) from
one of the guards: `principal_page`, `operator_page` or `public_page`. A principal
guard answers 303 to the sign-in page without a session and 403 for an operator-only
page; a POST without the session's CSRF token gets 403 and changes nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from jinja2 import Environment, FileSystemLoader, select_autoescape
from prometheus_client import Counter, Histogram
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haggle.runtime.db import create_pool
from haggle.runtime.settings import Settings
from services.web import auth
from services.web.domain import EVENT_WORDS, dollars, end_words, guard_words, refusal_words
from services.web.live import Hub

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
REQUESTS = Counter("haggle_web_requests_total", "Web requests answered", ["route", "method", "status"])
LATENCY = Histogram(
    "haggle_web_request_seconds",
    "Time to answer one web request (a stream: until its headers)",
    ["route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SECURITY_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def _when(value: Any) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        return "-"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Templates(Environment):
    """Jinja, reading `row.name` from a dict row as `row["name"]` first. Jinja's own order tries
    the attribute first, and a dict has none of these: an AttributeError raised and caught on every
    field of every row, the largest cost of rendering a page of listings (py-spy). A key therefore
    shadows a dict method of the same name (`row.items` is the "items" key when there is one)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def environment() -> Environment:
    env = Templates(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html", "svg")),
        auto_reload=False,  # templates ship with the code: no stat of each file on every render
    )
    env.filters |= {
        "dollars": dollars,
        "when": _when,
        "refusal": refusal_words,
        "ended": end_words,
        "guard": guard_words,
    }
    env.globals["words"] = EVENT_WORDS
    return env


@dataclass
class Web:
    pool: asyncpg.Pool
    hub: Hub
    notify_channel: str
    templates: Environment
    settings: Settings
    pages: asyncpg.Pool | None = None
    """The pages' own pool (`serve_pages`), without a reset on release; `pool` until it is open."""

    @classmethod
    def build(cls, pool: asyncpg.Pool, hub: Hub, notify_channel: str, settings: Settings) -> Web:
        return cls(pool, hub, notify_channel, environment(), settings)

    @property
    def page_pool(self) -> asyncpg.Pool:
        return self.pages or self.pool

    async def serve_pages(self, schema: str) -> None:
        """Open the pages' pool and hold it for the life of the service (a background job)."""
        pool = await create_pool(self.settings.database_url, schema, self.settings.pool_size)
        self.pages = pool
        try:
            await asyncio.Event().wait()
        finally:
            self.pages = None
            await pool.close()


@dataclass
class Page:
    request: Request
    web: Web
    session: auth.Session | None
    db: asyncpg.Connection
    """This request's connection: every read of one page on it (released when the handler returns,
    before a streamed body runs)."""

    @property
    def principal_id(self) -> str:
        assert self.session is not None and self.session.principal_id is not None
        return self.session.principal_id

    def render(self, name: str, status: int = 200, **context: Any) -> Response:
        html = self.web.templates.get_template(name).render(
            session=self.session,
            csrf=self.session.csrf if self.session else "",
            path=self.request.url.path,
            **context,
        )
        return HTMLResponse(html, status_code=status)

    def not_found(self, what: str = "page") -> Response:
        return self.render("error.html", 404, title="Not found", message=f"No such {what}.")

    async def form(self) -> FormData | None:
        """The posted form when its CSRF token is this session's; None otherwise."""
        form = await self.request.form()
        token = form.get("csrf")
        if self.session is None or not self.session.csrf_ok(token if isinstance(token, str) else None):
            return None
        return form

    def refused(self, message: str = "The form expired; reload the page and try again.") -> Response:
        return self.render("error.html", 403, title="Refused", message=message)


Handler = Callable[[Page], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]


Guard = Callable[[auth.Session | None], str | None]
"""Why a session may not see a page (None: it may); "signin" sends the browser to sign in."""


def _guarded(web: Web, handler: Handler, refusal: Guard) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        async with web.page_pool.acquire() as db:
            session = await auth.session_of(db, request.cookies.get(auth.SESSION_COOKIE))
            page = Page(request, web, session, db)
            why = refusal(session)
            if why == "signin":
                return RedirectResponse("/signin", 303)
            if why is not None:
                return page.render("error.html", 403, title="Refused", message=why)
            return await handler(page)

    endpoint.__name__ = handler.__name__
    return endpoint


def _principals_only(session: auth.Session | None) -> str | None:
    if session is None:
        return "signin"
    return None if session.principal_id is not None else "For principals."


def _operators_only(session: auth.Session | None) -> str | None:
    if session is None:
        return "signin"
    return None if session.is_operator else "For operators."


def principal_page(web: Web, handler: Handler) -> Endpoint:
    return _guarded(web, handler, _principals_only)


def operator_page(web: Web, handler: Handler) -> Endpoint:
    return _guarded(web, handler, _operators_only)


def public_page(web: Web, handler: Handler) -> Endpoint:
    return _guarded(web, handler, lambda _: None)


class Frame:
    """ASGI middleware: security headers on every answer, request count and latency by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = [500]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
                LATENCY.labels(_route(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            REQUESTS.labels(_route(scope), scope["method"], str(status[0])).inc()


def _route(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    return getattr(endpoint, "__name__", "unmatched") if endpoint else "unmatched"
