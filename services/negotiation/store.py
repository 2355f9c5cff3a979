"""The referee's SQL (asyncpg): its listing view, threads, deals and market rules."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import asyncpg
import orjson

from haggle.contracts.goods import Item, ShippingMethod, ShippingOption
from haggle.contracts.negotiation import DealAgreed, EndReason, Party
from haggle.runtime.outbox import Memo, UnitOfWork, remembered
from services.negotiation.domain import Actor, ListingState, ListingView, Offer, Thread, ThreadStatus


async def market_counts(conn: asyncpg.Connection | asyncpg.Pool, market_id: str) -> dict[str, int]:
    """Threads (all, open) and deals (all, live) the referee holds for one market."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM threads WHERE market_id = $1) AS threads,"
        " (SELECT count(*) FROM threads WHERE market_id = $1 AND status = 'open') AS threads_open,"
        " (SELECT count(*) FROM deals d JOIN threads t USING (thread_id) WHERE t.market_id = $1) AS deals",
        market_id,
    )
    return {key: int(row[key]) for key in ("threads", "threads_open", "deals")}


async def unfinished(conn: asyncpg.Connection, market_id: str) -> str | None:
    """What stops the referee from calling a market closed: a negotiation still open."""
    left = (await market_counts(conn, market_id))["threads_open"]
    return f"{left} negotiations still open" if left else None


def _listing(row: asyncpg.Record) -> ListingView:
    return ListingView(
        listing_id=row["listing_id"],
        market_id=row["market_id"],
        seller_agent_id=row["seller_agent_id"],
        seller_principal_id=row["seller_principal_id"],
        state=ListingState(row["state"]),
        item=Item.model_validate_json(row["item"]),
        shipping=tuple(ShippingOption.model_validate(o) for o in orjson.loads(row["shipping"])),
        deal_id=row["deal_id"],
        epoch=row["epoch"],
    )


async def lock_listing(
    conn: asyncpg.Connection, listing_id: str, memo: Memo | None = None
) -> ListingView | None:
    """Load and lock: every move on a listing holds this row until commit."""

    async def load() -> ListingView | None:
        row = await conn.fetchrow("SELECT * FROM listings_view WHERE listing_id = $1 FOR UPDATE", listing_id)
        return _listing(row) if row else None

    return await remembered(memo, ("listing", listing_id), load)


async def lock_listings(conn: asyncpg.Connection, listing_ids: list[str], memo: Memo) -> None:
    """Load and lock many listings at once, in id order, into `memo` (None where unknown)."""
    rows = await conn.fetch(
        # Byte order (COLLATE "C"), as the batches sort their Kafka keys, whatever the database's
        # collation: two batches then lock listings in the same order.
        'SELECT * FROM listings_view WHERE listing_id = ANY($1::text[]) ORDER BY listing_id COLLATE "C"'
        " FOR UPDATE",
        listing_ids,
    )
    found = {r["listing_id"]: _listing(r) for r in rows}
    for listing_id in listing_ids:
        memo[("listing", listing_id)] = found.get(listing_id)


async def save_listing(conn: asyncpg.Connection, view: ListingView, memo: Memo | None = None) -> None:
    await conn.execute(
        """
        INSERT INTO listings_view (listing_id, market_id, seller_agent_id, seller_principal_id, state,
            item, shipping, deal_id, epoch)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (listing_id) DO UPDATE SET state = EXCLUDED.state, deal_id = EXCLUDED.deal_id,
            epoch = EXCLUDED.epoch, shipping = EXCLUDED.shipping
        """,
        view.listing_id,
        view.market_id,
        view.seller_agent_id,
        view.seller_principal_id,
        view.state.value,
        view.item.model_dump_json(),
        orjson.dumps([o.model_dump(mode="json") for o in view.shipping]).decode(),
        view.deal_id,
        view.epoch,
    )
    if memo is not None:
        memo[("listing", view.listing_id)] = view


def _actor(raw: str) -> Actor:
    return Actor(**orjson.loads(raw))


def _offer(raw: dict[str, object]) -> Offer:
    return Offer(
        offer_id=str(raw["offer_id"]),
        by=Party(raw["by"]),
        agent_id=str(raw["agent_id"]),
        round=int(raw["round"]),  # type: ignore[call-overload]
        price_cents=int(raw["price_cents"]),  # type: ignore[call-overload]
        shipping_method=ShippingMethod(raw["shipping_method"]),
        shipping_cost_cents=int(raw["shipping_cost_cents"]),  # type: ignore[call-overload]
        shipping_paid_by=Party(raw["shipping_paid_by"]),
    )


def _thread(row: asyncpg.Record) -> Thread:
    return Thread(
        thread_id=row["thread_id"],
        listing_id=row["listing_id"],
        buyer=_actor(row["buyer"]),
        seller=_actor(row["seller"]),
        opened_at=row["opened_at"],
        deadline=row["deadline"],
        max_rounds=row["max_rounds"],
        epoch=row["epoch"],
        offers=tuple(_offer(o) for o in orjson.loads(row["offers"])),
        messages=row["messages"],
        status=ThreadStatus(row["status"]),
        end_reason=EndReason(row["end_reason"]) if row["end_reason"] else None,
    )


async def thread(conn: asyncpg.Connection, thread_id: str, memo: Memo | None = None) -> Thread | None:
    async def load() -> Thread | None:
        row = await conn.fetchrow("SELECT * FROM threads WHERE thread_id = $1 FOR UPDATE", thread_id)
        return _thread(row) if row else None

    return await remembered(memo, ("thread", thread_id), load)


