"""A buyer shopping for its wants: candidates from matching listings, opened cheapest first (`shopping`)."""

from __future__ import annotations

from datetime import timedelta

from asyncpg import Record

from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import Want
from haggle.runtime import markets
from haggle.runtime.outbox import UnitOfWork
from services.agents import purchases, shopping, store
from services.agents.handlers import common
from services.agents.store import Negotiation, Principal

REVIVABLE = ("declined_to_open", "want_fulfilled", "outranked")
"""Why a candidate ended without being tried: it gets another look when its want is open again."""
MAX_REOPENS = 5


async def consider(uow: UnitOfWork, principal: Principal, listing: ListingPublished, want: Want) -> None:
    """A listing matching one of the buyer's wants joins that want's shortlist."""
    neg_id = store.buyer_neg_id(principal.principal_id, listing.listing_id)
    existing = await store.negotiation(uow.conn, neg_id)
    if existing is not None:
        return  # a listing is tried once (a relisted one that failed for this buyer is not retried)
    fresh = Negotiation(neg_id, principal.principal_id, listing.listing_id, "buyer", want_id=want.id)
    await store.save_negotiation(uow.conn, fresh)
    await reshop(uow, principal, want.id, shopping.SHOP_SECONDS)


async def reshop(uow: UnitOfWork, principal: Principal, want_id: str, delay: float = 0.0) -> None:
    """Open the want's cheapest waiting candidates into its free places; the rest wait or are dropped."""
    rows = await store.shortlist(uow.conn, principal.principal_id, want_id)
    candidates = [
        shopping.Candidate(
            r["neg_id"],
            int(r["asking"]) + int(r["cheapest"]),
            r["status"] == "open" or r["reserved_cents"] > 0,
        )
        for r in rows
    ]
    chosen = shopping.plan(candidates)
    due = {r["neg_id"]: r["retry_at"] for r in rows}
    waking = [n for n in chosen.open if due[n] is None]
    if waking:
        await store.set_retry(uow.conn, waking, common.now() + timedelta(seconds=delay))
        uow.wake.add(common.TURNS_CHANNEL)
    parked = [n for n in chosen.wait if due[n] is not None]
    if parked:
        await store.set_retry(uow.conn, parked, None)
    if chosen.drop:
        await store.end_waiting(uow.conn, chosen.drop, "outranked")


def _started(row: Record) -> bool:
    return bool(row["status"] == "open" or row["reserved_cents"] > 0)


async def still_chosen(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> bool:
    """A candidate due to open is ranked again first: a cheaper one published meanwhile goes ahead."""
    if neg.role != "buyer" or neg.thread_id is not None or neg.reserved_cents or not neg.want_id:
        return True
    await reshop(uow, principal, neg.want_id)
    again = await store.negotiation(uow.conn, neg.neg_id)
    return again is not None and again.live and again.retry_at is not None


async def after_turn(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> None:
    """A buyer's negotiation that ended (refused, declined, walked away) makes room for the next candidate."""
    if neg.role == "buyer" and neg.status == "ended" and neg.want_id:
        await reshop(uow, principal, neg.want_id)


async def wake_declined(uow: UnitOfWork, principal: Principal) -> None:
    """A want is open again (money came free, a purchase failed): its untried candidates get another
    look, while the market is open."""
    state = await markets.load(uow.conn, principal.market_id)
    if not purchases.may_start(state.phase_at(common.now())):
        return
    fulfilled = await store.fulfilled_wants(uow.conn, principal.principal_id)
    wants: set[str] = set()
    for neg in await store.negotiations_of(uow.conn, principal.principal_id, live_only=False):
        untried = neg.status == "ended" and neg.end_reason in REVIVABLE and neg.role == "buyer"
        if untried and neg.want_id and neg.want_id not in fulfilled and neg.attempts < MAX_REOPENS:
            neg.status, neg.end_reason, neg.retry_at, neg.reserved_cents = "opening", None, None, 0
            neg.attempts += 1
            await store.save_negotiation(uow.conn, neg)
            wants.add(neg.want_id)
    for want_id in sorted(wants):
        await reshop(uow, principal, want_id)
