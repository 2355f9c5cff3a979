"""What an external agent can do, once for both faces (HTTP and MCP): authenticate, then act.

Every mutating call: authenticate (API key → principal), take a request token (per key), then
in one transaction lock the principal, load what the guard needs, check the move with the
same guard as our own agents, refuse a request id seen before, sign the command with the
agent's key and queue it with its decision record. A refusal changes nothing: the transaction
rolls back (no command, no seq, no request id used, the move token given back).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from prometheus_client import Counter
from pydantic import ValidationError

from haggle.contracts import Envelope, InvalidPayload, envelope_signature_valid, payload_of
from haggle.contracts.agents import AgentRegistered
from haggle.contracts.decisions import decision_for
from haggle.contracts.listing import CreateListing
from haggle.contracts.topics import (
    AGENT_DECISIONS,
    AGENT_EVENTS,
    LISTING_COMMANDS_TOPIC,
    NEGOTIATION_COMMANDS,
)
from haggle.guard import commands as guard_commands
from haggle.guard.commands import move_of
from haggle.guard.moves import Accept, Move, Reject, Say
from haggle.guard.rules import GuardRefusalReason, check
from haggle.runtime.outbox import UnitOfWork, unit_of_work
from haggle.runtime.settings import Settings
from services.gateway import domain, store
from services.gateway.domain import GatewayRefusal, Refused, Standing
from services.gateway.handlers import PRODUCER, send
from services.gateway.limits import Bucket
from services.gateway.waiting import Waiters

log = logging.getLogger(__name__)
REFUSALS = Counter("haggle_gateway_refusals_total", "Requests the agent gateway refused", ["reason"])
MOVES = Counter("haggle_gateway_moves_total", "Moves external agents made through the gateway", ["type"])
# Every known series from zero at start-up, so a dashboard's rate() has data (0) before the first
# outside agent moves, and a first refusal shows as an increase rather than a new series.
for _reason in GatewayRefusal:
    if _reason is not GatewayRefusal.GUARD:  # the guard's refusals travel as guard:<reason>
        REFUSALS.labels(_reason.value)
for _type in [*(c.__name__ for c in guard_commands.NEGOTIATION_COMMANDS), CreateListing.__name__]:
    MOVES.labels(_type)  # a message's type is its class name

ANONYMOUS = "(no key)"


class _Deferred:
    """The guard's limiter for a move: the guard's other rules decide first, and whether the move
    costs a token (leaving never does); the token itself is then taken from the shared bucket."""

    def __init__(self) -> None:
        self.asked = False

    def allow(self, key: str) -> bool:
        self.asked = True
        return True


@dataclass
class Gateway:
    pool: asyncpg.Pool
    notify_channel: str
    requests: Bucket
    moves: Bucket
    waiters: Waiters

    @classmethod
    def build(cls, pool: asyncpg.Pool, notify_channel: str, settings: Settings) -> Gateway:
        """HAGGLE_GATEWAY_{REQUESTS,MOVES}_{PER_SECOND,BURST} set the shared buckets."""
        requests = Bucket("requests", settings.gateway_requests_per_second, settings.gateway_requests_burst)
        moves = Bucket("moves", settings.gateway_moves_per_second, settings.gateway_moves_burst)
        return cls(pool, notify_channel, requests, moves, Waiters(pool))

    async def authenticate(self, api_key: str | None) -> store.Principal:
        """The principal whose agent holds this key; every call, even a read, takes a token (one shared
        bucket for all keys nobody holds)."""
        digest = domain.key_digest(api_key) if api_key else ANONYMOUS
        principal = await store.by_api_key(self.pool, digest) if api_key else None
        # Unknown keys share one bucket: guessing keys is slowed, and leaves no row per guess.
        if not await self.requests.take(self.pool, digest if principal else ANONYMOUS):
            raise self._refused(GatewayRefusal.RATE_LIMITED, "too many requests for this key")
        if principal is None:
            raise self._refused(GatewayRefusal.UNAUTHORIZED, "unknown API key")
        return principal

    def _refused(self, reason: GatewayRefusal, detail: str) -> Refused:
        REFUSALS.labels(reason.value).inc()
        return Refused(reason, detail)

    # reads ------------------------------------------------------------------

    async def search(self, who: store.Principal, text: str | None = None, limit: int = 20) -> dict[str, Any]:
        listings = await store.search(self.pool, who.market_id, text, max(1, min(limit, 100)))
        return {"count": len(listings), "listings": listings}

    async def my_negotiations(self, who: store.Principal) -> dict[str, Any]:
        """Every negotiation of the agent, and the cursor to wait after (read first: never ahead)."""
        cursor = await store.cursor_of(self.pool, who.agent_id)
        rows = await store.negotiations(self.pool, who.agent_id)
        return {"cursor": cursor, "negotiations": await self._summaries(who, rows)}

    async def my_deals(self, who: store.Principal) -> dict[str, Any]:
        rows = await store.deals(self.pool, who.agent_id)
        return {"deals": [_deal(r) for r in rows]}

    async def wait_for_changes(
        self, who: store.Principal, after: int = 0, timeout: float = 20.0
    ) -> dict[str, Any]:
        """What changed in the agent's negotiations and deals after `after`, as soon as anything has."""
        found = await self.waiters.wait(who.agent_id, after, timeout)
        return {
            "cursor": found.cursor,
            "changed": bool(found.negotiations or found.deals),
            "negotiations": await self._summaries(who, found.negotiations),
            "deals": [_deal(r) for r in found.deals],
        }

    async def _summaries(self, who: store.Principal, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
        found = []
        async with self.pool.acquire() as conn:
            for row in rows:
                standing = await _standing(conn, who, row)
                summary = domain.summary(standing.view(), row["status"], row["listing_id"])
                summary["last_refusal"] = row["last_refusal"] and _json(row["last_refusal"])
                found.append(summary)
        return found

    # moves ------------------------------------------------------------------

    async def open(self, who: store.Principal, req: domain.OpenRequest) -> dict[str, Any]:
        decide = self._opening(req.listing_id, req.want_id, domain.open_move(req))
        return await self._act(who, self._once(req.request_id), decide, self._sign)

    async def counter(self, who: store.Principal, req: domain.CounterRequest) -> dict[str, Any]:
        return await self._on_thread(who, req.request_id, req.thread_id, domain.counter_move(req))

    async def accept(self, who: store.Principal, req: domain.AnswerRequest) -> dict[str, Any]:
        return await self._on_thread(who, req.request_id, req.thread_id, Accept(req.offer_id))

    async def reject(self, who: store.Principal, req: domain.AnswerRequest) -> dict[str, Any]:
        return await self._on_thread(who, req.request_id, req.thread_id, Reject(req.offer_id, req.message))

    async def say(self, who: store.Principal, req: domain.SayRequest) -> dict[str, Any]:
        return await self._on_thread(who, req.request_id, req.thread_id, Say(req.text))

    async def list_item(self, who: store.Principal, req: domain.ListRequest) -> dict[str, Any]:
        """List one of the mandate's items (signed with the agent's key, like our agents' listings)."""

        def listing(principal: store.Principal) -> CreateListing:
            mandate, agent_id = principal.mandate, principal.agent_id
            return domain.listing_for(mandate, agent_id, req.item_id, req.asking_price_cents)

        async def sign(uow: UnitOfWork, principal: store.Principal, command: CreateListing) -> Envelope:
            return await send(uow, principal, command, LISTING_COMMANDS_TOPIC.name, command.listing_id)

        return await self._list(who, self._once(req.request_id), listing, sign)

    async def _list(
        self,
        who: store.Principal,
        claim: Claim,
        listing: Callable[[store.Principal], CreateListing],
        publish: Callable[[UnitOfWork, store.Principal, CreateListing], Awaitable[Envelope]],
    ) -> dict[str, Any]:
        """A listing of one of the mandate's items, unless it is listed already."""
        try:
            async with unit_of_work(self.pool, self.notify_channel) as uow:
                principal = await self._locked(uow, who)
                await claim(uow, principal)
                command = listing(principal)
                found = await store.listing(uow.conn, principal.market_id, command.listing_id)
                if found is not None and found[1] != "withdrawn":
                    raise Refused(GatewayRefusal.ALREADY_LISTED, f"{command.listing_id} is listed")
                env = await publish(uow, principal, command)
        except Refused as refused:
            REFUSALS.labels(refused.code).inc()
            raise
        MOVES.labels(env.type).inc()
        return {"accepted": True, "command": env.type, "listing_id": command.listing_id, "seq": env.seq}

    @staticmethod
    async def _locked(uow: UnitOfWork, who: store.Principal) -> store.Principal:
        """The principal, its row locked for this transaction; refused until the referee admits it."""
        principal = await store.by_agent(uow.conn, who.agent_id, lock=True)
        assert principal is not None
        if not principal.admitted:
            raise Refused(GatewayRefusal.NOT_ADMITTED, "the referee has not admitted this agent yet")
        return principal

    async def _on_thread(
        self, who: store.Principal, request_id: str, thread_id: str, move: Move
    ) -> dict[str, Any]:
        return await self._act(who, self._once(request_id), self._in_thread(thread_id, move), self._sign)

    def _opening(self, listing_id: str, want_id: str | None, move: Move) -> Decide:
        async def decide(uow: UnitOfWork, principal: store.Principal) -> tuple[Standing, Move]:
            found = await store.listing(uow.conn, principal.market_id, listing_id)
            if found is None or found[1] != "active":
                raise Refused(GatewayRefusal.UNKNOWN_LISTING, f"no active listing {listing_id}")
            earlier = await store.negotiation(uow.conn, principal.agent_id, listing_id)
            if earlier is not None and not store.opening_refused(earlier):
                raise Refused(GatewayRefusal.ALREADY_NEGOTIATING, f"already negotiating on {listing_id}")
            fulfilled = await store.fulfilled_wants(uow.conn, principal.agent_id)
            want = domain.want_for(principal.mandate, found[0], want_id, fulfilled)
            held = await store.held(uow.conn, principal.agent_id)  # under the principal's row lock
            hold = domain.hold(principal.mandate, want, found[0], principal.committed_cents, held)
            standing = Standing(principal.agent_id, principal.mandate, hold, found[0], want)
            checked = await self._guard(uow, move, standing)
            await store.start_negotiation(uow.conn, principal.agent_id, listing_id, want.id, hold)
            return standing, checked

        return decide

    def _in_thread(self, thread_id: str, move: Move, listing_id: str | None = None) -> Decide:
        """A move in one of the agent's threads; a `listing_id` the agent named must be the thread's."""

        async def decide(uow: UnitOfWork, principal: store.Principal) -> tuple[Standing, Move]:
            row = await store.negotiation_by_thread(uow.conn, principal.agent_id, thread_id)
            if row is None:
                raise Refused(GatewayRefusal.UNKNOWN_NEGOTIATION, f"no negotiation {thread_id} of yours")
            if listing_id is not None and listing_id != row["listing_id"]:
                raise Refused(
                    GatewayRefusal.WRONG_LISTING, f"thread {thread_id} is not on listing {listing_id}"
                )
            standing = await _standing(uow.conn, principal, row)
            return standing, await self._guard(uow, move, standing)

        return decide

    async def _guard(self, uow: UnitOfWork, move: Move, standing: Standing) -> Move:
        """The same guard as our agents'; a move that costs a token takes it from the agent's shared
        bucket in this transaction (a refusal later in it rolls the token back)."""
        limiter = _Deferred()
        checked = domain.guarded(move, standing, lambda m, v, lim: check(m, v, lim, limiter))
        if limiter.asked and not await self.moves.take(uow.conn, standing.agent_id):
            too_fast = f"agent {standing.agent_id} is moving too fast"
            raise Refused(GatewayRefusal.GUARD, too_fast, GuardRefusalReason.RATE_LIMITED.value)
        return checked

    @staticmethod
    def _once(request_id: str) -> Claim:
        async def claim(uow: UnitOfWork, principal: store.Principal) -> None:
            if not await store.remember_request(uow.conn, principal.agent_id, request_id, uuid.uuid4()):
                raise Refused(GatewayRefusal.REPLAYED_REQUEST, f"request {request_id} was sent before")

        return claim

    @staticmethod
    async def _sign(uow: UnitOfWork, principal: store.Principal, move: Move, standing: Standing) -> Envelope:
        """An API-key agent's move: the gateway signs it with the agent's key, and records the decision."""
        listing_id = standing.facts.listing_id
        thread_id = standing.view().thread_id
        command = domain.command_for(move, listing_id, thread_id)
        env = await send(uow, principal, command, NEGOTIATION_COMMANDS.name, listing_id)
        uow.emit(AGENT_DECISIONS.name, principal.agent_id, _decision(env, principal))
        return env

    async def _act(
        self, who: store.Principal, claim: Claim, decide: Decide, publish: Publish
    ) -> dict[str, Any]:
        try:
            async with unit_of_work(self.pool, self.notify_channel) as uow:
                principal = await self._locked(uow, who)
                await claim(uow, principal)
                standing, move = await decide(uow, principal)
                env = await publish(uow, principal, move, standing)
        except Refused as refused:
            REFUSALS.labels(refused.code).inc()
            log.info("gateway refused", extra={"agent_id": who.agent_id, "reason": refused.code})
            raise
        MOVES.labels(env.type).inc()
        return {"accepted": True, "command": env.type, "event_id": str(env.event_id), "seq": env.seq}

    # agents that sign for themselves ----------------------------------------

    async def signed(self, raw: Any) -> dict[str, Any]:
        """A command (or its registration) the external agent signed with its own key, forwarded unchanged."""
        env = _envelope(raw)
        async with self.pool.acquire() as conn:
            who = await store.by_agent(conn, str(env.agent_id)) if env.agent_id else None
        if not await self.requests.take(self.pool, f"agent:{env.agent_id}" if who else ANONYMOUS):
            raise self._refused(GatewayRefusal.RATE_LIMITED, "too many requests for this agent")
        if who is None or not who.signs_itself or env.market_id != who.market_id:
            raise self._refused(GatewayRefusal.UNAUTHORIZED, "not an agent that signs for itself here")
        if not envelope_signature_valid(env, who.public_key):
            raise self._refused(GatewayRefusal.BAD_SIGNATURE, "the signature is not the agent's")
        if env.type == "AgentRegistered":
            return await self._register(who, env)
        try:
            command = payload_of(env, (*domain.SIGNED_COMMANDS, CreateListing))
        except InvalidPayload as exc:
            raise self._refused(GatewayRefusal.INVALID_REQUEST, str(exc)) from None

        async def claim(uow: UnitOfWork, principal: store.Principal) -> None:
            if not await store.claim_signed_seq(uow.conn, principal.agent_id, int(env.seq or 0)):
                raise Refused(GatewayRefusal.REPLAYED_REQUEST, f"seq {env.seq} was used before")

        if isinstance(command, CreateListing):
            listing = LISTING_COMMANDS_TOPIC.name
            return await self._list(
                who,
                claim,
                lambda principal: domain.own_listing(principal.mandate, principal.agent_id, command),
                lambda uow, _, checked: self._forward(uow, listing, checked.listing_id, env),
            )
        move, listing_id, thread_id = move_of(command)
        decide = (
            self._opening(listing_id, None, move)
            if thread_id is None
            else self._in_thread(thread_id, move, listing_id)
        )

        async def forward(
            uow: UnitOfWork, principal: store.Principal, move: Move, standing: Standing
        ) -> Envelope:
            return await self._forward(uow, NEGOTIATION_COMMANDS.name, listing_id, env)

        return await self._act(who, claim, decide, forward)

    @staticmethod
    async def _forward(uow: UnitOfWork, topic: str, key: str, env: Envelope) -> Envelope:
        """A self-signing agent's envelope, queued unchanged (its signature is its own)."""
        uow.emit(topic, key, env)
        return env

    async def _register(self, who: store.Principal, env: Envelope) -> dict[str, Any]:
        registration = payload_of(env, (AgentRegistered,))
        assert isinstance(registration, AgentRegistered)
        ours = (who.agent_id, who.principal_id, who.public_key)
        if (registration.agent_id, registration.principal_id, registration.public_key) != ours:
            raise self._refused(GatewayRefusal.UNAUTHORIZED, "not this principal's agent or key")
        async with unit_of_work(self.pool, self.notify_channel) as uow:
            uow.emit(AGENT_EVENTS.name, who.agent_id, env)
        return {"accepted": True, "command": env.type, "event_id": str(env.event_id), "seq": env.seq}


Claim = Callable[[UnitOfWork, store.Principal], Awaitable[None]]
Decide = Callable[[UnitOfWork, store.Principal], Awaitable[tuple[Standing, Move]]]
Publish = Callable[[UnitOfWork, store.Principal, Move, Standing], Awaitable[Envelope]]


def _envelope(raw: Any) -> Envelope:
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        raise Refused(
            GatewayRefusal.INVALID_REQUEST, f"not an envelope ({exc.error_count()} errors)"
        ) from None


def _decision(env: Envelope, principal: store.Principal) -> Envelope:
    assert principal.key is not None
    return decision_for(
        env,
        key=principal.key,
        principal_id=principal.principal_id,
        brain=f"gateway:{principal.label}",
        mandate_sha256=principal.mandate_sha256,
        producer=PRODUCER,
    )


def _deal(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "deal_id": row["deal_id"],
        "listing_id": row["listing_id"],
        "total_cents": row["total_cents"],
        "status": row["status"],
    }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _standing(conn: asyncpg.Connection, who: store.Principal, row: asyncpg.Record) -> Standing:
    """What the guard needs about one of the agent's negotiations (a `negotiations` row)."""
    listing_id = row["listing_id"]
    found = await store.listing(conn, who.market_id, listing_id)
    if found is None:
        raise Refused(GatewayRefusal.UNKNOWN_LISTING, f"listing {listing_id} is not known")
    entries = tuple(_json(row["events"]))
    if row["role"] == "seller":
        item_id = listing_id.removeprefix(f"{who.principal_id}.")
        return Standing(who.agent_id, who.mandate, 0, found[0], None, entries, item_id)
    want = who.mandate.want(row["want_id"])
    return Standing(who.agent_id, who.mandate, row["held_cents"], found[0], want, entries)
