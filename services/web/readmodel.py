"""The read models: each event the pages show, written into the web schema, one handler per type.

Every handler also writes a feed row naming whom the change concerns (agent or
principal ids), and wakes the live streams at commit (NOTIFY web_feed).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import orjson

from haggle.contracts import Envelope, Message
from haggle.contracts.agents import AgentRegistered
from haggle.contracts.approval import ApprovalDenied, ApprovalExpired, ApprovalGranted, ApprovalRequested
from haggle.contracts.decisions import MoveDecided
from haggle.contracts.listing import (
    ListingPriceUpdated,
    ListingPublished,
    ListingRelisted,
    ListingReserved,
    ListingSold,
    ListingWithdrawn,
)
from haggle.contracts.market import MarketClosed, MarketClosing, MarketRulesSet
from haggle.contracts.negotiation import (
    ActionRefused,
    DealAgreed,
    MessagePosted,
    NegotiationEnded,
    OfferMade,
    ThreadOpened,
)
from haggle.contracts.settlement import SETTLEMENT_EVENTS
from haggle.contracts.signing import envelope_signature_valid
from haggle.runtime import operators
from haggle.runtime.consumer import Handler
from haggle.runtime.outbox import UnitOfWork
from services.web import commands

FEED_CHANNEL = "web_feed"
PENDING_PER_AGENT = 1_000
"""How many records of one not yet registered agent wait for its registration; later ones are dropped."""
Source = str | Callable[[Envelope, Any], object]
"""Where a column's value comes from: the event's field of that name, or a function of the event."""


def _market(env: Envelope, _: Any) -> object:
    return env.market_id


def _at(env: Envelope, _: Any) -> object:
    return env.occurred_at


@dataclass(frozen=True)
class Row:
    """One read-model row made from one event: written once, a repeat of the event changes nothing."""

    table: str
    key: str
    columns: Mapping[str, Source]

    @functools.cached_property
    def sql(self) -> str:
        names = ", ".join(self.columns)
        places = ", ".join(f"${i}" for i in range(1, len(self.columns) + 1))
        return f"INSERT INTO {self.table} ({names}) VALUES ({places}) ON CONFLICT ({self.key}) DO NOTHING"

    def values(self, env: Envelope, event: Message) -> list[object]:
        found = [
            source(env, event) if callable(source) else getattr(event, source)
            for source in self.columns.values()
        ]
        return [value.value if isinstance(value, Enum) else value for value in found]

    async def insert(self, uow: UnitOfWork, env: Envelope, event: Message) -> None:
        await uow.conn.execute(self.sql, *self.values(env, event))


def _same(*names: str) -> dict[str, Source]:
    return {name: name for name in names}


def _shipping(_: Envelope, event: ListingPublished) -> object:
    return orjson.dumps([s.model_dump(mode="json") for s in event.shipping]).decode()


ROWS: dict[type[Message], Row] = {
    AgentRegistered: Row(
        "agent_principals",
        "agent_id",
        {**_same("agent_id", "principal_id"), "market_id": _market, "public_key": "public_key"},
    ),
    ListingPublished: Row(
        "listings",
        "listing_id",
        {
            **_same("listing_id"),
            "market_id": _market,
            **_same(
                "seller_agent_id", "seller_principal_id", "title", "description", "category", "condition"
            ),
            **_same("price_cents"),
            "shipping": _shipping,
            "status": lambda env, event: "active",
            "created_at": _at,
        },
    ),
    ThreadOpened: Row(
        "threads",
        "thread_id",
        {
            **_same("thread_id", "listing_id"),
            "market_id": _market,
            **_same("buyer_agent_id", "seller_agent_id", "deadline"),
            "opened_at": _at,
        },
    ),
    DealAgreed: Row(
        "deals",
        "deal_id",
        {
            "deal_id": "deal_id",
            "market_id": _market,
            **_same("listing_id", "thread_id", "buyer_agent_id", "buyer_principal_id", "seller_agent_id"),
            **_same(
                "seller_principal_id",
                "price_cents",
                "shipping_method",
                "shipping_cost_cents",
                "shipping_paid_by",
            ),
            "agreed_at": _at,
        },
    ),
    ApprovalRequested: Row(
        "approvals",
        "approval_id",
        {
            **_same("approval_id", "deal_id"),
            "market_id": _market,
            **_same("principal_id", "listing_id", "amount_cents", "expires_at"),
            "requested_at": _at,
        },
    ),
}
"""The events that each make one row, and how (one table-driven insert serves them all)."""


async def feed(uow: UnitOfWork, env: Envelope, kind: str, ref_id: str, *audience: str) -> None:
    await uow.conn.execute(
        "INSERT INTO feed (market_id, kind, ref_id, audience) VALUES ($1, $2, $3, $4)",
        env.market_id,
        kind,
        ref_id,
        [a for a in audience if a],
    )
    uow.wake.add(FEED_CHANNEL)


async def on_move_decided(uow: UnitOfWork, env: Envelope, event: MoveDecided) -> None:
    """What the guard stopped, for the principal whose agent it is: reason codes only, and only
    when the record checks out against the key that agent registered (a forged one is dropped).
    A record for an agent not registered here yet waits for its registration (`_pending_decisions`)."""
    if not event.guard_refusals or env.agent_id is None:
        return
    owner = await _owner(uow, env.agent_id)
    if owner is None:
        await _agent_lock(uow, env.agent_id)  # then a registration is either seen or sees this row
        owner = await _owner(uow, env.agent_id)
    if owner is None:
        await uow.conn.execute(
            "INSERT INTO pending_decisions (event_id, agent_id, envelope) SELECT $1, $2, $3"
            " WHERE (SELECT count(*) FROM pending_decisions WHERE agent_id = $2) < $4"
            " ON CONFLICT (event_id) DO NOTHING",
            env.event_id,
            env.agent_id,
            env.model_dump_json(),
            PENDING_PER_AGENT,
        )
        return
    await _guard_refusals(uow, env, event, owner["principal_id"], owner["public_key"])


async def _owner(uow: UnitOfWork, agent_id: str) -> Any:
    return await uow.conn.fetchrow(
        "SELECT principal_id, public_key FROM agent_principals WHERE agent_id = $1", agent_id
    )


async def _agent_lock(uow: UnitOfWork, agent_id: str) -> None:
    """A registration and an early record of the same agent take turns (both are read-model
    transactions on separate topics): else each could miss the other and the record wait forever."""
    await uow.conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"web-agent:{agent_id}")


async def _guard_refusals(
    uow: UnitOfWork, env: Envelope, event: MoveDecided, principal_id: str, public_key: str | None
) -> None:
    if public_key is None or not envelope_signature_valid(env, public_key):
        return
    await uow.conn.executemany(
        "INSERT INTO guard_refusals (event_id, market_id, principal_id, listing_id, thread_id, position,"
        " reason, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id, position) DO NOTHING",
        [
            (
                env.event_id,
                env.market_id,
                principal_id,
                event.listing_id,
                event.thread_id,
                i,
                reason[:64],
                env.occurred_at,
            )
            for i, reason in enumerate(event.guard_refusals)
        ],
    )
    await feed(uow, env, "guard", event.listing_id, principal_id)


async def _pending_decisions(uow: UnitOfWork, agent_id: str) -> None:
    """The agent's records that came before its registration, checked now against the key it
    registered first (the one this read model keeps); each is shown or dropped, never kept."""
    owner = await _owner(uow, agent_id)
    waiting = await uow.conn.fetch(
        "DELETE FROM pending_decisions WHERE agent_id = $1 RETURNING envelope", agent_id
    )
    for row in waiting:
        env = Envelope.model_validate_json(row["envelope"])
        event = MoveDecided.model_validate(env.payload)
        await _guard_refusals(uow, env, event, owner["principal_id"], owner["public_key"])


# agents and markets ------------------------------------------------------------------


async def on_agent_registered(uow: UnitOfWork, env: Envelope, event: AgentRegistered) -> None:
    await _agent_lock(uow, event.agent_id)
    await ROWS[AgentRegistered].insert(uow, env, event)
    await feed(uow, env, "agent", event.agent_id, event.principal_id)
    await _pending_decisions(uow, event.agent_id)


async def _market_phase(uow: UnitOfWork, env: Envelope, phase: str | None, rules: Message | None) -> None:
    await uow.conn.execute(
        "INSERT INTO markets (market_id, phase, rules) VALUES ($1, coalesce($2, 'open'), $3)"
        " ON CONFLICT (market_id) DO UPDATE SET"
        "   phase = CASE WHEN $2::text IS NULL THEN markets.phase"
        "                WHEN markets.phase = 'closed' THEN 'closed' ELSE $2 END,"
        "   rules = coalesce($3, markets.rules), updated_at = now()",
        env.market_id,
        phase,
        rules.model_dump_json() if rules else None,
    )
    await feed(uow, env, "market", env.market_id)


async def on_rules(uow: UnitOfWork, env: Envelope, event: MarketRulesSet) -> None:
    await _market_phase(uow, env, None, event)


async def on_closing(uow: UnitOfWork, env: Envelope, event: MarketClosing) -> None:
    await _market_phase(uow, env, "closing", None)


async def on_closed(uow: UnitOfWork, env: Envelope, event: MarketClosed) -> None:
    await _market_phase(uow, env, "closed", None)


# listings ----------------------------------------------------------------------------


async def on_listing_published(uow: UnitOfWork, env: Envelope, event: ListingPublished) -> None:
    await ROWS[ListingPublished].insert(uow, env, event)
    await feed(uow, env, "listing", event.listing_id, event.seller_principal_id)


async def _listing_status(uow: UnitOfWork, env: Envelope, listing_id: str, status: str) -> None:
    seller = await uow.conn.fetchval(
        "UPDATE listings SET status = $2, updated_at = now() WHERE listing_id = $1"
        " RETURNING seller_principal_id",
        listing_id,
        status,
    )
    await feed(uow, env, "listing", listing_id, seller or "")


async def on_listing_price(uow: UnitOfWork, env: Envelope, event: ListingPriceUpdated) -> None:
    await uow.conn.execute(
        "UPDATE listings SET price_cents = $2, updated_at = now() WHERE listing_id = $1",
        event.listing_id,
        event.price_cents,
    )
    await feed(uow, env, "listing", event.listing_id)


async def on_listing_withdrawn(uow: UnitOfWork, env: Envelope, event: ListingWithdrawn) -> None:
    await _listing_status(uow, env, event.listing_id, "withdrawn")


async def on_listing_reserved(uow: UnitOfWork, env: Envelope, event: ListingReserved) -> None:
    await _listing_status(uow, env, event.listing_id, "reserved")


async def on_listing_sold(uow: UnitOfWork, env: Envelope, event: ListingSold) -> None:
    await _listing_status(uow, env, event.listing_id, "sold")


async def on_listing_relisted(uow: UnitOfWork, env: Envelope, event: ListingRelisted) -> None:
    await _listing_status(uow, env, event.listing_id, "active")


# negotiations ------------------------------------------------------------------------


async def on_thread_opened(uow: UnitOfWork, env: Envelope, event: ThreadOpened) -> None:
    await ROWS[ThreadOpened].insert(uow, env, event)
    await feed(uow, env, "thread", event.thread_id, event.buyer_agent_id, event.seller_agent_id)


_THREAD_ITEM = (
    "WITH item AS (INSERT INTO thread_items (thread_id, kind, by_party, round, price_cents, text, at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7))"
    " INSERT INTO feed (market_id, kind, ref_id, audience)"
    " SELECT $8, 'thread', $1, coalesce((SELECT array_remove(ARRAY[buyer_agent_id, seller_agent_id], '')"
    " FROM threads WHERE thread_id = $1), '{}')"
)
"""A thread's item and its line in the feed, for the thread's two parties (for no one if the
thread is not known here)."""


async def _thread_item(
    uow: UnitOfWork,
    env: Envelope,
    thread_id: str,
    kind: str,
    by: str | None,
    text: str,
    price_cents: int | None = None,
    round_: int | None = None,
) -> None:
    """A thread's item, and its line in the feed for both parties: one statement."""
    await uow.conn.execute(
        _THREAD_ITEM, thread_id, kind, by, round_, price_cents, text, env.occurred_at, env.market_id
    )
    uow.wake.add(FEED_CHANNEL)


