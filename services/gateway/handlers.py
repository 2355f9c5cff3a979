"""The gateway's event handlers: mandates for external agents, their inboxes, the listings."""

from __future__ import annotations

import logging
import uuid

from haggle.contracts import AgentKey, Envelope, Message, signed
from haggle.contracts.agents import AgentRegistered, Role
from haggle.contracts.decisions import mandate_digest
from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.negotiation import ActionRefused, DealAgreed, EndReason, NegotiationEnded, ThreadOpened
from haggle.contracts.topics import AGENT_EVENTS
from haggle.runtime import identity, operators
from haggle.runtime.outbox import UnitOfWork
from services.gateway import store

log = logging.getLogger(__name__)
PRODUCER = "gateway"


def agent_id_for(principal_id: str) -> str:
    return f"{principal_id}.agent"


async def send(
    uow: UnitOfWork,
    principal: store.Principal,
    payload: Message,
    topic: str,
    key: str,
    event_id: uuid.UUID | None = None,
) -> Envelope:
    """Sign for the external agent with the key the gateway keeps for it, and queue it."""
    assert principal.key is not None, "a self-signing agent's commands are forwarded, never signed here"
    seq = await identity.take_seq(uow.conn, principal.agent_id, by="agent_id")
    env = signed(
        payload,
        key=principal.key,
        agent_id=principal.agent_id,
        seq=seq,
        market_id=principal.market_id,
        producer=PRODUCER,
    )
    if event_id is not None:  # the event id is not signed: it names the request that made it
        env = env.model_copy(update={"event_id": event_id})
    uow.emit(topic, key, env)
    return env


async def on_assign_mandate(uow: UnitOfWork, env: Envelope, cmd: AssignMandate) -> None:
    """An operator-signed mandate whose brain is external: keep a key for its agent and register it."""
    mandate = cmd.mandate
    if mandate.brain.kind != "external":
        return
    if not operators.is_operator(env):
        log.warning("mandate not signed by an operator", extra={"principal_id": mandate.principal_id})
        return
    signs_itself = getattr(mandate.brain, "public_key", None) is not None
    key = None if signs_itself else AgentKey.generate()
    agent_id = agent_id_for(mandate.principal_id)
    digest = mandate_digest(mandate)
    if not await store.insert_principal(uow.conn, env.market_id, mandate, digest, agent_id, key):
        return
    principal = await store.by_agent(uow.conn, agent_id)
    assert principal is not None
    if signs_itself:
        return  # it registers itself: POST /v1/signed with its self-signed AgentRegistered
    registration = AgentRegistered(
        agent_id=agent_id,
        principal_id=mandate.principal_id,
        owner_id=mandate.owner_id,
        role=role_of(mandate),
        public_key=principal.public_key,
    )
    await send(uow, principal, registration, AGENT_EVENTS.name, agent_id)


async def on_admitted(uow: UnitOfWork, env: Envelope, event: Message) -> None:
    await store.set_admitted(uow.conn, str(env.agent_id))


def role_of(mandate: Mandate) -> Role:
    if mandate.items and mandate.wants:
        return Role.BOTH
    return Role.SELLER if mandate.items else Role.BUYER


async def on_thread_event(uow: UnitOfWork, env: Envelope, event: Message) -> None:
    agent_id, listing_id = str(env.agent_id), str(event.listing_id)  # type: ignore[attr-defined]
    thread_id: str = event.thread_id  # type: ignore[attr-defined]
    await store.changed(uow.conn, agent_id)
    if isinstance(event, ThreadOpened) and event.seller_agent_id == agent_id:
        await store.open_selling(uow.conn, agent_id, listing_id, thread_id)
        sells = True
    else:
        sells = await store.selling(uow.conn, agent_id, thread_id)
    entry = {"type": env.type, "payload": env.payload, "at": env.occurred_at.isoformat()}
    neg = store.neg_id(listing_id, thread_id, sells)
    await store.add_thread_event(uow.conn, agent_id, neg, entry, thread_id)
    if isinstance(event, NegotiationEnded) and event.reason is not EndReason.DEAL and not sells:
        await store.release_hold(uow.conn, agent_id, listing_id)


async def on_deal_agreed(uow: UnitOfWork, env: Envelope, event: DealAgreed) -> None:
    agent_id = str(env.agent_id)
    if agent_id == event.seller_agent_id:
        await store.changed(uow.conn, agent_id)
        net = event.seller_net_cents
        await store.add_deal(uow.conn, agent_id, event.deal_id, event.listing_id, net, env.payload, "seller")
        return
    if event.buyer_agent_id != agent_id:
        return
    total = event.buyer_total_cents
    await store.changed(uow.conn, agent_id)
    if await store.add_deal(uow.conn, agent_id, event.deal_id, event.listing_id, total, env.payload):
        await store.commit_hold(uow.conn, agent_id, event.listing_id, total)


async def on_refused(uow: UnitOfWork, env: Envelope, event: ActionRefused) -> None:
    refusal = {"reason": event.reason.value, "detail": event.detail, "command": event.command_type}
    agent_id = str(env.agent_id)
    await store.changed(uow.conn, agent_id)
    sells = await store.selling(uow.conn, agent_id, event.thread_id)
    await store.note_refusal(
        uow.conn, agent_id, store.neg_id(event.listing_id, event.thread_id, sells), refusal
    )
    if event.command_type == "OpenNegotiation" and event.thread_id is None:
        await store.release_hold(uow.conn, str(env.agent_id), event.listing_id, opening=True)


async def on_deal_step(uow: UnitOfWork, env: Envelope, event: Message) -> None:
    """Settlement told the buyer: a failed or refunded deal gives its money back to the budget."""
    status = {
        "EscrowFunded": "funded",
        "FundsReleased": "released",
        "EscrowFailed": "failed",
        "Refunded": "refunded",
    }
    deal_id = str(event.deal_id)  # type: ignore[attr-defined]
    agent_id = await store.deal_agent(uow.conn, deal_id)
    if agent_id is None:
        return  # not a deal of an agent of ours
    await store.changed(uow.conn, agent_id)
    row = await store.set_deal_status(uow.conn, deal_id, status[env.type])
    if row is not None and row["role"] == "buyer" and env.type in ("EscrowFailed", "Refunded"):
        await store.add_committed(uow.conn, row["agent_id"], -int(row["total_cents"]))


async def on_listing_published(uow: UnitOfWork, env: Envelope, event: ListingPublished) -> None:
    await store.save_listing(uow.conn, env.market_id, event)


async def on_listing_status(uow: UnitOfWork, env: Envelope, event: Message) -> None:
    status = {"ListingWithdrawn": "withdrawn", "ListingReserved": "reserved", "ListingSold": "sold"}
    await store.set_listing_status(uow.conn, str(event.listing_id), status.get(env.type, "active"))  # type: ignore[attr-defined]


async def ignore(*_: object) -> None:
    """Seen and deliberately not acted on."""
