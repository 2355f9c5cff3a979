"""A buyer shopping for its wants: candidates from matching listings, opened cheapest first (`shopping`)."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta

from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import Want
from haggle.runtime import markets
from haggle.runtime.outbox import UnitOfWork
from services.agents import store
from services.agents.domain import Negotiation, Principal, Role, purchases, shopping, steps
from services.agents.domain.negotiation import buyer_neg_id
from services.agents.handlers import common


def _matching(principal: Principal, listing: ListingPublished, fulfilled: set[str]) -> Want | None:
    return shopping.matching_want(
        principal.principal_id,
        principal.mandate,
        listing,
        fulfilled,
        principal.refused_listings,
        principal.buying_cap,
    )


async def consider(uow: UnitOfWork, pairs: Sequence[tuple[Principal, ListingPublished]]) -> None:
    """Each listing that matches one of its buyer's wants joins that want's shortlist, and the wants
    that gained one are shopped again (`reshop`), all in a few statements however many pairs.

    A listing is considered for every admitted buyer of its category, and a new buyer for every
    listing, and most pairs match no want: which wants are fulfilled is read only for the buyers some
    of whose wants could match at all. A listing is tried once: a pair already known (a relisted
    listing that failed for this buyer) is not retried."""
    maybe = [(principal, listing) for principal, listing in pairs if _matching(principal, listing, set())]
    if not maybe:
        return
    fulfilled = await store.fulfilled_wants_of(uow.conn, {principal.principal_id for principal, _ in maybe})
    fresh = [
        Negotiation(
            buyer_neg_id(principal.principal_id, listing.listing_id),
            principal.principal_id,
            listing.listing_id,
            Role.BUYER,
            want_id=want.id,
        )
        for principal, listing in maybe
        if (want := _matching(principal, listing, fulfilled.get(principal.principal_id, set())))
    ]
    added = await store.insert_new_negotiations(uow.conn, fresh)
    wants = {(neg.principal_id, neg.want_id) for neg in fresh if neg.neg_id in added and neg.want_id}
    await reshop(uow, wants, shopping.SHOP_SECONDS)


async def reshop(uow: UnitOfWork, wants: Collection[tuple[str, str]], delay: float = 0.0) -> None:
    """Open each (principal, want)'s cheapest waiting candidates into its free places; the rest wait
    or are dropped (`shopping.reshop`)."""
    wake_at = common.now() + timedelta(seconds=delay)
    shortlists = await store.shortlists(uow.conn, wants)
    changed: list[Negotiation] = []
    woken = False
    for shortlist in shortlists.values():
        outcome = shopping.reshop(shortlist, wake_at)
        changed.extend(outcome.changed)
        woken = woken or outcome.woken
    await _save(uow, shopping.Reshopped(tuple(changed), woken))


async def _save(uow: UnitOfWork, outcome: shopping.Reshopped) -> None:
    await store.save_negotiations(uow.conn, outcome.changed)
    if outcome.woken:
        uow.wake.add(common.TURNS_CHANNEL)


async def still_chosen(uow: UnitOfWork, principal: Principal, neg: Negotiation) -> bool:
    """A candidate due to open is ranked again first: a cheaper one published meanwhile goes ahead."""
    if not neg.waiting_to_open or not neg.want_id:
        return True
    await reshop(uow, [(principal.principal_id, neg.want_id)])
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
        await store.save_negotiations(uow.conn, looked.revive)
        for neg in looked.passed_over:
            neg.passed_over()
        await store.save_passed_over(uow.conn, looked.passed_over)
        revived = [(neg, total) for neg, total in revivable if neg.live]
        await _save(uow, shopping.reshop([*shortlist, *revived], common.now()))  # the want, read once
