"""The agents service's SQL (asyncpg): principals and keys, listings seen, negotiations, deals."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

import asyncpg
import orjson

from haggle.contracts import AgentKey
from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import Mandate
from haggle.runtime.repository import columns
from services.agents.brains.model_calls import dollars
from services.agents.domain import (
    Budget,
    EndedBecause,
    Negotiation,
    Principal,
    Role,
    Status,
    buyer_neg_id,
    seller_neg_id,
)
from services.agents.domain.deals import Deal, DealStatus
from services.agents.domain.negotiation import MAX_REOPENS, REVIVABLE, Received
from services.agents.domain.usage import LlmUsage

__all__ = ["Negotiation", "Principal", "buyer_neg_id", "seller_neg_id"]


class _Parsed:
    """Parsed mandates and keys by principal, each under the tag of the mandate it was parsed from:
    a tag is new with every mandate written, and both parsed objects are immutable, so a process
    parses and ships each mandate once (bounded, least recently used first out)."""

    def __init__(self, size: int = 4_096) -> None:
        self._size = size
        self._kept: OrderedDict[str, tuple[UUID, Mandate, AgentKey]] = OrderedDict()

    def get(self, principal_id: str, tag: UUID) -> tuple[Mandate, AgentKey] | None:
        kept = self._kept.get(principal_id)
        if kept is None or kept[0] != tag:
            return None
        self._kept.move_to_end(principal_id)
        return kept[1], kept[2]

    def put(self, raw: asyncpg.Record) -> tuple[Mandate, AgentKey]:
        principal_id, tag = raw["principal_id"], raw["mandate_tag"]
        kept = self._kept.get(principal_id)
        if kept is None or kept[0] != tag:
            key = AgentKey.from_bytes(bytes(raw["private_key"]))
            kept = self._kept[principal_id] = (tag, Mandate.model_validate_json(raw["mandate"]), key)
        self._kept.move_to_end(principal_id)
        while len(self._kept) > self._size:
            self._kept.popitem(last=False)
        return kept[1], kept[2]


_PARSED = _Parsed()

_SLIM = (
    "principal_id, market_id, agent_id, variant, mandate_tag, admitted, committed_cents,"
    " refused_listings, refused_wants"
)
"""A principal's row without its mandate and key: those come from `_PARSED`, or once per tag."""


async def _principals(conn: asyncpg.Connection, rows: Sequence[asyncpg.Record]) -> list[Principal]:
    """Principals from `_SLIM` rows: the mandates and keys this process has not parsed under their
    tag are read in one statement (a mandate written since the row was read comes with its tag)."""
    known, missing = {}, []
    for row in rows:
        if parsed := _PARSED.get(row["principal_id"], row["mandate_tag"]):
            known[row["principal_id"]] = parsed
        else:
            missing.append(row["principal_id"])
    if missing:
        for raw in await conn.fetch(
            "SELECT principal_id, mandate_tag, mandate, private_key FROM principals"
            " WHERE principal_id = ANY($1::text[])",
            missing,
        ):
            known[raw["principal_id"]] = _PARSED.put(raw)
    return [_principal(row, *known[row["principal_id"]]) for row in rows]


def _principal(row: asyncpg.Record, mandate: Mandate, key: AgentKey) -> Principal:
    return Principal(
        row["principal_id"],
        row["market_id"],
        row["agent_id"],
        row["variant"],
        mandate,
        key,
        row["admitted"],
        row["committed_cents"],
        frozenset(row["refused_listings"]),
        frozenset(row["refused_wants"]),
    )


def _categories(mandate: Mandate) -> list[str] | None:
    wanted = mandate.categories_wanted()
    return None if wanted is None else sorted(wanted)


