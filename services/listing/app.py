"""The listing service's wiring: which topic's messages go to which handler, and its HTTP search."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from haggle.contracts.agents import AgentRegistered, AgentRetired
from haggle.contracts.goods import Condition
from haggle.contracts.listing import CreateListing, ListingStatus, UpdateListingPrice, WithdrawListing
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.settlement import EscrowFailed, FundsReleased, Refunded
from haggle.contracts.topics import (
    AGENT_EVENTS,
    LISTING_COMMANDS_TOPIC,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_EVENTS_TOPIC,
)
from haggle.runtime.service import ServiceContext, ServiceModule, ServiceParts, Subscription
from services.listing import handlers, store

NAME = "listing"
SCHEMA = "listing"
MIGRATIONS = Path(__file__).parent / "migrations"


def subscriptions() -> list[Subscription]:
    return [
        Subscription(
            LISTING_COMMANDS_TOPIC.name,
            {
                CreateListing: handlers.create_listing,
                UpdateListingPrice: handlers.update_price,
                WithdrawListing: handlers.withdraw_listing,
            },
            commands=True,
            on_invalid=handlers.refuse_invalid,
            batched=True,
        ),
        Subscription(
            AGENT_EVENTS.name,
            {AgentRegistered: handlers.on_agent_registered, AgentRetired: handlers.on_agent_retired},
            batched=True,
        ),
        Subscription(NEGOTIATION_EVENTS_TOPIC.name, {DealAgreed: handlers.on_deal_agreed}, batched=True),
        Subscription(
            SETTLEMENT_EVENTS_TOPIC.name,
            {
                FundsReleased: handlers.on_funds_released,
                EscrowFailed: handlers.on_escrow_failed,
                Refunded: handlers.on_refunded,
            },
            # Not batched: keyed by deal, a batch would lock listings in deal order and deadlock
            # with the listing-ordered batches above.
        ),
    ]


class SearchParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(default=None, max_length=200)
    market: str | None = Field(default=None, max_length=64)
    category: str | None = Field(default=None, max_length=64)
    min_price: int | None = Field(default=None, ge=0)
    max_price: int | None = Field(default=None, ge=0)
    min_condition: Condition | None = None
    status: ListingStatus | None = ListingStatus.ACTIVE
    limit: int = Field(default=20, ge=1, le=200)
    offset: int = Field(default=0, ge=0, le=100_000)

    def query(self) -> store.SearchQuery:
        return store.SearchQuery(
            self.market,
            self.q,
            self.category,
            self.min_price,
            self.max_price,
            self.min_condition,
            self.status,
            self.limit,
            self.offset,
        )


def search_route(ctx: ServiceContext) -> Route:
    async def search(request: Request) -> Response:
        try:
            params = SearchParams.model_validate(dict(request.query_params))
        except ValidationError as exc:
            return JSONResponse(
                {"error": "invalid_query", "detail": exc.errors(include_url=False, include_context=False)},
                400,
            )
        results = await store.search(ctx.pool, params.query())
        return JSONResponse({"count": len(results), "listings": results})

    return Route("/listings", search)


def build(ctx: ServiceContext) -> ServiceParts:
    return ServiceParts(subscriptions=subscriptions(), routes=[search_route(ctx)])


MODULE = ServiceModule(NAME, SCHEMA, MIGRATIONS, build)
