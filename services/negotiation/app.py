"""The negotiation service's wiring: topics → handlers, and the deadline timer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from haggle.contracts.agents import AgentRegistered, AgentRetired
from haggle.contracts.listing import (
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.topics import AGENT_EVENTS, LISTING_EVENTS_TOPIC, MARKET_EVENTS, NEGOTIATION_COMMANDS
from haggle.runtime import handled, markets
from haggle.runtime.outbox import unit_of_work
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from services.negotiation import handlers, store
from services.negotiation.domain import expire
from services.negotiation.domain.referee import COMMANDS
from services.negotiation.store import Threads

NAME = "negotiation"
SCHEMA = "negotiation"
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            NEGOTIATION_COMMANDS.name,
            # Every command the referee decides (its one table, `referee.COMMANDS`) goes through
            # the one command handler: load the threads, `referee.decide`, save.
            dict.fromkeys(COMMANDS, handlers.on_command),
            commands=True,
            on_invalid=handlers.refuse_invalid,
            batched=True,
            prefetch=handlers.prefetch,
            own_reader=True,
        ),
        Subscription(
            AGENT_EVENTS.name,
            {AgentRegistered: handlers.on_agent_registered, AgentRetired: handlers.on_agent_retired},
            batched=True,
        ),
        Subscription(
            MARKET_EVENTS.name,
            {
                MarketRulesSet: handlers.on_market_event,
                MarketClosing: handlers.on_market_event,
                MarketClosed: handlers.on_market_event,
            },
        ),
        Subscription(
            LISTING_EVENTS_TOPIC.name,
            {
                ListingPublished: handlers.on_listing_published,
                ListingWithdrawn: handlers.on_listing_withdrawn,
                ListingReserved: handlers.on_listing_reserved,
                ListingSold: handlers.on_listing_sold,
                ListingRelisted: handlers.on_listing_relisted,
            },
            batched=True,
        ),
    ]


async def expire_due_once(ctx: ServiceContext, due_by: datetime) -> int:
    """End every open thread whose deadline is before `due_by` (and past); safe with several
    instances (SKIP LOCKED)."""
    due_by = min(due_by, handlers.now())
    async with unit_of_work(ctx.pool, ctx.notify_channel) as uow:
        threads = uow.repo(Threads)
        due = await threads.due(due_by)
        for thread in due:
            market_id = threads.market_of(thread.thread_id)
            cause = handlers.Cause(market_id, f"deadline:{thread.thread_id}")
            await handlers.apply_decision(uow, cause, expire(thread, due_by))
    return len(due)


def expiry_job(ctx: ServiceContext, interval: float = 0.5) -> Callable[[], Coroutine[Any, Any, None]]:
    """A deadline passes only once every move the broker took before it has been handled: a
    counter-offer sent in time while the referee was down is applied, not expired."""
    guard = handled.for_service(ctx, (NEGOTIATION_COMMANDS.name,))

    async def expire_forever() -> None:
        try:
            while True:  # run under the service's supervisor: an error restarts it after a backoff
                due_by = await guard.fire_until(await store.first_deadline(ctx.pool))
                if due_by is not None:
                    await expire_due_once(ctx, due_by)
                await asyncio.sleep(interval)
        finally:
            await guard.close()

    return expire_forever


def market_routes(ctx: ServiceContext) -> list[Route]:
    """The rules the referee applies to a market (clients wait for theirs before trading), and the
    market's phase with what is still open in it (the operator waits for that before closing)."""

    async def market_rules(request: Request) -> Response:
        market_id = request.path_params["market_id"]
        market = await markets.load(ctx.pool, market_id)
        return JSONResponse(
            {"market_id": market_id, "configured": market.configured, "rules": market.rules.model_dump()}
        )

    async def market(request: Request) -> Response:
        market_id = request.path_params["market_id"]
        state = await markets.load(ctx.pool, market_id)
        counts = await store.market_counts(ctx.pool, market_id)
        return JSONResponse({**state.view(market_id, handlers.now()), **counts})

    return [Route("/markets/{market_id}/rules", market_rules), Route("/markets/{market_id}", market)]


def build(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(
        subscriptions=subscriptions(), routes=market_routes(ctx), background=[expiry_job(ctx)]
    )


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