async def insert_principal(
    conn: asyncpg.Connection, market_id: str, mandate: Mandate, variant: str, agent_id: str, key: AgentKey
) -> bool:
    created = await conn.fetchval(
        "INSERT INTO principals (principal_id, market_id, agent_id, variant, mandate, private_key,"
        " want_categories) VALUES ($1, $2, $3, $4, $5, $6, $7)"
        " ON CONFLICT (principal_id) DO NOTHING RETURNING 1",
        mandate.principal_id,
        market_id,
        agent_id,
        variant,
        mandate.model_dump_json(),
        key.private_bytes(),
        _categories(mandate),
    )
    return created is not None


async def principal(conn: asyncpg.Connection, principal_id: str) -> Principal | None:
    row = await conn.fetchrow(
        f"SELECT {_SLIM} FROM principals WHERE principal_id = $1 FOR NO KEY UPDATE", principal_id
    )
    return (await _principals(conn, [row]))[0] if row else None


async def save_mandate(conn: asyncpg.Connection, principal: Principal) -> None:
    await conn.execute(
        "UPDATE principals SET mandate = $2, want_categories = $3, mandate_tag = gen_random_uuid()"
        " WHERE principal_id = $1",
        principal.principal_id,
        principal.mandate.model_dump_json(),
        _categories(principal.mandate),
    )


async def principal_by_agent(conn: asyncpg.Connection, agent_id: str) -> Principal | None:
    row = await conn.fetchrow(
        f"SELECT {_SLIM} FROM principals WHERE agent_id = $1 FOR NO KEY UPDATE", agent_id
    )
    return (await _principals(conn, [row]))[0] if row else None


async def admitted_buyers(conn: asyncpg.Connection, market_id: str, category: str) -> list[Principal]:
    """Every admitted principal with a want that a listing of `category` could match, in a fixed
    order: the listings read side by side lock buyers' rows in this order. Whether a want matches
    is `shopping.matching_want`'s; this only leaves out the mandates it could not match
    (`Mandate.categories_wanted`), so they are not considered for every listing."""
    rows = await conn.fetch(
        f"SELECT {_SLIM} FROM principals WHERE market_id = $1 AND admitted"
        " AND (want_categories IS NULL OR $2 = ANY(want_categories))"
        " ORDER BY principal_id",
        market_id,
        category,
    )
    return await _principals(conn, rows)


async def set_admitted(conn: asyncpg.Connection, principal_id: str) -> bool:
    """True the first time only."""
    changed = await conn.fetchval(
        "UPDATE principals SET admitted = true WHERE principal_id = $1 AND NOT admitted RETURNING 1",
        principal_id,
    )
    return changed is not None


async def refuse_purchase(
    conn: asyncpg.Connection, principal_id: str, listing_id: str, want_id: str | None
) -> None:
    """The principal did not consent to buying this listing for this want."""
    await conn.execute(
        "UPDATE principals SET"
        " refused_listings = array(SELECT DISTINCT unnest(refused_listings || $2::text)),"
        " refused_wants = array_remove(array(SELECT DISTINCT unnest(refused_wants || $3::text)), NULL)"
        " WHERE principal_id = $1",
        principal_id,
        listing_id,
        want_id,
    )


async def end_openings(conn: asyncpg.Connection, market_id: str, reason: EndedBecause) -> int:
    """End every negotiation of the market that has not opened yet (the market stopped taking new ones)."""
    status = await conn.execute(
        "UPDATE negotiations n SET status = 'ended', end_reason = $2, retry_at = NULL, reserved_cents = 0,"
        " updated_at = now() FROM principals p"
        " WHERE n.principal_id = p.principal_id AND p.market_id = $1 AND n.status = 'opening'",
        market_id,
        reason.value,
    )
    return int(status.split()[-1])


