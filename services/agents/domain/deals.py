"""A deal agreed, and a purchase closed: what each does to the buyer's other threads and budget. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from services.agents.domain.budget import Budget, BudgetRefused
from services.agents.domain.negotiation import EndedBecause, Negotiation


class DealStatus(StrEnum):
    AGREED = "agreed"
    FAILED = "failed"
    REFUNDED = "refunded"
    SETTLED = "settled"


CLOSED = frozenset({DealStatus.FAILED, DealStatus.REFUNDED, DealStatus.SETTLED})
GIVES_MONEY_BACK = frozenset({DealStatus.FAILED, DealStatus.REFUNDED})


@dataclass(frozen=True, slots=True)
class DealAgreedOutcome:
    budget: Budget
    withdraw: tuple[Negotiation, ...]
    """Other threads of the same want, open with the referee: the agent withdraws from them."""
    dropped: tuple[Negotiation, ...]
    """Other candidates of the same want not opened yet: ended here (`want_fulfilled`)."""
    overdrawn: bool
    """The deal took more than held plus free (`Budget.commit` refused it); recorded all the same."""


def buyer_deal_agreed(
    won: Negotiation, amount_cents: int, budget: Budget, others: Iterable[Negotiation]
) -> DealAgreedOutcome:
    """One want, one purchase: the deal's amount is committed, and the other listings this want was
    haggling over give back what they held."""
    won.deal_agreed()
    try:
        after, overdrawn = budget.commit(won.neg_id, amount_cents), False
    except BudgetRefused:
        after, overdrawn = budget.overdrawn(won.neg_id, amount_cents), True
    withdraw: list[Negotiation] = []
    dropped: list[Negotiation] = []
    for other in others:
        if not other.is_buyer or other.want_id != won.want_id or other.neg_id == won.neg_id or not other.live:
            continue
        after = after.release(other.neg_id)
        other.reserved_cents = 0
        if other.thread_id is not None:
            withdraw.append(other)
        else:
            other.end(EndedBecause.WANT_FULFILLED)
            dropped.append(other)
    return DealAgreedOutcome(after, tuple(withdraw), tuple(dropped), overdrawn)


def seller_deal_agreed(won: Negotiation) -> None:
    won.deal_agreed()


def close_deal(
    status: DealStatus, now_status: DealStatus, role: str, amount_cents: int, budget: Budget
) -> Budget | None:
    """A purchase reaching `now_status`; the budget after it, or None when nothing changes (already
    closed). A failed or refunded purchase gives its money back; a settled one keeps it spent."""
    if status in CLOSED:
        return None
    if role != "buyer" or now_status not in GIVES_MONEY_BACK:
        return budget
    try:
        return budget.refund(amount_cents)
    except BudgetRefused:
        return budget.refund(budget.committed_cents)  # never below nothing committed