async def lock_threads(
    conn: asyncpg.Connection, thread_ids: list[str], listing_ids: list[str], memo: Memo
) -> None:
    """Load and lock many threads at once, in id order, into `memo` (None where unknown). Only
    threads of `listing_ids` (locked already): a command naming another listing's thread must
    not lock it, or two batches could wait on each other's listings."""
    rows = await conn.fetch(
        "SELECT * FROM threads WHERE thread_id = ANY($1::text[]) AND listing_id = ANY($2::text[])"
        ' ORDER BY thread_id COLLATE "C" FOR UPDATE',
        thread_ids,
        listing_ids,
    )
    found = {r["thread_id"]: _thread(r) for r in rows}
    for thread_id in thread_ids:
        memo[("thread", thread_id)] = found.get(thread_id)


async def open_threads_on(
    conn: asyncpg.Connection, listing_id: str, memo: Memo | None = None
) -> tuple[Thread, ...]:
    await flush_threads(conn, memo)
    rows = await conn.fetch(
        "SELECT * FROM threads WHERE listing_id = $1 AND status = 'open' ORDER BY thread_id FOR UPDATE",
        listing_id,
    )
    return tuple(_thread(r) for r in rows)


async def thread_exists(
    conn: asyncpg.Connection, listing_id: str, buyer: str, epoch: int, memo: Memo | None = None
) -> bool:
    await flush_threads(conn, memo)
    found = await conn.fetchval(
        "SELECT 1 FROM threads WHERE listing_id = $1 AND buyer_agent_id = $2 AND epoch = $3",
        listing_id,
        buyer,
        epoch,
    )
    return found is not None


async def open_count(conn: asyncpg.Connection, buyer: str, memo: Memo | None = None) -> int:
    await flush_threads(conn, memo)
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM threads WHERE buyer_agent_id = $1 AND status = 'open'", buyer
        )
    )


_DIRTY_THREADS = "negotiation.dirty_threads"


def defer_thread_writes(uow: UnitOfWork) -> None:
    """From now on `save_thread` keeps threads in the memo; they are written in one statement
    before commit, or before any query that selects threads by something other than their id."""
    if _DIRTY_THREADS not in uow.memo:
        uow.memo[_DIRTY_THREADS] = {}
        uow.before_commit.append(lambda: flush_threads(uow.conn, uow.memo))


async def flush_threads(conn: asyncpg.Connection, memo: Memo | None) -> None:
    dirty = memo.get(_DIRTY_THREADS) if memo is not None else None
    if dirty:
        await conn.executemany(_SAVE_THREAD, [_thread_args(market_id, t) for market_id, t in dirty.values()])
        dirty.clear()


async def save_thread(conn: asyncpg.Connection, market_id: str, t: Thread, memo: Memo | None = None) -> None:
    if memo is not None:
        memo[("thread", t.thread_id)] = t
        if _DIRTY_THREADS in memo:
            memo[_DIRTY_THREADS][t.thread_id] = (market_id, t)
            return
    await conn.execute(_SAVE_THREAD, *_thread_args(market_id, t))


_SAVE_THREAD = """
        INSERT INTO threads (thread_id, listing_id, market_id, epoch, buyer_agent_id, buyer, seller,
            opened_at, deadline, max_rounds, offers, messages, status, end_reason)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        ON CONFLICT (thread_id) DO UPDATE SET offers = EXCLUDED.offers, messages = EXCLUDED.messages,
            status = EXCLUDED.status, end_reason = EXCLUDED.end_reason, updated_at = now()
        """


def _thread_args(market_id: str, t: Thread) -> tuple[object, ...]:
    return (
        t.thread_id,
        t.listing_id,
        market_id,
        t.epoch,
        t.buyer.agent_id,
        orjson.dumps(asdict(t.buyer)).decode(),
        orjson.dumps(asdict(t.seller)).decode(),
        t.opened_at,
        t.deadline,
        t.max_rounds,
        orjson.dumps([asdict(o) for o in t.offers]).decode(),
        t.messages,
        t.status.value,
        t.end_reason.value if t.end_reason else None,
    )


async def save_deal(conn: asyncpg.Connection, deal: DealAgreed) -> None:
    """The unique indexes make a second live deal on a listing impossible, whatever the code does."""
    await conn.execute(
        "INSERT INTO deals (deal_id, listing_id, thread_id, accepted_offer_id, price_cents, body)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        deal.deal_id,
        deal.listing_id,
        deal.thread_id,
        deal.accepted_offer_id,
        deal.price_cents,
        deal.model_dump_json(),
    )


async def cancel_deal(conn: asyncpg.Connection, deal_id: str) -> None:
    await conn.execute("UPDATE deals SET cancelled = true WHERE deal_id = $1", deal_id)


async def due_threads(conn: asyncpg.Connection, now: datetime, limit: int = 200) -> tuple[Thread, ...]:
    rows = await conn.fetch(
        "SELECT * FROM threads WHERE status = 'open' AND deadline <= $1"
        " ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
        now,
        limit,
    )
    return tuple(_thread(r) for r in rows)


async def first_deadline(pool: asyncpg.Pool) -> datetime | None:
    """The earliest deadline of an open thread."""
    found: datetime | None = await pool.fetchval("SELECT min(deadline) FROM threads WHERE status = 'open'")
    return found


async def market_of_thread(conn: asyncpg.Connection, thread_id: str) -> str:
    return str(await conn.fetchval("SELECT market_id FROM threads WHERE thread_id = $1", thread_id))