async def market_counts(conn: asyncpg.Connection | asyncpg.Pool, market_id: str) -> dict[str, int]:
    """The agents' negotiations in one market that could still move (waiting to open, and open),
    their deals whose outcome they have not read (a failed purchase frees money and reopens
    candidates), and how far the agents have read the market: the listings they have seen and the
    agents admitted. Until those are all in, "nothing waiting" may only mean "not read yet"."""
    row = await conn.fetchrow(
        "WITH market AS (SELECT principal_id FROM principals WHERE market_id = $1)"
        " SELECT count(*) FILTER (WHERE n.status = 'opening') AS opening,"
        " count(*) FILTER (WHERE n.status = 'open') AS open,"
        " (SELECT count(*) FROM deals WHERE status = $2"
        "   AND principal_id IN (SELECT principal_id FROM market)) AS deals_open,"
        " (SELECT count(*) FROM listings_seen WHERE market_id = $1) AS listings_seen,"
        " (SELECT count(*) FROM principals WHERE market_id = $1 AND admitted) AS admitted"
        " FROM negotiations n WHERE n.status IN ('opening', 'open')"
        " AND n.principal_id IN (SELECT principal_id FROM market)",
        market_id,
        DealStatus.AGREED.value,
    )
    return {key: int(row[key]) for key in ("opening", "open", "deals_open", "listings_seen", "admitted")}


async def budget(conn: asyncpg.Connection, principal: Principal) -> Budget:
    """The principal's budget: its commitment (its row, locked by the caller) and the holds of its
    live buyer negotiations."""
    rows = await conn.fetch(
        "SELECT neg_id, reserved_cents FROM negotiations WHERE principal_id = $1 AND role = 'buyer'"
        " AND status IN ('opening', 'open') AND reserved_cents > 0",
        principal.principal_id,
    )
    holds = {r["neg_id"]: int(r["reserved_cents"]) for r in rows}
    return Budget(principal.mandate.budget_cents, principal.committed_cents, holds)


async def save_budget(conn: asyncpg.Connection, principal: Principal, budget: Budget) -> None:
    """Save what a budget operation returned: the commitment (the holds are saved with their negotiations)."""
    principal.spend(budget)
    await conn.execute(
        "UPDATE principals SET committed_cents = $2 WHERE principal_id = $1",
        principal.principal_id,
        budget.committed_cents,
    )


async def save_listing(conn: asyncpg.Connection, market_id: str, facts: ListingPublished) -> None:
    await conn.execute(
        "INSERT INTO listings_seen (listing_id, market_id, facts, status, seller_principal_id)"
        " VALUES ($1, $2, $3, 'active', $4) ON CONFLICT (listing_id) DO NOTHING",
        facts.listing_id,
        market_id,
        facts.model_dump_json(),
        facts.seller_principal_id,
    )


async def set_listing_status(conn: asyncpg.Connection, listing_id: str, status: str) -> None:
    await conn.execute("UPDATE listings_seen SET status = $2 WHERE listing_id = $1", listing_id, status)


async def listing(conn: asyncpg.Connection, listing_id: str) -> tuple[ListingPublished, str] | None:
    row = await conn.fetchrow("SELECT facts, status FROM listings_seen WHERE listing_id = $1", listing_id)
    return (ListingPublished.model_validate_json(row["facts"]), row["status"]) if row else None


async def active_listings(conn: asyncpg.Connection, market_id: str) -> list[ListingPublished]:
    rows = await conn.fetch(
        "SELECT facts FROM listings_seen WHERE market_id = $1 AND status = 'active' ORDER BY listing_id",
        market_id,
    )
    return [ListingPublished.model_validate_json(r["facts"]) for r in rows]


def _negotiation(row: asyncpg.Record) -> Negotiation:
    return Negotiation(
        row["neg_id"],
        row["principal_id"],
        row["listing_id"],
        Role(row["role"]),
        row["want_id"],
        row["item_id"],
        row["thread_id"],
        Status(row["status"]),
        [Received.loaded(saved) for saved in orjson.loads(row["events"])],
        row["reserved_cents"],
        row["retry_at"],
        row["attempts"],
        row["end_reason"],
    )


async def negotiation(conn: asyncpg.Connection, neg_id: str) -> Negotiation | None:
    row = await conn.fetchrow("SELECT * FROM negotiations WHERE neg_id = $1 FOR UPDATE", neg_id)
    return _negotiation(row) if row else None


