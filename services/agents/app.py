"""The agents service's wiring: mandates, the agents' inboxes, listings, and the turn scheduler.

Agent workers are one consumer group on `agent.inbox`: any instance can act
for any agent, because an agent's state and key live in PostgreSQL and every
action on one principal holds that principal's row.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

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
from haggle.contracts.topics import AGENT_INBOX, LISTING_EVENTS_TOPIC, MANDATE_COMMANDS
from haggle.runtime.outbox import unit_of_work
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from services.agents import store
from services.agents.handlers import common, lifecycle, settle, turns

NAME = "agents"
SCHEMA = "agents"
MIGRATIONS = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


async def _ignore(*_: object) -> None:
    """Seen and deliberately not acted on (a human answers approvals, not the agent)."""


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            MANDATE_COMMANDS.name, {AssignMandate: lifecycle.on_assign_mandate}, commands=True, batched=True
        ),
        Subscription(
            AGENT_INBOX.name,
            {
                AgentAdmitted: lifecycle.on_admitted,
                ThreadOpened: turns.on_thread_event,
                OfferMade: turns.on_thread_event,
                MessagePosted: turns.on_thread_event,
                NegotiationEnded: turns.on_thread_event,
                DealAgreed: turns.on_deal_agreed,
                ActionRefused: turns.on_refused,
                EscrowFunded: settle.on_escrow_funded,
                ShipmentDelivered: settle.on_delivered,
                DisputeResolved: settle.on_dispute_resolved,
                EscrowFailed: settle.on_escrow_failed,
                Refunded: settle.on_refunded,
                FundsReleased: settle.on_released,
                ApprovalRequested: _ignore,
            },
            keys=store.managed,
            batched=True,
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


async def run_due_turn(ctx: ServiceContext, neg_id: str, principal_id: str) -> None:
    """One scheduled turn (an opening, or a retry) in its own transaction."""
    async with unit_of_work(ctx.pool, ctx.notify_channel) as uow:
        principal = await store.principal(uow.conn, principal_id)
        neg = await store.negotiation(uow.conn, neg_id)
        if principal is None or neg is None or neg.retry_at is None or neg.retry_at > common.now():
            return
        neg.retry_at = None
        await turns.take_turn(uow, principal, neg)


def turn_scheduler(
    ctx: ServiceContext, interval: float = 0.2, concurrency: int = 8
) -> Callable[[], Coroutine[Any, Any, None]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(neg_id: str, principal_id: str) -> None:
        async with gate:
            try:
                await run_due_turn(ctx, neg_id, principal_id)
            except Exception:
                log.exception("scheduled turn failed", extra={"neg_id": neg_id})

    async def schedule_forever() -> None:
        while True:
            try:
                async with ctx.pool.acquire() as conn:
                    due = await store.due_retries(conn, common.now())
                by_principal: dict[str, list[str]] = {}
                for neg_id, principal_id in due:
                    by_principal.setdefault(principal_id, []).append(neg_id)
                await asyncio.gather(
                    *(_serially(one, principal_id, ids) for principal_id, ids in by_principal.items())
                )
            except Exception:
                log.exception("turn scheduler round failed")
            await asyncio.sleep(interval)

    return schedule_forever


async def _serially(
    one: Callable[[str, str], Coroutine[Any, Any, None]], principal_id: str, neg_ids: list[str]
) -> None:
    for neg_id in neg_ids:
        await one(neg_id, principal_id)


def build(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(subscriptions=subscriptions(), background=[turn_scheduler(ctx)])


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
