"""How a buyer shops for one want: a shortlist of the listings that match it, cheapest tried first. Pure.

Every listing that matches a want becomes a candidate negotiation (waiting, nothing held). At most
`parallel` negotiations per want run at once (being opened, or open); the others wait on a
shortlist of the `shortlist` cheapest (asking price plus the cheapest shipping), and the dearer
ones are dropped. When a negotiation ends without a deal, the next candidate opens: a buyer
tries the next listing instead of giving up on the want. A candidate that is due to open is
ranked again first, so a cheaper listing published meanwhile goes ahead of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from haggle.guard.budget import hold_for as hold_for

SHOP_SECONDS = 1.0
"""A want's first openings wait this long, so listings published together are compared."""
PARALLEL_PER_WANT = 1
SHORTLIST = 8


OPENING_SHARE = 0.7
"""Short of money, a buyer opens only holding 70% of the asking price plus shipping (sellers' floors
sit around two thirds of their asking prices): less would haggle hopelessly and hold the listing."""


def worth_opening(
    held_cents: int, could_hold_cents: int, asking_cents: int, cheapest_shipping_cents: int
) -> bool:
    """Whether to open holding `held_cents`; with money to spare the want could hold `could_hold_cents`."""
    return held_cents > 0 and (
        held_cents >= could_hold_cents or held_cents >= OPENING_SHARE * asking_cents + cheapest_shipping_cents
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


def funded(wants: Sequence[WantPlan], budget_left_cents: int) -> set[str]:
    """Which wants the budget goes to when it cannot cover them all: those already holding, then the
    most surplus per dollar first (a greedy knapsack)."""
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