async def negotiations_of(
    conn: asyncpg.Connection, principal_id: str, live_only: bool = True
) -> list[Negotiation]:
    rows = await conn.fetch(
        "SELECT * FROM negotiations WHERE principal_id = $1"
        + (" AND status IN ('opening', 'open')" if live_only else "")
        + " ORDER BY neg_id",
        principal_id,
    )
    return [_negotiation(r) for r in rows]


_TOTAL_CENTS = (
    "(l.facts->>'price_cents')::bigint + coalesce((SELECT min((o->>'cost_cents')::bigint)"
    " FROM jsonb_array_elements(l.facts->'shipping') o), 0)"
)
"""A listing's asking price plus its cheapest shipping (`l`: its `listings_seen` row)."""


async def shortlist(
    conn: asyncpg.Connection, principal_id: str, want_id: str
) -> list[tuple[Negotiation, int]]:
    """A want's live buyer negotiations, each with its listing's asking price plus cheapest shipping."""
    return (await shortlists(conn, [(principal_id, want_id)])).get((principal_id, want_id), [])


async def shortlists(
    conn: asyncpg.Connection, wants: Collection[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[Negotiation, int]]]:
    """`shortlist` of many (principal, want) pairs in one statement, their rows locked in (principal,
    negotiation) order: the order every transaction that locks several buyers' rows takes them in."""
    if not wants:
        return {}
    rows = await conn.fetch(
        f"SELECT n.*, {_TOTAL_CENTS} AS total_cents"
        " FROM negotiations n JOIN listings_seen l USING (listing_id)"
        " WHERE (n.principal_id, n.want_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))"
        " AND n.role = 'buyer' AND n.status IN ('opening', 'open')"
        " ORDER BY n.principal_id, n.neg_id FOR UPDATE OF n",
        *columns(sorted(wants)),
    )
    found: dict[tuple[str, str], list[tuple[Negotiation, int]]] = {}
    for r in rows:
        pair = (r["principal_id"], r["want_id"])
        found.setdefault(pair, []).append((_negotiation(r), int(r["total_cents"])))
    return found


async def revival_candidates(conn: asyncpg.Connection, principal_id: str) -> list[tuple[Negotiation, int]]:
    """A buyer's ended candidates that could be revived, each with its listing's asking price plus
    cheapest shipping. Only a prefilter: whether one is revivable is `Negotiation.revivable`'s."""
    rows = await conn.fetch(
        f"SELECT n.*, {_TOTAL_CENTS} AS total_cents"
        " FROM negotiations n JOIN listings_seen l USING (listing_id)"
        " WHERE n.principal_id = $1 AND n.role = 'buyer' AND n.status = 'ended'"
        " AND n.end_reason = ANY($2::text[]) AND n.attempts < $3"
        " ORDER BY n.neg_id",
        principal_id,
        sorted(reason.value for reason in REVIVABLE),
        MAX_REOPENS,
    )
    return [(_negotiation(r), int(r["total_cents"])) for r in rows]


async def save_passed_over(conn: asyncpg.Connection, negs: Sequence[Negotiation]) -> None:
    """Save what `Negotiation.passed_over` changed, for many candidates in one statement."""
    if negs:
        await conn.execute(
            "UPDATE negotiations n SET end_reason = v.end_reason, attempts = v.attempts, updated_at = now()"
            " FROM unnest($1::text[], $2::text[], $3::int[]) AS v(neg_id, end_reason, attempts)"
            " WHERE n.neg_id = v.neg_id",
            *columns([(n.neg_id, n.end_reason, n.attempts) for n in negs]),
        )


async def live_candidates(conn: asyncpg.Connection, principal_id: str) -> list[tuple[Negotiation, int, int]]:
    """A buyer's live negotiations, each with its listing's asking price and cheapest shipping."""
    rows = await conn.fetch(
        "SELECT n.*, (l.facts->>'price_cents')::bigint AS asking,"
        " coalesce((SELECT min((o->>'cost_cents')::bigint)"
        " FROM jsonb_array_elements(l.facts->'shipping') o), 0) AS cheapest"
        " FROM negotiations n JOIN listings_seen l USING (listing_id)"
        " WHERE n.principal_id = $1 AND n.role = 'buyer' AND n.status IN ('opening', 'open')",
        principal_id,
    )
    return [(_negotiation(r), int(r["asking"]), int(r["cheapest"])) for r in rows]


