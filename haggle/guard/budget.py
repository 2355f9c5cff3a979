"""What a buyer's open negotiation holds of its principal's budget. Pure.

A buyer thread holds, from its opening to its end, the most it could ever commit: so several
threads at once can never promise more than the budget. The agents service holds it for its own
buyers, the agent gateway for the buyers we do not run; the rule is this one function.
"""

from __future__ import annotations

from collections.abc import Iterable

from haggle.contracts.goods import ShippingOption


def cheapest_shipping(options: Iterable[ShippingOption]) -> int:
    return min((option.cost_cents for option in options), default=0)


def hold_for(
    buying_cap_cents: int,
    asking_cents: int,
    cheapest_shipping_cents: int,
    *,
    free_cents: int | None = None,
) -> int:
    """What a buyer thread holds of the budget from its opening to its end: the most it can commit,
    never more than the asking price plus the cheapest shipping (a brain may accept the asking price),
    nor than `free_cents` (None: no budget limit, to rank wants as if money were plenty)."""
    most = min(buying_cap_cents, asking_cents + cheapest_shipping_cents)
    return max(0, most if free_cents is None else min(most, free_cents))


def free_cents(budget_cents: int, committed_cents: int, held_cents: int) -> int:
    """Budget less agreed deals less what live negotiations hold."""
    return max(0, budget_cents - committed_cents - held_cents)
