"""Referee handlers: authenticate → load → decide → save + outbox (with fan-out to inboxes)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from prometheus_client import Counter, Histogram

from haggle.contracts import Envelope, InvalidPayload, Message, wrap
from haggle.contracts.agents import AgentRegistered, AgentRetired, Role
from haggle.contracts.listing import (
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import (
    AcceptOffer,
    ActionRefused,
    AgentAdmitted,
    EndReason,
    NegotiationRefusal,
    OpenNegotiation,
    ThreadOpened,
)
from haggle.contracts.topics import AGENT_INBOX, NEGOTIATION_EVENTS_TOPIC
from haggle.runtime import identity, markets
from haggle.runtime.consumer import appended_at
from haggle.runtime.outbox import UnitOfWork
from services.negotiation import store
from services.negotiation.domain import (
    Actor,
    Context,
    Decision,
    ListingState,
    ListingView,
    Refusal,
    close_for_listing,
    decide,
)
from services.negotiation.store import Listings, Threads

log = logging.getLogger(__name__)
PRODUCER = "negotiation"

THREADS_OPENED = Counter("haggle_threads_opened_total", "Negotiation threads opened")
MOVES = Counter("haggle_moves_total", "Negotiation moves applied", ["type"])
REFUSALS = Counter("haggle_refusals_total", "Moves refused", ["service", "reason"])
DEALS = Counter("haggle_deals_total", "Deals agreed")
ROUNDS = Histogram(
    "haggle_rounds_to_agreement", "Offers made before a deal", buckets=(1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30)
)
THREADS_ENDED = Counter("haggle_threads_ended_total", "Negotiation threads ended", ["reason"])
REGISTRATIONS = Counter("haggle_agent_registrations_total", "Agent registrations seen", ["outcome"])


@dataclass(frozen=True)
class Cause:
    """What an emitted event points back to: the market and the message (or timer) behind it."""

    market_id: str
    event_id: str

    @classmethod
    def of(cls, env: Envelope) -> Cause:
        return cls(env.market_id, str(env.event_id))


DEFAULT_RULES = MarketRulesSet()
"""Moves after the opening read no market rule: the thread carries its own deadline and rounds."""


def now() -> datetime:
    return datetime.now(UTC)


def _emit(
    uow: UnitOfWork, cause: Cause, event: Message, recipients: tuple[str, ...], correlation: str
) -> None:
    """One event on negotiation.events, and a copy in each recipient's inbox."""
    listing_id = str(getattr(event, "listing_id", "") or "unknown")
    out = wrap(
        event,
        market_id=cause.market_id,
        producer=PRODUCER,
        correlation_id=correlation,
        causation_id=cause.event_id,
    )
    uow.emit(NEGOTIATION_EVENTS_TOPIC.name, listing_id, out)
    for agent_id in dict.fromkeys(recipients):
        copy = wrap(
            event,
            market_id=cause.market_id,
            producer=PRODUCER,
            correlation_id=correlation,
            causation_id=cause.event_id,
            agent_id=agent_id,
        )
        uow.emit(AGENT_INBOX.name, agent_id, copy)


async def _refuse(
    uow: UnitOfWork, env: Envelope, listing_id: str, thread_id: str | None, refusal: Refusal
) -> None:
    REFUSALS.labels(PRODUCER, refusal.reason.value).inc()
    event = ActionRefused(
        listing_id=listing_id[:128],
        thread_id=thread_id,
        agent_id=env.agent_id,
        seq=env.seq,
        command_type=env.type[:64],
        command_event_id=str(env.event_id),
        reason=refusal.reason,
        detail=refusal.detail[:1000],
    )
    recipients = (env.agent_id,) if env.agent_id else ()
    _emit(uow, Cause.of(env), event, recipients, thread_id or listing_id)


def _actor(agent: identity.Agent) -> Actor:
    return Actor(
        agent.agent_id,
        agent.principal_id,
        agent.owner_id,
        can_buy=agent.role in (Role.BUYER, Role.BOTH),
        can_sell=agent.role in (Role.SELLER, Role.BOTH),
    )


