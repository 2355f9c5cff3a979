"""The settlement service's wiring: topics to handlers, the deadline job, and its small HTTP face."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from haggle.contracts.agents import AgentRegistered, AgentRetired
from haggle.contracts.approval import ApprovalDenied, ApprovalGranted
from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import AssignMandate
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    FundWallet,
    LinkPaymentAccount,
    OpenDispute,
    ProviderEvent,
    ResolveDispute,
    SetShipTo,
    ShipItem,
)
from haggle.contracts.topics import (
    AGENT_EVENTS,
    APPROVAL_EVENTS,
    LISTING_EVENTS_TOPIC,
    MANDATE_COMMANDS,
    MARKET_EVENTS,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_COMMANDS,
)
from haggle.runtime import handled, markets
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from haggle.runtime.settings import Settings, current
from services.settlement import store
from services.settlement.check import run_checks
from services.settlement.domain.deal import Deal, DealState
from services.settlement.handlers import commands, deals, mandates, reference
from services.settlement.payments import rails as payments
from services.settlement.payments.handlers import link_payment_account, provider_event
from services.settlement.timers import timer_job

NAME = "settlement"
SCHEMA = "settlement"
MIGRATIONS = Path(__file__).parent / "migrations"


def subscriptions(settings: Settings | None = None) -> list[Subscription]:
    settings = settings or current()
    return [
        Subscription(
            SETTLEMENT_COMMANDS.name,
            {
                FundWallet: commands.fund_wallet,
                ShipItem: commands.ship_item,
                ConfirmHandover: commands.confirm_handover,
                AcceptGoods: commands.accept_goods,
                OpenDispute: commands.open_dispute,
                ResolveDispute: commands.resolve_dispute,
                LinkPaymentAccount: link_payment_account,
                ProviderEvent: partial(provider_event, settings),
                SetShipTo: commands.set_ship_to,
            },
            commands=True,
            on_invalid=commands.refuse_invalid,
        ),
        # Addressed to the agents service; settlement reads it for an amended auto-approve limit.
        Subscription(MANDATE_COMMANDS.name, {AssignMandate: mandates.on_assign_mandate}),
        Subscription(NEGOTIATION_EVENTS_TOPIC.name, {DealAgreed: deals.on_deal_agreed}),
        Subscription(
            APPROVAL_EVENTS.name,
            {ApprovalGranted: deals.on_approval_granted, ApprovalDenied: deals.on_approval_denied},
        ),
        Subscription(
            AGENT_EVENTS.name,
            {AgentRegistered: reference.on_agent_registered, AgentRetired: reference.on_agent_retired},
            batched=True,
        ),
        Subscription(
            MARKET_EVENTS.name,
            {
                MarketRulesSet: reference.on_market_event,
                MarketClosing: reference.on_market_event,
                MarketClosed: reference.on_market_event,
            },
        ),
        # Reference data only: batched. Deals, approvals and commands move money: one transaction
        # each, so a batch never holds many wallets' locks at once.
        Subscription(
            LISTING_EVENTS_TOPIC.name, {ListingPublished: reference.on_listing_published}, batched=True
        ),
    ]


def _approval_view(deal: Deal) -> dict[str, object]:
    return {
        "approval_id": deal.approval_id,
        "deal_id": deal.deal_id,
        "market_id": deal.market_id,
        "listing_id": deal.listing_id,
        "principal_id": deal.buyer_principal_id,
        "buyer_agent_id": deal.buyer_agent_id,
        "amount_cents": deal.escrow_cents,
        "expires_at": deal.due_at.isoformat() if deal.due_at else None,
    }


def routes(ctx: ServiceContext) -> list[Route]:
    async def approvals(request: Request) -> Response:
        market = request.query_params.get("market")
        waiting = await store.deals_in(ctx.pool, DealState.AWAITING_APPROVAL, market)
        return JSONResponse({"approvals": [_approval_view(d) for d in waiting]})

    async def disputes(request: Request) -> Response:
        market = request.query_params.get("market")
        open_ = await store.deals_in(ctx.pool, DealState.DISPUTED, market)
        return JSONResponse({"disputes": [d.model_dump(mode="json") for d in open_]})

    async def deal(request: Request) -> Response:
        found = await store.find_deal(ctx.pool, request.path_params["deal_id"])
        if found is None:
            return JSONResponse({"error": "unknown_deal"}, 404)
        return JSONResponse({**found.model_dump(mode="json"), "escrow_cents": found.escrow_cents})

    async def market_rules(request: Request) -> Response:
        found = await store.stored_rules(ctx.pool, request.path_params["market_id"])
        if found is None:
            return JSONResponse({"error": "no_rules_published"}, 404)
        return JSONResponse(found)

    async def market(request: Request) -> Response:
        market_id = request.path_params["market_id"]
        state = await markets.load(ctx.pool, market_id)
        counts = await store.market_counts(ctx.pool, market_id)
        return JSONResponse({**state.view(market_id, datetime.now(UTC)), **counts})

    async def ledger_checks(request: Request) -> Response:
        async with ctx.pool.acquire() as conn:
            results = await run_checks(conn, request.query_params.get("market"))
        return JSONResponse({"checks": [dataclasses.asdict(r) for r in results]})

    return [
        Route("/ledger/checks", ledger_checks),
        Route("/markets/{market_id}", market),
        Route("/approvals", approvals),
        Route("/disputes", disputes),
        Route("/deals/{deal_id}", deal),
        Route("/markets/{market_id}/rules", market_rules),
    ]


def deadline_guard(ctx: ServiceContext) -> handled.HandledThrough:
    """Deadlines wait for the parties' commands and the humans' approval answers sent before them."""
    return handled.for_service(ctx, (SETTLEMENT_COMMANDS.name, APPROVAL_EVENTS.name))


def build(ctx: ServiceContext) -> ServiceParts:
    settings = ctx.settings
    rails = payments.wiring(ctx.pool, ctx.notify_channel, settings)
    return ServiceParts(
        subscriptions=subscriptions(settings),
        routes=[*routes(ctx), *rails.routes],
        background=[
            timer_job(ctx.pool, ctx.notify_channel, deadline_guard(ctx), settings.settlement_tick_seconds),
            *rails.background,
        ],
    )


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
