"""An agent's life: mandate assigned → registered → admitted → items listed → wants matched."""

from __future__ import annotations

import asyncio
import logging

from prometheus_client import Counter

from haggle.contracts import AgentKey, Envelope
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.listing import (
    ListingCommandRefused,
    ListingPublished,
    ListingRefusal,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.mandate import AssignMandate, Mandate, Want, amendment_problems
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import AgentAdmitted
from haggle.contracts.topics import AGENT_EVENTS, LISTING_COMMANDS_TOPIC
from haggle.runtime import markets, operators
from haggle.runtime.outbox import UnitOfWork
from services.agents import purchases, store
from services.agents.handlers import common, shop
from services.agents.store import Principal

log = logging.getLogger(__name__)
MANDATES_REFUSED = Counter("haggle_mandates_refused_total", "Mandates refused: not signed by an operator")
HOPELESS_BELOW = 0.5
"""A want does not haggle over a listing asking more than twice its private max."""


def agent_id_for(principal_id: str) -> str:
    return f"{principal_id}.agent"


async def on_assign_mandate(uow: UnitOfWork, env: Envelope, cmd: AssignMandate) -> None:
    """Create the principal's agent (a new key, stored) and register it; a repeat changes nothing.

    Only the operator hands out mandates: a mandate is a claim on a principal's money.
    """
    if not operators.is_operator(env):
        MANDATES_REFUSED.inc()
        log.warning("mandate not signed by an operator", extra={"principal_id": cmd.mandate.principal_id})
        return
    mandate = cmd.mandate
    if mandate.brain.kind == "external":
        return  # an agent we do not run: the agent gateway takes this mandate
    key = AgentKey.generate()
    created = await store.insert_principal(
        uow.conn, env.market_id, mandate, cmd.variant, agent_id_for(mandate.principal_id), key
    )
    if not created:
        await amend(uow, mandate)
        return
    principal = await store.principal(uow.conn, mandate.principal_id)
    assert principal is not None
    role = Role.BOTH if mandate.items and mandate.wants else Role.SELLER if mandate.items else Role.BUYER
    registration = AgentRegistered(
        agent_id=principal.agent_id,
        principal_id=mandate.principal_id,
        owner_id=mandate.owner_id,
        role=role,
        public_key=key.public,
    )
    await common.send(uow, principal, registration, AGENT_EVENTS.name, principal.agent_id)


async def amend(uow: UnitOfWork, mandate: Mandate) -> None:
    """A second mandate for a running agent: its new limits apply when the mandate contract allows
    the change (`amendment_problems`), and its wants look again at what is for sale."""
    principal = await store.principal(uow.conn, mandate.principal_id)
    if principal is None or principal.mandate == mandate:
        return
    if problems := amendment_problems(principal.mandate, mandate):
        log.warning(
            "mandate amendment refused", extra={"principal_id": mandate.principal_id, "problems": problems}
        )
        return
    await uow.conn.execute(
        "UPDATE principals SET mandate = $2 WHERE principal_id = $1",
        mandate.principal_id,
        mandate.model_dump_json(),
    )
    amended = await store.principal(uow.conn, mandate.principal_id)
    if amended is None or not amended.admitted:
        return
    await market_lock(uow, amended.market_id)
    if await market_open(uow, amended.market_id):
        for listing in await store.active_listings(uow.conn, amended.market_id):
            await consider(uow, amended, listing)


async def on_admitted(uow: UnitOfWork, env: Envelope, event: AgentAdmitted) -> None:
    """Admitted by the referee: list what we sell, and look at what is already for sale."""
    principal = await store.principal_by_agent(uow.conn, event.agent_id)
    if principal is None:
        return
    await market_lock(uow, principal.market_id)
    if not await store.set_admitted(uow.conn, principal.principal_id):
        return
    if not await market_open(uow, principal.market_id):
        return
    for item in principal.mandate.items:
        listing_id = common.listing_id_for(principal.principal_id, item.id)
        cmd = item.to_listing(listing_id, principal.agent_id, principal.principal_id)
        await common.send(uow, principal, cmd, LISTING_COMMANDS_TOPIC.name, listing_id)
    if principal.mandate.wants:
        for listing in await store.active_listings(uow.conn, principal.market_id):
            await consider(uow, principal, listing)


def matching_want(principal: Principal, listing: ListingPublished, fulfilled: set[str]) -> Want | None:
    """The first unfilled want this listing could satisfy, judged on structured facts only; never a
    listing whose purchase the principal denied or let expire."""
    if listing.seller_principal_id == principal.principal_id:
        return None
    if listing.listing_id in principal.refused_listings:
        return None
    for want in principal.mandate.wants:
        if want.id in fulfilled or not want.matches(listing.title, listing.category):
            continue
        if not listing.condition.at_least(want.min_condition):
            continue
        if principal.buying_cap(want.id) < HOPELESS_BELOW * listing.price_cents:
            continue
        return want
    return None


async def consider(uow: UnitOfWork, principal: Principal, listing: ListingPublished) -> None:
    """A matching listing joins the shortlist of the want it matches (`shop`)."""
    want = matching_want(principal, listing, await store.fulfilled_wants(uow.conn, principal.principal_id))
    if want is not None:
        await shop.consider(uow, principal, listing, want)


async def market_lock(uow: UnitOfWork, market_id: str) -> None:
    """Admissions and new listings of one market take turns: else an agent admitted while a listing
    is being saved would see neither the listing in its first scan nor itself in the listing's."""
    await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"agents-market:{market_id}")


