"""The web service's wiring: read models from the event topics, the pages, the live hub.

It consumes events into its own schema and writes only commands, through its own
outbox (see commands.py); it never reads another service's schema.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from haggle.contracts.topics import (
    AGENT_DECISIONS,
    AGENT_EVENTS,
    APPROVAL_EVENTS,
    LISTING_EVENTS_TOPIC,
    MARKET_EVENTS,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_EVENTS_TOPIC,
)
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from services.web import amend, interview_pages, ops, pages, public, readmodel, signin
from services.web.live import Hub
from services.web.site import Frame, Web

NAME = "web"
SCHEMA = "web"
MIGRATIONS = Path(__file__).parent / "migrations"


def subscriptions() -> list[Subscription]:
    return [
        Subscription(AGENT_EVENTS.name, readmodel.AGENT_HANDLERS, batched=True),
        Subscription(AGENT_DECISIONS.name, readmodel.DECISION_HANDLERS, batched=True),
        Subscription(MARKET_EVENTS.name, readmodel.MARKET_HANDLERS),
        Subscription(LISTING_EVENTS_TOPIC.name, readmodel.LISTING_HANDLERS, batched=True),
        Subscription(NEGOTIATION_EVENTS_TOPIC.name, readmodel.NEGOTIATION_HANDLERS, batched=True),
        Subscription(SETTLEMENT_EVENTS_TOPIC.name, readmodel.SETTLEMENT_HANDLERS, batched=True),
        Subscription(APPROVAL_EVENTS.name, readmodel.APPROVAL_HANDLERS),
    ]


def site(web: Web) -> Starlette:
    routes = [
        *public.routes(web),
        *signin.routes(web),
        *pages.routes(web),
        *amend.routes(web),
        *interview_pages.routes(web),
        *ops.routes(web),
    ]
    return Starlette(routes=routes, middleware=[Middleware(Frame)])


def build(ctx: ServiceContext) -> ServiceParts:
    hub = Hub(ctx.pool)
    web = Web.build(ctx.pool, hub, ctx.notify_channel, ctx.settings)

    async def page_pool() -> None:
        await web.serve_pages(SCHEMA)

    return ServiceParts(
        subscriptions=subscriptions(),
        routes=[Mount("/", app=site(web))],
        background=[hub.run, page_pool],
    )


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
