"""A buyer shopping for its wants: candidates from matching listings, opened cheapest first (`shopping`)."""

from __future__ import annotations

from datetime import timedelta

from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import Want
from haggle.runtime import markets
from haggle.runtime.outbox import UnitOfWork
from services.agents import store
from services.agents.domain import Negotiation, Principal, Role, purchases, shopping, steps
from services.agents.domain.negotiation import buyer_neg_id
from services.agents.handlers import common


async def consider(uow: UnitOfWork, principal: Principal, listing: ListingPublished, want: Want) -> None:
    """A listing matching one of the buyer's wants joins that want's shortlist."""
    neg_id = buyer_neg_id(principal.principal_id, listing.listing_id)
    existing = await store.negotiation(uow.conn, neg_id)
    if existing is not None:
        return  # a listing is tried once (a relisted one that failed for this buyer is not retried)
    fresh = Negotiation(neg_id, principal.principal_id, listing.listing_id, Role.BUYER, want_id=want.id)
    await store.save_negotiation(uow.conn, fresh)
    await reshop(uow, principal, want.id, shopping.SHOP_SECONDS)


async def reshop(uow: UnitOfWork, principal: Principal, want_id: str, delay: float = 0.0) -> None:
    """Open the want's cheapest waiting candidates into its free places; the rest wait or are
    dropped (`shopping.reshop`)."""
    shortlist = await store.shortlist(uow.conn, principal.principal_id, want_id)
    await _save(uow, shopping.reshop(shortlist, common.now() + timedelta(seconds=delay)))


async def _save(uow: UnitOfWork, outcome: shopping.Reshopped) -> None:
    for neg in outcome.changed:
        await store.save_negotiation(uow.conn, neg)
    if outcome.woken:
        uow.wake.add(common.TURNS_CHANNEL)


async def still_chosen(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> bool:
    """A candidate due to open is ranked again first: a cheaper one published meanwhile goes ahead."""
    if not neg.waiting_to_open or not neg.want_id:
        return True
    await reshop(uow, principal, neg.want_id)
    again = await store.negotiation(uow.conn, neg.neg_id)
    return again is not None and again.live and again.retry_at is not None


async def after_turn(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> None:
    """A buyer's negotiation that ended (refused, declined, walked away) makes room for the next
    candidate, or its want's candidates end with it (`shopping.after_ending`)."""
    if want_id := steps.reshops_after_turn(neg):
        shortlist = await store.shortlist(uow.conn, principal.principal_id, want_id)
        await _save(uow, shopping.after_ending(neg, shortlist, common.now()))


async def wake_declined(uow: UnitOfWork, principal: Principal) -> None:
    """A want is open again (money came free, a purchase failed): its untried candidates get another
    look, while the market is open."""
    state = await markets.load(uow.conn, principal.market_id)
    if not purchases.may_start(state.phase_at(common.now())):
        return
    fulfilled = await store.fulfilled_wants(uow.conn, principal.principal_id)
    by_want: dict[str, list[tuple[Negotiation, int]]] = {}
    for neg, total in await store.revival_candidates(uow.conn, principal.principal_id):
        if neg.revivable(fulfilled) and neg.want_id:
            by_want.setdefault(neg.want_id, []).append((neg, total))
    for want_id, revivable in sorted(by_want.items()):
        shortlist = await store.shortlist(uow.conn, principal.principal_id, want_id)
        looked = shopping.revival(shortlist, revivable)
        for neg in looked.revive:
            neg.revive()
            await store.save_negotiation(uow.conn, neg)
        for neg in looked.passed_over:
            neg.passed_over()
        await store.save_passed_over(uow.conn, looked.passed_over)
        revived = [(neg, total) for neg, total in revivable if neg.live]
        await _save(uow, shopping.reshop([*shortlist, *revived], common.now()))  # the want, read once
