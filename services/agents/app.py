"""The agents service's wiring: mandates, the agents' inboxes, listings, and the turn scheduler.

Agent workers are one consumer group on `agent.inbox`: any instance can act
for any agent, because an agent's state and key live in PostgreSQL and every
action on one principal holds that principal's row.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from haggle.contracts.approval import ApprovalRequested
from haggle.contracts.listing import (
    ListingCommandRefused,
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.mandate import AssignMandate
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import (
    ActionRefused,
    AgentAdmitted,
    DealAgreed,
    MessagePosted,
    NegotiationEnded,
    OfferMade,
    ThreadOpened,
)
from haggle.contracts.settlement import (
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    Refunded,
    ShipmentDelivered,
)
from haggle.contracts.topics import AGENT_INBOX, LISTING_EVENTS_TOPIC, MANDATE_COMMANDS, MARKET_EVENTS
from haggle.runtime import identity, markets
from haggle.runtime.outbox import UnitOfWork, unit_of_work
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from haggle.runtime.sessions import session_connection
from haggle.runtime.settings import current
from services.agents import store
from services.agents.domain.brain import is_remote
from services.agents.handlers import common, lifecycle, settle, shop, turns
from services.agents.handlers.common import Toolkit
from services.agents.usage import usage_route

NAME = "agents"
SCHEMA = "agents"
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


async def _ignore(*_: object) -> None:
    """Seen and deliberately not acted on (a human answers approvals, not the agent)."""


def subscriptions(tools: Toolkit | None = None) -> list[Subscription]:
    tools = tools or Toolkit.from_settings(current())
    on_thread_event = partial(turns.on_thread_event, tools)
    return [
        Subscription(
            MANDATE_COMMANDS.name,
            {AssignMandate: lifecycle.on_assign_mandate},
            commands=True,
            batched=True,
            prefetch=lifecycle.market_locks_first,
        ),
        Subscription(
            AGENT_INBOX.name,
            {
                AgentAdmitted: lifecycle.on_admitted,
                ThreadOpened: on_thread_event,
                OfferMade: on_thread_event,
                MessagePosted: on_thread_event,
                NegotiationEnded: on_thread_event,
                DealAgreed: partial(turns.on_deal_agreed, tools),
                ActionRefused: partial(turns.on_refused, tools),
                EscrowFunded: settle.on_escrow_funded,
                ShipmentDelivered: settle.on_delivered,
                DisputeResolved: settle.on_dispute_resolved,
                EscrowFailed: settle.on_escrow_failed,
                Refunded: settle.on_refunded,
                FundsReleased: settle.on_released,
                ApprovalRequested: _ignore,
            },
            keys=identity.managed,
            batched=True,
            prefetch=lifecycle.market_locks_first,
            own_reader=True,
        ),
        Subscription(
            MARKET_EVENTS.name,
            {
                MarketRulesSet: lifecycle.on_market_event,
                MarketClosing: lifecycle.on_market_event,
                MarketClosed: lifecycle.on_market_event,
            },
        ),
        Subscription(
            LISTING_EVENTS_TOPIC.name,
            {
                ListingPublished: lifecycle.on_listing_published,
                ListingWithdrawn: lifecycle.on_listing_gone,
                ListingReserved: lifecycle.on_listing_gone,
                ListingSold: lifecycle.on_listing_gone,
                ListingRelisted: lifecycle.on_listing_relisted,
                ListingCommandRefused: lifecycle.on_listing_refused,
            },
        ),
    ]


async def run_due_turn(ctx: ServiceContext, tools: Toolkit, neg_id: str, principal_id: str) -> None:
    """One scheduled turn (an opening, a retry, a model's turn). A strategy decides inside one
    transaction. A model is asked between two: the first reads the turn, the model answers with
    no transaction open, and the second sends the answer only if the negotiation is still where
    the model saw it (`turns.take_asked_turn`)."""
    async with unit_of_work(ctx.pool, ctx.notify_channel) as uow:
        found = await _due(uow, neg_id, principal_id)
        if found is None:
            return
        principal, neg = found
        if not await shop.still_chosen(uow, principal, neg):
            return
        if not is_remote(tools.brain_for(principal)):
            neg.retry_at = None
            await turns.take_turn(tools, uow, principal, neg)
            return
        prepared = await turns.prepare(uow, principal, neg, counted=False)  # read only: not saved
    asked = await turns.ask_outside(tools, principal, *prepared) if prepared is not None else None
    async with unit_of_work(ctx.pool, ctx.notify_channel) as uow:
        found = await _due(uow, neg_id, principal_id)
        if found is None:
            return
        principal, neg = found
        neg.retry_at = None
        await turns.take_asked_turn(tools, uow, principal, neg, asked)


async def _due(
    uow: UnitOfWork, neg_id: str, principal_id: str
) -> tuple[store.Principal, store.Negotiation] | None:
    principal = await store.principal(uow.conn, principal_id)
    neg = await store.negotiation(uow.conn, neg_id)
    if principal is None or neg is None or neg.retry_at is None or neg.retry_at > common.now():
        return None
    return principal, neg


def turn_scheduler(
    ctx: ServiceContext, tools: Toolkit, interval: float = 0.5, concurrency: int = 8, rest: float = 2.0
) -> Callable[[], Coroutine[Any, Any, None]]:
    """Takes due turns (openings, retries, a model's turns) and due listing retries
    (`lifecycle.create_due_listings`): each principal's turns one at a time, up to
    `concurrency` at once, woken by a NOTIFY when a handler makes a turn due (else every
    `interval`). A slow model answer holds up only its own principal's turns; a principal whose
    turn failed rests `rest` seconds before its turns are tried again."""
    gate = asyncio.Semaphore(concurrency)
    busy: dict[str, asyncio.Task[None]] = {}
    resting: dict[str, float] = {}
    woken = asyncio.Event()

    async def turns_of(principal_id: str, neg_ids: list[str]) -> None:
        failed = False
        try:
            for neg_id in neg_ids:
                async with gate:
                    try:
                        await run_due_turn(ctx, tools, neg_id, principal_id)
                    except Exception:
                        failed = True
                        log.exception("scheduled turn failed", extra={"neg_id": neg_id})
        finally:
            busy.pop(principal_id, None)
            if failed:
                resting[principal_id] = time.monotonic() + rest
            woken.set()  # its other due turns can go now

    async def rounds(listener: asyncpg.Connection) -> None:
        while True:
            woken.clear()
            clock = time.monotonic()
            for principal_id in [p for p, until in resting.items() if until <= clock]:
                del resting[principal_id]
            due = await store.due_retries(listener, common.now(), busy=(*busy, *resting))
            by_principal: dict[str, list[str]] = {}
            for neg_id, principal_id in due:
                by_principal.setdefault(principal_id, []).append(neg_id)
            for principal_id, neg_ids in by_principal.items():
                busy[principal_id] = asyncio.create_task(turns_of(principal_id, neg_ids))
            async with unit_of_work(ctx.pool, ctx.notify_channel) as uow:
                await lifecycle.create_due_listings(uow)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=interval)

    async def turn_scheduler() -> None:
        """Run under the service's supervisor, which restarts it (after a backoff) on error."""
        async with session_connection(ctx.pool) as listener:
            await listener.add_listener(common.TURNS_CHANNEL, lambda *_: woken.set())
            await rounds(listener)

    return turn_scheduler


def market_route(ctx: ServiceContext) -> Route:
    """A market's phase as the agents see it, and their negotiations there that could still move."""

    async def market(request: Request) -> Response:
        market_id = request.path_params["market_id"]
        state = await markets.load(ctx.pool, market_id)
        counts = await store.market_counts(ctx.pool, market_id)
        return JSONResponse({**state.view(market_id, common.now()), **counts})

    return Route("/markets/{market_id}", market)


def build(ctx: ServiceContext) -> ServiceParts:
    """The composition root: one toolkit (rate limiter, brains) for every handler of this app."""
    tools = Toolkit.from_settings(ctx.settings)
    return ServiceParts(
        subscriptions=subscriptions(tools),
        routes=[market_route(ctx), usage_route(ctx.pool)],
        background=[turn_scheduler(ctx, tools)],
    )


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
