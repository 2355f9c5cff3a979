"""The referee's SQL (asyncpg): its listing view, threads, deals and market rules."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

import asyncpg
import orjson

from haggle.contracts.goods import Item, ShippingMethod, ShippingOption
from haggle.contracts.negotiation import DealAgreed, EndReason, Party
from haggle.runtime.outbox import UnitOfWork
from haggle.runtime.repository import Repository, columns
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


_SAVE_LISTING = """
    INSERT INTO listings_view (listing_id, market_id, seller_agent_id, seller_principal_id, state,
        item, shipping, deal_id, epoch)
    SELECT listing_id, market_id, seller_agent_id, seller_principal_id, state,
        item::jsonb, shipping::jsonb, deal_id, epoch
    FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
        $8::text[], $9::int[])
        AS u(listing_id, market_id, seller_agent_id, seller_principal_id, state, item, shipping,
            deal_id, epoch)
    ON CONFLICT (listing_id) DO UPDATE SET state = EXCLUDED.state, deal_id = EXCLUDED.deal_id,
        epoch = EXCLUDED.epoch, shipping = EXCLUDED.shipping
"""


def _listing_args(view: ListingView) -> tuple[object, ...]:
    return (
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


class Listings(Repository[str, ListingView]):
    """The referee's view of each listing. Reading one locks it: every move on a listing holds
    its row until commit. Many are locked at once in byte order (COLLATE "C"), as the batches
    sort their Kafka keys, whatever the database's collation: two batches then lock listings
    in the same order."""

    def key(self, value: ListingView) -> str:
        return value.listing_id

    async def _load(self, keys: list[str]) -> dict[str, ListingView]:
        rows = await self.conn.fetch(
            'SELECT * FROM listings_view WHERE listing_id = ANY($1::text[]) ORDER BY listing_id COLLATE "C"'
            " FOR UPDATE",
            keys,
        )
        return {r["listing_id"]: _listing(r) for r in rows}

    async def _write(self, values: list[ListingView]) -> None:
        await self.conn.execute(_SAVE_LISTING, *columns([_listing_args(v) for v in values]))


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


class Threads(Repository[str, Thread]):
    """Negotiation threads. Reading one by id locks it; `open_on`, `exists` and `open_count` read
    by something else, so they go through `query` and see every thread this unit of work saved."""

    def __init__(self, uow: UnitOfWork) -> None:
        super().__init__(uow)
        self._markets: dict[str, str] = {}

    def key(self, value: Thread) -> str:
        return value.thread_id

    def save_in(self, market_id: str, thread: Thread) -> None:
        """Save a thread of `market_id` (a new thread's row needs its market)."""
        self._markets[thread.thread_id] = market_id
        self.save(thread)

    def market_of(self, thread_id: str) -> str:
        """The market of a thread this unit of work read or saved."""
        return self._markets[thread_id]

    def _kept(self, rows: list[asyncpg.Record]) -> tuple[Thread, ...]:
        for row in rows:
            self._markets[row["thread_id"]] = row["market_id"]
        return tuple(_thread(r) for r in rows)

    async def _load(self, keys: list[str]) -> dict[str, Thread]:
        rows = await self.conn.fetch(
            "SELECT * FROM threads WHERE thread_id = ANY($1::text[])"
            ' ORDER BY thread_id COLLATE "C" FOR UPDATE',
            keys,
        )
        return {t.thread_id: t for t in self._kept(rows)}

    async def load_of_listings(self, thread_ids: list[str], listing_ids: list[str]) -> None:
        """Load and lock many threads at once, in id order, but only threads of `listing_ids`
        (locked already): a command naming another listing's thread must not lock it, or two
        batches could wait on each other's listings. Such a thread reads as absent here."""
        rows = await self.conn.fetch(
            "SELECT * FROM threads WHERE thread_id = ANY($1::text[]) AND listing_id = ANY($2::text[])"
            ' ORDER BY thread_id COLLATE "C" FOR UPDATE',
            thread_ids,
            listing_ids,
        )
        found = {t.thread_id: t for t in self._kept(rows)}
        for thread_id in thread_ids:
            if not self.seen(thread_id):
                self._seen[thread_id] = found.get(thread_id)

    async def open_on(self, listing_id: str) -> tuple[Thread, ...]:
        rows = await self.query(
            "SELECT * FROM threads WHERE listing_id = $1 AND status = 'open' ORDER BY thread_id FOR UPDATE",
            listing_id,
        )
        return self._kept(rows)

    async def exists(self, listing_id: str, buyer: str, epoch: int) -> bool:
        rows = await self.query(
            "SELECT 1 FROM threads WHERE listing_id = $1 AND buyer_agent_id = $2 AND epoch = $3 LIMIT 1",
            listing_id,
            buyer,
            epoch,
        )
        return bool(rows)

    async def open_count(self, buyer: str) -> int:
        rows = await self.query(
            "SELECT count(*) AS n FROM threads WHERE buyer_agent_id = $1 AND status = 'open'", buyer
        )
        return int(rows[0]["n"])

    async def due(self, now: datetime, limit: int = 200) -> tuple[Thread, ...]:
        """Open threads past their deadline that no other instance holds (SKIP LOCKED)."""
        rows = await self.query(
            "SELECT * FROM threads WHERE status = 'open' AND deadline <= $1"
            " ORDER BY deadline LIMIT $2 FOR UPDATE SKIP LOCKED",
            now,
            limit,
        )
        return self._kept(rows)

    async def _write(self, values: list[Thread]) -> None:
        unknown = [t.thread_id for t in values if t.thread_id not in self._markets]
        if unknown:
            raise ValueError(f"threads saved with no market (use save_in for a new thread): {unknown}")
        await self.conn.execute(
            _SAVE_THREAD, *columns([_thread_args(self._markets[t.thread_id], t) for t in values])
        )


_SAVE_THREAD = """
        INSERT INTO threads (thread_id, listing_id, market_id, epoch, buyer_agent_id, buyer, seller,
            opened_at, deadline, max_rounds, offers, messages, status, end_reason)
        SELECT thread_id, listing_id, market_id, epoch, buyer_agent_id, buyer::jsonb, seller::jsonb,
            opened_at, deadline, max_rounds, offers::jsonb, messages, status, end_reason
        FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
            $7::text[], $8::timestamptz[], $9::timestamptz[], $10::int[], $11::text[], $12::int[],
            $13::text[], $14::text[])
            AS u(thread_id, listing_id, market_id, epoch, buyer_agent_id, buyer, seller, opened_at,
                deadline, max_rounds, offers, messages, status, end_reason)
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


async def first_deadline(pool: asyncpg.Pool) -> datetime | None:
    """The earliest deadline of an open thread."""
    found: datetime | None = await pool.fetchval("SELECT min(deadline) FROM threads WHERE status = 'open'")
    return found