async def on_offer(uow: UnitOfWork, env: Envelope, event: OfferMade) -> None:
    await uow.conn.execute(
        "UPDATE threads SET rounds = greatest(rounds, $2), last_price_cents = $3, updated_at = now()"
        " WHERE thread_id = $1",
        event.thread_id,
        event.round,
        event.price_cents,
    )
    await _thread_item(
        uow, env, event.thread_id, "offer", event.by.value, event.message, event.price_cents, event.round
    )


async def on_message(uow: UnitOfWork, env: Envelope, event: MessagePosted) -> None:
    await _thread_item(uow, env, event.thread_id, "message", event.by.value, event.text)


async def on_ended(uow: UnitOfWork, env: Envelope, event: NegotiationEnded) -> None:
    await uow.conn.execute(
        "UPDATE threads SET status = 'ended', end_reason = $2, rounds = greatest(rounds, $3),"
        " updated_at = now() WHERE thread_id = $1",
        event.thread_id,
        event.reason.value,
        event.rounds,
    )
    by = event.by.value if event.by else None
    await _thread_item(uow, env, event.thread_id, "ended", by, event.reason.value)


async def on_refused(uow: UnitOfWork, env: Envelope, event: ActionRefused) -> None:
    await uow.conn.execute(
        "INSERT INTO refusals (market_id, agent_id, thread_id, listing_id, reason, at)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        env.market_id,
        event.agent_id,
        event.thread_id,
        event.listing_id,
        event.reason.value,
        env.occurred_at,
    )
    await feed(uow, env, "refusal", event.listing_id, event.agent_id or "")