_INSERT_NEGOTIATIONS = (
    "INSERT INTO negotiations (neg_id, principal_id, listing_id, role, want_id, item_id, thread_id,"
    " status, events, reserved_cents, retry_at, attempts, end_reason)"
    " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],"
    " $7::text[], $8::text[], $9::jsonb[], $10::bigint[], $11::timestamptz[], $12::int[], $13::text[])"
)


def _negotiation_columns(negs: Sequence[Negotiation]) -> list[list[object]]:
    return columns(
        [
            (
                n.neg_id,
                n.principal_id,
                n.listing_id,
                n.role.value,
                n.want_id,
                n.item_id,
                n.thread_id,
                n.status.value,
                orjson.dumps([entry.saved() for entry in n.events]).decode(),
                n.reserved_cents,
                n.retry_at,
                n.attempts,
                n.end_reason,
            )
            for n in negs
        ]
    )


async def save_negotiation(conn: asyncpg.Connection, n: Negotiation) -> None:
    await save_negotiations(conn, [n])


async def save_negotiations(conn: asyncpg.Connection, negs: Sequence[Negotiation]) -> None:
    """Insert or update many negotiations in one statement."""
    if negs:
        await conn.execute(
            _INSERT_NEGOTIATIONS + " ON CONFLICT (neg_id) DO UPDATE SET want_id = EXCLUDED.want_id,"
            " thread_id = EXCLUDED.thread_id, status = EXCLUDED.status, events = EXCLUDED.events,"
            " reserved_cents = EXCLUDED.reserved_cents, retry_at = EXCLUDED.retry_at,"
            " attempts = EXCLUDED.attempts, end_reason = EXCLUDED.end_reason, updated_at = now()",
            *_negotiation_columns(negs),
        )


async def insert_new_negotiations(conn: asyncpg.Connection, negs: Sequence[Negotiation]) -> set[str]:
    """Insert the negotiations not known yet, in one statement; the ids of those inserted."""
    if not negs:
        return set()
    inserting = _INSERT_NEGOTIATIONS + " ON CONFLICT (neg_id) DO NOTHING RETURNING neg_id"
    rows = await conn.fetch(inserting, *_negotiation_columns(negs))
    return {r["neg_id"] for r in rows}


async def due_retries(
    conn: asyncpg.Connection, now: datetime, busy: Collection[str] = (), limit: int = 100
) -> list[tuple[str, str]]:
    """Turns due by `now`, oldest first, of principals not `busy` with one already."""
    rows = await conn.fetch(
        "SELECT neg_id, principal_id FROM negotiations WHERE retry_at <= $1 AND status IN ('opening', 'open')"
        " AND principal_id <> ALL($2::text[]) ORDER BY retry_at LIMIT $3",
        now,
        list(busy),
        limit,
    )
    return [(r["neg_id"], r["principal_id"]) for r in rows]


async def save_deal(
    conn: asyncpg.Connection, deal_id: str, n: Negotiation, amount: int, shipping_method: str
) -> bool:
    created = await conn.fetchval(
        "INSERT INTO deals (deal_id, principal_id, role, listing_id, want_id, amount_cents,"
        " shipping_method, status) VALUES ($1, $2, $3, $4, $5, $6, $7, 'agreed')"
        " ON CONFLICT DO NOTHING RETURNING 1",
        deal_id,
        n.principal_id,
        n.role,
        n.listing_id,
        n.want_id,
        amount,
        shipping_method,
    )
    return created is not None


