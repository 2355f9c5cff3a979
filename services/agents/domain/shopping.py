"""How a buyer shops for one want: a shortlist of the listings that match it, cheapest tried first. Pure.

Every listing that matches a want becomes a candidate negotiation (waiting, nothing held). At most
`parallel` negotiations per want run at once (being opened, or open); the others wait on a
shortlist of the `shortlist` cheapest (asking price plus the cheapest shipping), and the dearer
ones are dropped. When a negotiation ends without a deal, the next candidate opens: a buyer
tries the next listing instead of giving up on the want. A candidate that is due to open is
ranked again first, so a cheaper listing published meanwhile goes ahead of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from haggle.contracts.listing import ListingPublished
from haggle.contracts.mandate import Mandate, Want
from haggle.guard.budget import hold_for as hold_for
from services.agents.domain.negotiation import EndedBecause, Negotiation, Status

SHOP_SECONDS = 1.0
"""A want's first openings wait this long, so listings published together are compared."""
PARALLEL_PER_WANT = 1
SHORTLIST = 8


OPENING_SHARE = 0.7
"""Short of money, a buyer opens only holding 70% of the asking price plus shipping (sellers' floors
sit around two thirds of their asking prices): less would haggle hopelessly and hold the listing."""


def least_worth_holding(asking_cents: int, cheapest_shipping_cents: int) -> int:
    """The least a buyer opens on when it cannot hold the asking price (`OPENING_SHARE`)."""
    return math.ceil(OPENING_SHARE * asking_cents) + cheapest_shipping_cents


def worth_opening(
    held_cents: int, could_hold_cents: int, asking_cents: int, cheapest_shipping_cents: int
) -> bool:
    """Whether to open holding `held_cents`; with money to spare the want could hold `could_hold_cents`."""
    return held_cents > 0 and (
        held_cents >= could_hold_cents
        or held_cents >= least_worth_holding(asking_cents, cheapest_shipping_cents)
    )


@dataclass(frozen=True, slots=True)
class WantPlan:
    want_id: str
    value_cents: int
    """What the want is worth to its buyer (its private max, or the consent cap)."""
    cost_cents: int
    """What its best candidate would take: the hold."""
    holding: bool
    """A thread for it holds money already."""
    least_cents: int = 0
    """The least hold worth opening its best candidate on (`least_worth_holding`); 0: its whole cost."""


def funded(wants: Sequence[WantPlan], budget_left_cents: int) -> set[str]:
    """Which wants the budget goes to when it cannot cover them all: those already holding, then the
    most surplus per dollar first (a greedy knapsack). A want the rest cannot cover in full still gets
    all of it when that is worth opening on (haggling down from the asking price); then none is left."""
    chosen: set[str] = set()
    left = budget_left_cents
    order = sorted(
        wants,
        key=lambda w: (not w.holding, -(w.value_cents - w.cost_cents) / max(1, w.cost_cents), w.want_id),
    )
    for want in order:
        if want.holding or want.cost_cents <= left:
            chosen.add(want.want_id)
            left -= want.cost_cents
        elif 0 < want.least_cents <= left:
            chosen.add(want.want_id)
            left = 0
    return chosen


@dataclass(frozen=True, slots=True)
class Candidate:
    neg_id: str
    total_cents: int
    """What the listing asks, plus its cheapest shipping."""
    started: bool
    """Its opening was sent, or its thread is open: it holds one of the want's places."""


@dataclass(frozen=True, slots=True)
class ShoppingPlan:
    open: tuple[str, ...]
    wait: tuple[str, ...]
    drop: tuple[str, ...]


def plan(
    candidates: Sequence[Candidate], parallel: int = PARALLEL_PER_WANT, shortlist: int = SHORTLIST
) -> ShoppingPlan:
    waiting = sorted((c for c in candidates if not c.started), key=lambda c: (c.total_cents, c.neg_id))
    free = max(0, parallel - sum(c.started for c in candidates))
    chosen, rest = waiting[:free], waiting[free:]
    return ShoppingPlan(
        open=tuple(c.neg_id for c in chosen),
        wait=tuple(c.neg_id for c in rest[:shortlist]),
        drop=tuple(c.neg_id for c in rest[shortlist:]),
    )


HOPELESS_BELOW = 0.5
"""A want does not haggle over a listing asking more than twice its private max."""


def matching_want(
    principal_id: str,
    mandate: Mandate,
    listing: ListingPublished,
    fulfilled: set[str],
    refused_listings: frozenset[str],
    buying_cap: Callable[[str], int],
) -> Want | None:
    """The first unfilled want this listing could satisfy, judged on structured facts only; never a
    listing whose purchase the principal denied or let expire. `buying_cap`: a want id's cap (asked
    only of the wants that match)."""
    if listing.seller_principal_id == principal_id or listing.listing_id in refused_listings:
        return None
    for want in mandate.wants:
        if want.id in fulfilled or not want.matches(listing.title, listing.category):
            continue
        if not listing.condition.at_least(want.min_condition):
            continue
        if buying_cap(want.id) < HOPELESS_BELOW * listing.price_cents:
            continue
        return want
    return None