# deals -------------------------------------------------------------------------------


async def on_deal_agreed(uow: UnitOfWork, env: Envelope, event: DealAgreed) -> None:
    await ROWS[DealAgreed].insert(uow, env, event)
    await commands.send_ship_to(uow, env.market_id, event.deal_id, event.buyer_principal_id)
    await feed(uow, env, "deal", event.deal_id, event.buyer_principal_id, event.seller_principal_id)


async def on_settlement_event(uow: UnitOfWork, env: Envelope, event: Message) -> None:
    deal_id = getattr(event, "deal_id", None)
    if deal_id is None:
        return  # WalletFunded: a principal's wallet, no deal to show it on
    await _deal_event(uow, env, deal_id, event)


async def _deal_event(uow: UnitOfWork, env: Envelope, deal_id: str, event: Message) -> None:
    """One step on a deal's timeline (settlement's events and the approval's)."""
    await uow.conn.execute(
        "INSERT INTO deal_events (deal_id, event_id, type, payload, at) VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (event_id) DO NOTHING",
        deal_id,
        env.event_id,
        event.type,
        event.model_dump_json(),
        env.occurred_at,
    )
    parties = await uow.conn.fetchrow(
        "SELECT buyer_principal_id, seller_principal_id FROM deals WHERE deal_id = $1", deal_id
    )
    audience = (parties["buyer_principal_id"], parties["seller_principal_id"]) if parties else ()
    await feed(uow, env, "deal", deal_id, *audience)