async def _context(uow: UnitOfWork, env: Envelope, cmd: Message, agent: identity.Agent) -> Context:
    """What the decision reads, and no more: most moves are counters on a hot path."""
    listing_id: str = cmd.listing_id
    listing = await uow.repo(Listings).get(listing_id)
    base = Context(
        actor=_actor(agent),
        listing=listing,
        thread=None,
        rules=DEFAULT_RULES,
        now=appended_at() or now(),  # when the broker took the move: a sender cannot backdate it
        market_id=env.market_id,
    )
    if isinstance(cmd, OpenNegotiation):
        return await _opening_context(uow, env, base, agent, listing_id)
    threads = uow.repo(Threads)
    thread = await threads.get(cmd.thread_id)
    if thread is not None and thread.listing_id != listing_id:
        thread = None
    if not isinstance(cmd, AcceptOffer):
        return replace(base, thread=thread)
    others = tuple(
        t for t in await threads.open_on(listing_id) if thread is None or t.thread_id != thread.thread_id
    )
    return replace(base, thread=thread, others_open=others)


async def _opening_context(
    uow: UnitOfWork, env: Envelope, base: Context, agent: identity.Agent, listing_id: str
) -> Context:
    """Only an opening reads the market's rules, the seller's owner and the buyer's open threads."""
    conn = uow.conn
    # Opens on different listings run in parallel (other partitions): one agent's opens take
    # turns, or several could pass the open-thread cap together.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"opens:{agent.agent_id}")
    listing = base.listing
    threads = uow.repo(Threads)
    seller = await uow.repo(identity.Agents).get(listing.seller_agent_id) if listing else None
    epoch = listing.epoch if listing else 0
    market = await markets.load(conn, env.market_id)
    return replace(
        base,
        rules=market.rules,
        phase=market.phase_at(base.now),
        seller_owner_id=seller.owner_id if seller else None,
        seen_thread_before=await threads.exists(listing_id, agent.agent_id, epoch),
        open_threads_of_actor=await threads.open_count(agent.agent_id),
    )


async def prefetch(uow: UnitOfWork, commands: list[tuple[Envelope, Message]]) -> None:
    """A batch's listings and threads (locked, in id order), its senders and sellers and their
    seqs, in four reads instead of four per command; the handlers then find them in the unit of
    work's repositories, and the batch's thread and seq writes go out in one statement each at
    commit."""
    listings = uow.repo(Listings)
    listing_ids = sorted({str(cmd.listing_id) for _, cmd in commands})
    await listings.load_many(listing_ids)
    thread_ids = sorted({str(t) for _, cmd in commands if (t := getattr(cmd, "thread_id", None))})
    if thread_ids:
        await uow.repo(Threads).load_of_listings(thread_ids, listing_ids)
    agents = {env.agent_id for env, _ in commands if env.agent_id}
    for _, cmd in commands:
        listing = await listings.get(str(cmd.listing_id))
        if isinstance(cmd, OpenNegotiation) and listing is not None:
            agents.add(listing.seller_agent_id)
    await uow.repo(identity.Agents).load_many(sorted(agents))
    # Each opening takes its buyer's "opens" lock (the open-thread cap); held to the end of the
    # batch, they are taken here, all at once in agent order, so two batches cannot cross.
    openers = sorted(
        {env.agent_id for env, cmd in commands if env.agent_id and isinstance(cmd, OpenNegotiation)}
    )
    if openers:
        await uow.conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('opens:' || a))"
            ' FROM (SELECT a FROM unnest($1::text[]) AS a ORDER BY a COLLATE "C") AS sorted',
            openers,
        )
    # The listing locks above serialise every scope (listing) in this batch: seqs can be checked
    # in memory and written at commit, and threads written once at commit.
    await uow.repo(identity.Seqs).load_many(
        sorted({(env.agent_id, str(cmd.listing_id)) for env, cmd in commands if env.agent_id})
    )


async def on_command(uow: UnitOfWork, env: Envelope, cmd: Message) -> None:
    listing_id: str = cmd.listing_id
    thread_id: str | None = getattr(cmd, "thread_id", None)
    agent = await identity.authenticate(uow, env, scope=listing_id)
    if isinstance(agent, identity.AuthFailure):
        await _refuse(
            uow, env, listing_id, thread_id, Refusal(NegotiationRefusal(agent.value), "authentication failed")
        )
        return
    ctx = await _context(uow, env, cmd, agent)
    decision = decide(cmd, ctx)
    if decision.refusal is not None:
        await _refuse(uow, env, listing_id, thread_id, decision.refusal)
        return
    MOVES.labels(env.type).inc()
    await apply_decision(uow, Cause.of(env), decision)


async def apply_decision(uow: UnitOfWork, cause: Cause, decision: Decision) -> None:
    by_id = {t.thread_id: t for t in decision.threads}
    threads = uow.repo(Threads)
    for thread in decision.threads:
        threads.save_in(cause.market_id, thread)
    if decision.listing is not None:
        uow.repo(Listings).save(decision.listing)
    if decision.deal is not None:
        await store.save_deal(uow.conn, decision.deal)
        DEALS.inc()
        ROUNDS.observe(decision.deal.rounds)
    for event in decision.events:
        thread = by_id[str(event.thread_id)]
        _count(event)
        _emit(uow, cause, event, (thread.buyer.agent_id, thread.seller.agent_id), thread.thread_id)