@dataclass(frozen=True, slots=True)
class BestCandidate:
    """A want's cheapest live candidate, as `funded_wants` ranks it."""

    want_id: str
    buying_cap_cents: int
    asking_cents: int
    cheapest_shipping_cents: int
    holding: bool


def best_candidates(
    live: Iterable[tuple[Negotiation, int, int]], buying_cap: Callable[[str], int]
) -> list[BestCandidate]:
    """Per want with live buyer candidates (each with its listing's asking price and cheapest
    shipping): the one asking least, and whether any of the want's threads holds money already."""
    best: dict[str, tuple[Negotiation, int, int]] = {}
    holding: set[str] = set()
    for neg, asking, cheapest in live:
        if not neg.is_buyer or not neg.live or neg.want_id is None:
            continue
        if neg.reserved_cents > 0:
            holding.add(neg.want_id)
        known = best.get(neg.want_id)
        if known is None or (asking, neg.neg_id) < (known[1], known[0].neg_id):
            best[neg.want_id] = (neg, asking, cheapest)
    return [
        BestCandidate(want_id, buying_cap(want_id), asking, cheapest, want_id in holding)
        for want_id, (_, asking, cheapest) in sorted(best.items())
    ]


def funded_wants(best: Sequence[BestCandidate], budget_left_cents: int) -> set[str]:
    """The wants a buyer's budget goes to first, each costed at what its best candidate would hold
    were money no limit (`funded`)."""
    plans = [
        WantPlan(
            b.want_id,
            b.buying_cap_cents,
            hold_for(b.buying_cap_cents, b.asking_cents, b.cheapest_shipping_cents, free_cents=None),
            b.holding,
            least_worth_holding(b.asking_cents, b.cheapest_shipping_cents),
        )
        for b in best
    ]
    return funded(plans, budget_left_cents)


@dataclass(frozen=True, slots=True)
class Reshopped:
    changed: tuple[Negotiation, ...]
    """The negotiations whose turn or status changed: to save."""
    woken: bool
    """Some were made due: the turn scheduler should look."""


def after_ending(
    ended: Negotiation, shortlist: Sequence[tuple[Negotiation, int]], wake_at: datetime
) -> Reshopped:
    """A buyer's candidate of this want (`shortlist`: its live ones) ended. Its next candidate may
    open (`reshop`), unless it ended because the budget goes to other wants: then every candidate
    of the want waiting to open ends `unfunded` with it. The budget is judged per want, so each of
    them would be opened only to be declined in turn, one scheduled turn each; money coming free
    revives them (`revival`)."""
    if ended.end_reason != EndedBecause.UNFUNDED:
        return reshop(shortlist, wake_at)
    waiting = tuple(neg for neg, _ in shortlist if neg.waiting_to_open)  # live, so still opening
    for neg in waiting:
        neg.end(EndedBecause.UNFUNDED)
    return Reshopped(waiting, False)


def _candidate(neg: Negotiation, total_cents: int) -> Candidate:
    return Candidate(neg.neg_id, total_cents, neg.status is Status.OPEN or neg.reserved_cents > 0)


def reshop(shortlist: Sequence[tuple[Negotiation, int]], wake_at: datetime) -> Reshopped:
    """Apply `plan` to one want's live negotiations (each with its asking price plus cheapest
    shipping): the chosen ones become due at `wake_at`, the waiting ones wait with nothing due, the
    dearer ones not yet started end `outranked`."""
    by_id = {neg.neg_id: neg for neg, _ in shortlist}
    chosen = plan([_candidate(neg, total) for neg, total in shortlist])
    changed: list[Negotiation] = []
    for neg in (by_id[n] for n in chosen.open):
        if neg.retry_at is None:
            neg.retry_at = wake_at
            changed.append(neg)
    woken = bool(changed)
    for neg in (by_id[n] for n in chosen.wait):
        if neg.retry_at is not None:
            neg.retry_at = None
            changed.append(neg)
    for neg in (by_id[n] for n in chosen.drop):
        if neg.status is Status.OPENING:
            neg.end(EndedBecause.OUTRANKED)
            changed.append(neg)
    return Reshopped(tuple(changed), woken)


@dataclass(frozen=True, slots=True)
class Revival:
    revive: tuple[Negotiation, ...]
    passed_over: tuple[Negotiation, ...]


def revival(
    shortlist: Sequence[tuple[Negotiation, int]], revivable: Sequence[tuple[Negotiation, int]]
) -> Revival:
    """One want's revivable candidates (`Negotiation.revivable`) looked at again beside its live ones
    (`shortlist`; each with its total): those its plan would open or keep waiting are revived, and
    the rest are passed over, since reviving them would only drop them again. The outcome is that of
    reviving all and reshopping, without rewriting every candidate a buyer ever had whenever money
    comes free."""
    chosen = plan(
        [
            *(_candidate(neg, total) for neg, total in shortlist),
            *(Candidate(neg.neg_id, total, False) for neg, total in revivable),
        ]
    )
    kept = {*chosen.open, *chosen.wait}
    return Revival(
        tuple(neg for neg, _ in revivable if neg.neg_id in kept),
        tuple(neg for neg, _ in revivable if neg.neg_id not in kept),
    )
