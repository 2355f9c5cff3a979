"""An agent's life: mandate assigned → registered → admitted → items listed → wants matched."""

from __future__ import annotations

import logging

from prometheus_client import Counter

from haggle.contracts import AgentKey, Envelope, Message
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.listing import (
    ListingCommandRefused,
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import AgentAdmitted
from haggle.contracts.topics import AGENT_EVENTS, LISTING_COMMANDS_TOPIC
from haggle.runtime import markets, operators
from haggle.runtime.outbox import UnitOfWork
from services.agents import store
from services.agents.domain import EndedBecause, listings, purchases
from services.agents.handlers import common, shop

log = logging.getLogger(__name__)
MANDATES_REFUSED = Counter("haggle_mandates_refused_total", "Mandates refused: not signed by an operator")


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
    the change (`Principal.amend`), and its wants look again at what is for sale."""
    principal = await store.principal(uow.conn, mandate.principal_id)
    if principal is None or principal.mandate == mandate:
        return
    if problems := principal.amend(mandate):
        log.warning(
            "mandate amendment refused", extra={"principal_id": mandate.principal_id, "problems": problems}
        )
        return
    await store.save_mandate(uow.conn, principal)
    if not principal.admitted:
        return
    await market_lock(uow, principal.market_id)
    if await market_open(uow, principal.market_id):
        for_sale = await store.active_listings(uow.conn, principal.market_id)
        await shop.consider(uow, [(principal, listing) for listing in for_sale])


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
        listing_id = principal.listing_id_for(item.id)
        cmd = item.to_listing(listing_id, principal.agent_id, principal.principal_id)
        await common.send(uow, principal, cmd, LISTING_COMMANDS_TOPIC.name, listing_id)
    if principal.mandate.wants:
        for_sale = await store.active_listings(uow.conn, principal.market_id)
        await shop.consider(uow, [(principal, listing) for listing in for_sale])


async def market_lock(uow: UnitOfWork, market_id: str) -> None:
    """An admission (or an amendment) and the listings of its market take turns: else an agent
    admitted while a listing is being saved would see neither the listing in its first scan nor
    itself in the listing's. The admission holds the market alone (`listing_lock`)."""
    await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", _market_key(market_id))


async def listing_lock(uow: UnitOfWork, market_id: str) -> None:
    """Listings of one market are read side by side, sharing the market's lock: only an admission
    has to wait for them (and they for it). Taken one at a time, a 500 × 3,000 market's listings
    were read at about six a second, and the market could not end before the agents had read all.
    Two listings may meet on one buyer's shortlist; both lock its rows in (principal, negotiation)
    order, and the buyer's turn ranks the shortlist again before anything opens."""
    await uow.conn.execute("SELECT pg_advisory_xact_lock_shared(hashtext($1))", _market_key(market_id))


def _market_key(market_id: str) -> str:
    return f"agents-market:{market_id}"


TAKES_MARKET_LOCK: tuple[type[Message], ...] = (AgentAdmitted, AssignMandate)
"""Messages whose handlers take their market's lock (an admission; a mandate, when it amends)."""


async def market_locks_first(uow: UnitOfWork, batch: list[tuple[Envelope, Message]]) -> None:
    """Before a batch's handlers run: the market locks its messages will take, in market order.

    A listing's transaction takes the market lock and then locks buyers' negotiation rows. A batch
    that locked some principal's rows first (a deal closed) and then reached an admission waited for
    that lock while the listing's waited for its rows: PostgreSQL aborted one as a deadlock, again
    and again in a 500 × 3,000 market. Taken first, the lock is only ever waited for holding none."""
    locking = {env.market_id for env, message in batch if isinstance(message, TAKES_MARKET_LOCK)}
    for market_id in sorted(locking):
        await market_lock(uow, market_id)


async def market_open(uow: UnitOfWork, market_id: str) -> bool:
    state = await markets.load(uow.conn, market_id)
    return purchases.may_start(state.phase_at(common.now()))


async def on_market_event(
    uow: UnitOfWork, env: Envelope, event: MarketRulesSet | MarketClosing | MarketClosed
) -> None:
    """A closing market gets no new negotiation or listing: what waits to open ends now."""
    phase = await markets.apply(uow, env, event, common.PRODUCER)
    if phase is not None and not purchases.may_start(phase):
        ended = await store.end_openings(uow.conn, env.market_id, EndedBecause.MARKET_CLOSING)
        log.info("market closing: openings ended", extra={"market_id": env.market_id, "ended": ended})


async def on_listing_published(uow: UnitOfWork, env: Envelope, event: ListingPublished) -> None:
    await listing_lock(uow, env.market_id)
    await store.save_listing(uow.conn, env.market_id, event)
    if not await market_open(uow, env.market_id):
        return
    buyers = await store.admitted_buyers(uow.conn, env.market_id, event.category)
    await shop.consider(uow, [(principal, event) for principal in buyers])


async def on_listing_gone(
    uow: UnitOfWork, env: Envelope, event: ListingWithdrawn | ListingReserved | ListingSold
) -> None:
    status = {"ListingWithdrawn": "withdrawn", "ListingReserved": "reserved", "ListingSold": "sold"}[
        event.type
    ]
    await store.set_listing_status(uow.conn, event.listing_id, status)


async def on_listing_relisted(uow: UnitOfWork, env: Envelope, event: ListingRelisted) -> None:
    await listing_lock(uow, env.market_id)
    await store.set_listing_status(uow.conn, event.listing_id, "active")
    known = await store.listing(uow.conn, event.listing_id)
    if known is None or not await market_open(uow, env.market_id):
        return
    buyers = await store.admitted_buyers(uow.conn, env.market_id, known[0].category)
    await shop.consider(uow, [(principal, known[0]) for principal in buyers])


async def on_listing_refused(uow: UnitOfWork, env: Envelope, event: ListingCommandRefused) -> None:
    """The listing service may read agent.events behind the referee: list again once it knows us,
    at a scheduled time (`create_due_listings`), never by waiting here."""
    if not listings.worth_retrying(event):
        return
    principal_id, _, item_id = event.listing_id.rpartition(".")
    principal = await store.principal(uow.conn, principal_id)
    if principal is None or not principal.admitted:
        return
    attempts = await store.listing_retry_attempts(uow.conn, event.listing_id)
    due = listings.retry_due(attempts, common.now())
    if due is None:
        log.warning("listing refused too often; not retried", extra={"listing_id": event.listing_id})
        return
    await store.schedule_listing_retry(uow.conn, event.listing_id, principal_id, item_id, due)
    uow.wake.add(common.TURNS_CHANNEL)


async def create_due_listings(uow: UnitOfWork) -> int:
    """Create again the refused listings now due (each taken by one instance only)."""
    due = await store.take_due_listing_retries(uow.conn, common.now())
    for listing_id, principal_id, item_id in due:
        principal = await store.principal(uow.conn, principal_id)
        if principal is None:
            continue
        item = principal.mandate.item(item_id)
        cmd = item.to_listing(listing_id, principal.agent_id, principal.principal_id)
        await common.send(uow, principal, cmd, LISTING_COMMANDS_TOPIC.name, listing_id)
    return len(due)
