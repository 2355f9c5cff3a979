"""The agent gateway's wiring: agents we do not run trade here, under their principal's mandate.

Consumes mandate.commands (mandates whose brain is `external`), its agents' agent.inbox and
listing.events; serves the HTTP API and the MCP server (services/gateway/faces.py) on
HAGGLE_GATEWAY_PORT. `haggle services up` starts it with the others; `haggle run gateway` alone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from haggle.contracts.approval import ApprovalRequested
from haggle.contracts.listing import (
    ListingCommandRefused,
    ListingPriceUpdated,
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
    SETTLEMENT_INBOX_EVENTS,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    Refunded,
)
from haggle.contracts.topics import AGENT_INBOX, LISTING_EVENTS_TOPIC, MANDATE_COMMANDS
from haggle.runtime import identity
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from services.gateway import handlers
from services.gateway.api import Gateway
from services.gateway.faces import http_routes, mcp_route, mcp_server

NAME = "gateway"
SCHEMA = "gateway"
MIGRATIONS = Path(__file__).parent / "migrations"

DEAL_STEPS = {EscrowFunded, FundsReleased, EscrowFailed, Refunded}


def subscriptions() -> list[Subscription]:
    settlement_steps = {
        model: handlers.on_deal_step if model in DEAL_STEPS else handlers.ignore
        for model in SETTLEMENT_INBOX_EVENTS
    }
    return [
        Subscription(MANDATE_COMMANDS.name, {AssignMandate: handlers.on_assign_mandate}, commands=True),
        Subscription(
            AGENT_INBOX.name,
            {
                AgentAdmitted: handlers.on_admitted,
                ThreadOpened: handlers.on_thread_event,
                OfferMade: handlers.on_thread_event,
                MessagePosted: handlers.on_thread_event,
                NegotiationEnded: handlers.on_thread_event,
                DealAgreed: handlers.on_deal_agreed,
                ActionRefused: handlers.on_refused,
                ApprovalRequested: handlers.ignore,
                **settlement_steps,
            },
            keys=identity.managed,
            own_reader=True,
        ),
        Subscription(
            LISTING_EVENTS_TOPIC.name,
            {
                ListingPublished: handlers.on_listing_published,
                ListingWithdrawn: handlers.on_listing_status,
                ListingReserved: handlers.on_listing_status,
                ListingSold: handlers.on_listing_status,
                ListingRelisted: handlers.on_listing_status,
                ListingPriceUpdated: handlers.ignore,
                ListingCommandRefused: handlers.ignore,
            },
            batched=True,
        ),
    ]


def build(ctx: ServiceContext) -> ServiceParts:
    gateway = Gateway.build(ctx.pool, ctx.notify_channel, ctx.settings)
    server = mcp_server(gateway)
    mount = mcp_route(server)

    async def run_mcp_sessions() -> None:
        async with server.session_manager.run():
            await asyncio.Event().wait()

    return ServiceParts(
        subscriptions=subscriptions(),
        routes=[*http_routes(gateway), mount],
        background=[run_mcp_sessions, gateway.waiters.listen],
    )


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