async def deal(conn: asyncpg.Connection, deal_id: str, principal_id: str) -> Deal | None:
    row = await conn.fetchrow(
        "SELECT * FROM deals WHERE deal_id = $1 AND principal_id = $2 FOR UPDATE", deal_id, principal_id
    )
    if row is None:
        return None
    return Deal(
        row["deal_id"],
        row["principal_id"],
        Role(row["role"]),
        row["listing_id"],
        row["want_id"],
        int(row["amount_cents"]),
        row["shipping_method"],
        DealStatus(row["status"]),
    )


async def save_deal_status(conn: asyncpg.Connection, deal: Deal) -> None:
    await conn.execute(
        "UPDATE deals SET status = $3 WHERE deal_id = $1 AND principal_id = $2",
        deal.deal_id,
        deal.principal_id,
        deal.status.value,
    )


async def fulfilled_wants(conn: asyncpg.Connection, principal_id: str) -> set[str]:
    return (await fulfilled_wants_of(conn, [principal_id])).get(principal_id, set())


async def fulfilled_wants_of(conn: asyncpg.Connection, principal_ids: Collection[str]) -> dict[str, set[str]]:
    """Each principal's wants a deal fulfils (or will, once settled), for many principals at once."""
    rows = await conn.fetch(
        "SELECT principal_id, want_id FROM deals WHERE principal_id = ANY($1::text[]) AND role = 'buyer'"
        " AND want_id IS NOT NULL AND status NOT IN ('failed', 'refunded')",
        list(principal_ids),
    )
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r["principal_id"], set()).add(r["want_id"])
    return found


async def record_move(
    conn: asyncpg.Connection,
    principal_id: str,
    listing_id: str,
    kind: str,
    price: int | None,
    refusal_reasons: list[str],
) -> None:
    await conn.execute(
        "INSERT INTO moves (principal_id, listing_id, kind, price_cents, guard_refusals, refusal_reasons)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        principal_id,
        listing_id,
        kind,
        price,
        len(refusal_reasons),
        refusal_reasons,
    )


async def record_model_usage(
    conn: asyncpg.Connection, principal_id: str, listing_id: str, model: str, usage: LlmUsage
) -> None:
    """One decision's tokens, with their dollar estimate from the stated price table."""
    await conn.execute(
        "INSERT INTO model_usage (principal_id, listing_id, model, input_tokens, output_tokens,"
        " cache_read_tokens, cache_write_tokens, micro_dollars) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        principal_id,
        listing_id,
        model,
        usage.input_tokens,
        usage.output_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
        round(dollars(model, usage) * 1_000_000),
    )


async def tokens_used(conn: asyncpg.Connection, principal_id: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce(sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens), 0)"
            " FROM model_usage WHERE principal_id = $1",
            principal_id,
        )
    )


async def listing_retry_attempts(conn: asyncpg.Connection, listing_id: str) -> int:
    """How often this listing was created again already (0: never)."""
    found = await conn.fetchval("SELECT attempts FROM listing_retries WHERE listing_id = $1", listing_id)
    return int(found or 0)


async def schedule_listing_retry(
    conn: asyncpg.Connection, listing_id: str, principal_id: str, item_id: str, due_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO listing_retries (listing_id, principal_id, item_id, attempts, due_at)"
        " VALUES ($1, $2, $3, 1, $4) ON CONFLICT (listing_id) DO UPDATE"
        " SET attempts = listing_retries.attempts + 1, due_at = EXCLUDED.due_at",
        listing_id,
        principal_id,
        item_id,
        due_at,
    )


async def take_due_listing_retries(
    conn: asyncpg.Connection, now: datetime, limit: int = 100
) -> list[tuple[str, str, str]]:
    """The listing retries due by `now` (listing, principal, item), no longer due once taken; rows
    another instance is taking are skipped."""
    rows = await conn.fetch(
        "UPDATE listing_retries SET due_at = NULL WHERE listing_id IN (SELECT listing_id"
        " FROM listing_retries WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        " RETURNING listing_id, principal_id, item_id",
        now,
        limit,
    )
    return [(r["listing_id"], r["principal_id"], r["item_id"]) for r in rows]