def _count(event: Message) -> None:
    if isinstance(event, ThreadOpened):
        THREADS_OPENED.inc()
    reason = getattr(event, "reason", None)
    if event.type == "NegotiationEnded" and isinstance(reason, EndReason):
        THREADS_ENDED.labels(reason.value).inc()


async def refuse_invalid(uow: UnitOfWork, exc: InvalidPayload) -> None:
    env = exc.envelope
    listing_id = _echoed(env.payload.get("listing_id"))
    await _refuse(
        uow,
        env,
        listing_id or "",
        _echoed(env.payload.get("thread_id")),
        Refusal(NegotiationRefusal.INVALID_PAYLOAD, str(exc)),
    )


def _echoed(value: object) -> str | None:
    """A sender's id echoed in its refusal: text only, no NUL (PostgreSQL text refuses it), bounded."""
    return value.replace("\x00", "\\0")[:128] if isinstance(value, str) else None


# agent.events and market.events ---------------------------------------------


async def on_agent_registered(uow: UnitOfWork, env: Envelope, event: AgentRegistered) -> None:
    outcome = await identity.register(uow.conn, env, event)
    REGISTRATIONS.labels(outcome.value).inc()
    if outcome not in (
        identity.RegistrationOutcome.REGISTERED,
        identity.RegistrationOutcome.ALREADY_REGISTERED,
    ):
        log.warning("registration refused", extra={"agent_id": event.agent_id, "outcome": outcome.value})
        return
    admitted = AgentAdmitted(agent_id=event.agent_id, principal_id=event.principal_id)
    out = wrap(
        admitted,
        market_id=env.market_id,
        producer=PRODUCER,
        causation_id=str(env.event_id),
        agent_id=event.agent_id,
    )
    uow.emit(AGENT_INBOX.name, event.agent_id, out)


async def on_agent_retired(uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
    await identity.retire(uow.conn, env, event.agent_id)


async def on_market_event(
    uow: UnitOfWork, env: Envelope, event: MarketRulesSet | MarketClosing | MarketClosed
) -> None:
    """Only the operator sets rules or closes a market (a forged rule could stretch deadlines);
    the referee calls a market closed only when none of its negotiations is open."""
    await markets.apply(uow, env, event, PRODUCER, unfinished=store.unfinished)


# listing.events: the referee's own view of each listing ----------------------


async def on_listing_published(uow: UnitOfWork, env: Envelope, event: ListingPublished) -> None:
    listings = uow.repo(Listings)
    if await listings.get(event.listing_id) is not None:
        return
    view = ListingView(
        event.listing_id,
        env.market_id,
        event.seller_agent_id,
        event.seller_principal_id,
        ListingState.ACTIVE,
        event.item,
        event.shipping,
    )
    listings.save(view)


async def _set_state(
    uow: UnitOfWork,
    env: Envelope,
    listing_id: str,
    state: ListingState,
    close: EndReason | None = None,
    relist: bool = False,
) -> None:
    listings = uow.repo(Listings)
    view = await listings.get(listing_id)
    if view is None:
        return
    if relist and view.deal_id:
        await store.cancel_deal(uow.conn, view.deal_id)
    deal_id = None if relist else view.deal_id
    epoch = view.epoch + 1 if relist else view.epoch
    listings.save(replace(view, state=state, deal_id=deal_id, epoch=epoch))
    if close is not None:
        await apply_decision(
            uow,
            Cause.of(env),
            close_for_listing(await uow.repo(Threads).open_on(listing_id), close),
        )


async def on_listing_withdrawn(uow: UnitOfWork, env: Envelope, event: ListingWithdrawn) -> None:
    await _set_state(uow, env, event.listing_id, ListingState.WITHDRAWN, close=EndReason.LISTING_WITHDRAWN)


async def on_listing_reserved(uow: UnitOfWork, env: Envelope, event: ListingReserved) -> None:
    await _set_state(uow, env, event.listing_id, ListingState.RESERVED)


async def on_listing_sold(uow: UnitOfWork, env: Envelope, event: ListingSold) -> None:
    await _set_state(uow, env, event.listing_id, ListingState.SOLD)


async def on_listing_relisted(uow: UnitOfWork, env: Envelope, event: ListingRelisted) -> None:
    await _set_state(uow, env, event.listing_id, ListingState.ACTIVE, relist=True)