async def market_open(uow: UnitOfWork, market_id: str) -> bool:
    state = await markets.load(uow.conn, market_id)
    return purchases.may_start(state.phase_at(common.now()))


async def on_market_event(
    uow: UnitOfWork, env: Envelope, event: MarketRulesSet | MarketClosing | MarketClosed
) -> None:
    """A closing market gets no new negotiation or listing: what waits to open ends now."""
    phase = await markets.apply(uow, env, event, common.PRODUCER)
    if phase is not None and not purchases.may_start(phase):
        ended = await store.end_openings(uow.conn, env.market_id, "market_closing")
        log.info("market closing: openings ended", extra={"market_id": env.market_id, "ended": ended})


async def on_listing_published(uow: UnitOfWork, env: Envelope, event: ListingPublished) -> None:
    await market_lock(uow, env.market_id)
    await store.save_listing(uow.conn, env.market_id, event)
    if not await market_open(uow, env.market_id):
        return
    for principal in await store.admitted_buyers(uow.conn, env.market_id):
        await consider(uow, principal, event)


async def on_listing_gone(
    uow: UnitOfWork, env: Envelope, event: ListingWithdrawn | ListingReserved | ListingSold
) -> None:
    status = {"ListingWithdrawn": "withdrawn", "ListingReserved": "reserved", "ListingSold": "sold"}[
        event.type
    ]
    await store.set_listing_status(uow.conn, event.listing_id, status)


async def on_listing_relisted(uow: UnitOfWork, env: Envelope, event: ListingRelisted) -> None:
    await market_lock(uow, env.market_id)
    await store.set_listing_status(uow.conn, event.listing_id, "active")
    known = await store.listing(uow.conn, event.listing_id)
    if known is None or not await market_open(uow, env.market_id):
        return
    for principal in await store.admitted_buyers(uow.conn, env.market_id):
        await consider(uow, principal, known[0])


LISTING_RETRIES: dict[str, int] = {}
MAX_LISTING_RETRIES = 10


async def on_listing_refused(uow: UnitOfWork, env: Envelope, event: ListingCommandRefused) -> None:
    """The listing service may read agent.events behind the referee: list again once it knows us."""
    if event.reason is not ListingRefusal.UNKNOWN_AGENT or event.command_type != "CreateListing":
        return
    principal_id, _, item_id = event.listing_id.rpartition(".")
    principal = await store.principal(uow.conn, principal_id)
    attempts = LISTING_RETRIES.get(event.listing_id, 0)
    if principal is None or not principal.admitted or attempts >= MAX_LISTING_RETRIES:
        return
    LISTING_RETRIES[event.listing_id] = attempts + 1
    await asyncio.sleep(min(1.0, 0.1 * 2**attempts))
    item = principal.mandate.item(item_id)
    cmd = item.to_listing(event.listing_id, principal.agent_id, principal.principal_id)
    await common.send(uow, principal, cmd, LISTING_COMMANDS_TOPIC.name, event.listing_id)
