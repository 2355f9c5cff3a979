"""Listing handlers: load → decide → save + outbox. One function per message type."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from prometheus_client import Counter

from haggle.contracts import Envelope, InvalidPayload, Message, wrap
from haggle.contracts.agents import AgentRegistered, AgentRetired
from haggle.contracts.listing import (
    CreateListing,
    ListingCommandRefused,
    ListingRefusal,
    ListingStatus,
    UpdateListingPrice,
    WithdrawListing,
)
from haggle.contracts.negotiation import DealAgreed
from haggle.contracts.settlement import EscrowFailed, FundsReleased, Refunded
from haggle.contracts.topics import LISTING_EVENTS_TOPIC
from haggle.runtime import identity, operators
from haggle.runtime.outbox import UnitOfWork
from services.listing import domain, store
from services.listing.domain import Listing, Refusal

log = logging.getLogger(__name__)
ListingCommand = CreateListing | UpdateListingPrice | WithdrawListing
PRODUCER = "listing"

LISTINGS_PUBLISHED = Counter("haggle_listings_published_total", "Listings published")
LISTING_REFUSALS = Counter("haggle_listing_refusals_total", "Listing commands refused", ["reason"])
LISTING_TRANSITIONS = Counter("haggle_listing_transitions_total", "Listing status changes", ["event"])
LISTING_CONFLICTS = Counter(
    "haggle_listing_conflicts_total", "Upstream events that did not fit the listing's state", ["event"]
)


async def _commit(uow: UnitOfWork, env: Envelope, listing: Listing | None, events: list[Message]) -> None:
    if listing is not None:
        await store.save(uow.conn, listing, env.market_id)
    for event in events:
        LISTING_TRANSITIONS.labels(event.type).inc()
        out = wrap(
            event,
            market_id=env.market_id,
            producer=PRODUCER,
            correlation_id=env.correlation_id,
            causation_id=str(env.event_id),
        )
        uow.emit(LISTING_EVENTS_TOPIC.name, event.listing_id, out)


def _printable(text: str, limit: int) -> str:
    """Text from a refused command, safe to store: PostgreSQL text cannot hold NUL."""
    return text.replace("\x00", "\\0")[:limit]


async def _refuse(uow: UnitOfWork, env: Envelope, raw_listing_id: str, refusal: Refusal) -> None:
    LISTING_REFUSALS.labels(refusal.reason.value).inc()
    listing_id, detail = _printable(raw_listing_id, 128), _printable(refusal.detail, 1000)
    await store.record_refusal(uow.conn, listing_id, env.event_id, refusal.reason.value, detail)
    event = ListingCommandRefused(
        listing_id=listing_id,
        command_type=_printable(env.type, 64),
        command_event_id=str(env.event_id),
        reason=refusal.reason,
        detail=detail,
    )
    out = wrap(
        event,
        market_id=env.market_id,
        producer=PRODUCER,
        correlation_id=env.correlation_id,
        causation_id=str(env.event_id),
    )
    uow.emit(LISTING_EVENTS_TOPIC.name, listing_id or "unknown", out)


async def authorise(uow: UnitOfWork, env: Envelope, cmd: ListingCommand) -> Refusal | None:
    """A listing command is signed by the seller agent it names (fresh seq per listing), or by an
    operator. Naming someone else's agent id is not enough to touch their listing."""
    if operators.is_operator(env):
        return None
    listing_id = str(cmd.listing_id)
    agent = await identity.authenticate(uow, env, scope=listing_id)
    if isinstance(agent, identity.AuthFailure):
        return Refusal(ListingRefusal(agent.value), "the command is not signed by a known agent")
    if agent.agent_id != cmd.seller_agent_id:
        return Refusal(ListingRefusal.NOT_OWNER, f"signed by {agent.agent_id}, not the seller agent it names")
    if isinstance(cmd, CreateListing) and agent.principal_id != cmd.seller_principal_id:
        return Refusal(ListingRefusal.NOT_OWNER, "the seller principal is not the signing agent's principal")
    return None


CommandDecision = Callable[[Listing | None], tuple[Listing | None, Sequence[Message], Refusal | None]]