# approvals ---------------------------------------------------------------------------


async def on_approval_requested(uow: UnitOfWork, env: Envelope, event: ApprovalRequested) -> None:
    await ROWS[ApprovalRequested].insert(uow, env, event)
    await _deal_event(uow, env, event.deal_id, event)
    await feed(uow, env, "approval", event.approval_id, event.principal_id)


async def _answered(
    uow: UnitOfWork,
    env: Envelope,
    event: ApprovalGranted | ApprovalDenied | ApprovalExpired,
    status: str,
    by: str | None,
) -> None:
    """The first operator-signed answer counts, as for settlement; a late or forged one changes nothing."""
    if by is not None and not operators.is_operator(env):
        return
    approval_id, principal_id = event.approval_id, event.principal_id
    await _deal_event(uow, env, event.deal_id, event)
    await uow.conn.execute(
        "UPDATE approvals SET status = $2, answered_by = $3, answered_at = $4"
        " WHERE approval_id = $1 AND principal_id = $5 AND status = 'waiting'",
        approval_id,
        status,
        by,
        env.occurred_at,
        principal_id,
    )
    await feed(uow, env, "approval", approval_id, principal_id)


async def on_approval_granted(uow: UnitOfWork, env: Envelope, event: ApprovalGranted) -> None:
    await _answered(uow, env, event, "granted", event.granted_by)


async def on_approval_denied(uow: UnitOfWork, env: Envelope, event: ApprovalDenied) -> None:
    await _answered(uow, env, event, "denied", event.denied_by)


async def on_approval_expired(uow: UnitOfWork, env: Envelope, event: ApprovalExpired) -> None:
    await _answered(uow, env, event, "expired", None)


AGENT_HANDLERS: dict[type[Message], Handler] = {AgentRegistered: on_agent_registered}
DECISION_HANDLERS: dict[type[Message], Handler] = {MoveDecided: on_move_decided}
MARKET_HANDLERS: dict[type[Message], Handler] = {
    MarketRulesSet: on_rules,
    MarketClosing: on_closing,
    MarketClosed: on_closed,
}
LISTING_HANDLERS: dict[type[Message], Handler] = {
    ListingPublished: on_listing_published,
    ListingPriceUpdated: on_listing_price,
    ListingWithdrawn: on_listing_withdrawn,
    ListingReserved: on_listing_reserved,
    ListingSold: on_listing_sold,
    ListingRelisted: on_listing_relisted,
}
NEGOTIATION_HANDLERS: dict[type[Message], Handler] = {
    ThreadOpened: on_thread_opened,
    OfferMade: on_offer,
    MessagePosted: on_message,
    NegotiationEnded: on_ended,
    ActionRefused: on_refused,
    DealAgreed: on_deal_agreed,
}
SETTLEMENT_HANDLERS: dict[type[Message], Handler] = dict.fromkeys(SETTLEMENT_EVENTS, on_settlement_event)
APPROVAL_HANDLERS: dict[type[Message], Handler] = {
    ApprovalRequested: on_approval_requested,
    ApprovalGranted: on_approval_granted,
    ApprovalDenied: on_approval_denied,
    ApprovalExpired: on_approval_expired,
}