async def _command(uow: UnitOfWork, env: Envelope, cmd: ListingCommand, decide: CommandDecision) -> int:
    """A seller's command: authorise, load, decide, then save or refuse. The events published."""
    listing_id = cmd.listing_id
    if refusal := await authorise(uow, env, cmd):
        await _refuse(uow, env, listing_id, refusal)
        return 0
    listing, events, refusal = decide(await store.load(uow.conn, listing_id))
    if refusal:
        await _refuse(uow, env, listing_id, refusal)
        return 0
    await _commit(uow, env, listing, list(events))
    return len(events)


async def create_listing(uow: UnitOfWork, env: Envelope, cmd: CreateListing) -> None:
    LISTINGS_PUBLISHED.inc(await _command(uow, env, cmd, lambda existing: domain.create(existing, cmd)))


async def update_price(uow: UnitOfWork, env: Envelope, cmd: UpdateListingPrice) -> None:
    await _command(
        uow, env, cmd, lambda existing: domain.update_price(existing, cmd.seller_agent_id, cmd.price_cents)
    )


async def withdraw_listing(uow: UnitOfWork, env: Envelope, cmd: WithdrawListing) -> None:
    await _command(uow, env, cmd, lambda existing: domain.withdraw(existing, cmd.seller_agent_id))


def _failing_fields(exc: InvalidPayload) -> list[tuple[str | int, ...]]:
    if isinstance(exc.error, str):
        return []
    return [tuple(error["loc"]) for error in exc.error.errors()]


async def refuse_invalid(uow: UnitOfWork, exc: InvalidPayload) -> None:
    """A sound envelope with a bad payload: refuse it to its sender with the closest reason."""
    reason = domain.invalid_payload_reason(_failing_fields(exc))
    raw_id = exc.envelope.payload.get("listing_id")
    listing_id = raw_id if isinstance(raw_id, str) else ""
    await _refuse(uow, exc.envelope, listing_id, Refusal(reason, str(exc)))


Decision = Callable[[Listing | None], tuple[Listing | None, Sequence[Message]]]


async def _react(uow: UnitOfWork, env: Envelope, listing_id: str, decide: Decision) -> bool:
    existing = await store.load(uow.conn, listing_id)
    listing, events = decide(existing)
    if listing is None:
        LISTING_CONFLICTS.labels(env.type).inc()
        log.warning("event does not fit listing state", extra={"listing_id": listing_id, "event": env.type})
        return False
    await _commit(uow, env, listing, list(events))
    return True


def _settled(deal_id: str, event_type: str, reason: str) -> Decision:
    """What a settlement outcome does to the listing reserved for its deal."""
    if event_type == "FundsReleased":
        return lambda current: domain.sell(current, deal_id)
    if event_type == "EscrowFailed":
        return lambda current: domain.relist(current, deal_id, reason)
    return lambda current: domain.close_after_refund(current, deal_id, reason)


async def on_deal_agreed(uow: UnitOfWork, env: Envelope, event: DealAgreed) -> None:
    reserved = await _react(
        uow, env, event.listing_id, lambda current: domain.reserve(current, event.deal_id)
    )
    early = await store.take_early_outcome(uow.conn, event.deal_id, event.listing_id)
    if reserved and early is not None:
        await _react(uow, env, event.listing_id, _settled(event.deal_id, *early))


async def _on_outcome(uow: UnitOfWork, env: Envelope, deal_id: str, listing_id: str, reason: str) -> None:
    if await _react(uow, env, listing_id, _settled(deal_id, env.type, reason)):
        return
    current = await store.load(uow.conn, listing_id)
    if current is not None and current.status is ListingStatus.ACTIVE:
        # Its deal may still be on the way: keep the outcome for when it comes.
        await store.keep_early_outcome(uow.conn, deal_id, listing_id, env.type, reason)


async def on_funds_released(uow: UnitOfWork, env: Envelope, event: FundsReleased) -> None:
    await _on_outcome(uow, env, event.deal_id, event.listing_id, "")


async def on_escrow_failed(uow: UnitOfWork, env: Envelope, event: EscrowFailed) -> None:
    await _on_outcome(uow, env, event.deal_id, event.listing_id, event.reason)


async def on_refunded(uow: UnitOfWork, env: Envelope, event: Refunded) -> None:
    await _on_outcome(uow, env, event.deal_id, event.listing_id, event.reason)


async def on_agent_registered(uow: UnitOfWork, env: Envelope, event: AgentRegistered) -> None:
    await identity.register(uow.conn, env, event)


async def on_agent_retired(uow: UnitOfWork, env: Envelope, event: AgentRetired) -> None:
    await identity.retire(uow.conn, env, event.agent_id)
