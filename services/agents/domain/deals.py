"""A deal agreed, and a purchase closed: what each does to the buyer's other threads and budget. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from haggle.contracts.goods import Condition
from haggle.contracts.settlement import AcceptGoods, DisputeReason, OpenDispute
from services.agents.domain.budget import Budget, BudgetRefused
from services.agents.domain.negotiation import EndedBecause, Negotiation, Role


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


@dataclass
class Deal:
    """A deal this principal is party to, as its agent keeps it (for settlement and the budget)."""

    deal_id: str
    principal_id: str
    role: Role
    listing_id: str
    want_id: str | None
    amount_cents: int
    """The buyer's total (price plus shipping it pays), or the seller's price."""
    shipping_method: str
    status: DealStatus = DealStatus.AGREED

    def close(self, to: DealStatus, budget: Budget) -> Budget | None:
        """Settlement's outcome; the budget after it, or None when the deal was closed already. A
        failed or refunded purchase gives its money back; a settled one keeps it spent."""
        if self.status in CLOSED:
            return None
        self.status = to
        if not self.gives_money_back:
            return budget
        try:
            return budget.refund(self.amount_cents)
        except BudgetRefused:
            return budget.refund(budget.committed_cents)  # never below nothing committed

    @property
    def gives_money_back(self) -> bool:
        return self.role is Role.BUYER and self.status in GIVES_MONEY_BACK


def inspection(
    deal_id: str, listed: Condition, delivered: Condition, principal_inspects: bool
) -> AcceptGoods | OpenDispute | None:
    """The buyer's agent on what arrived, against the listing's condition enum: a worse condition is
    disputed; one as described is accepted, unless the principal inspects the goods themselves
    (`Mandate.inspects_goods`): then nothing, and the inspection window is theirs."""
    if not delivered.at_least(listed):
        detail = f"listed as {listed.value}, arrived {delivered.value}"
        return OpenDispute(deal_id=deal_id, reason=DisputeReason.CONDITION_WORSE, detail=detail)
    return None if principal_inspects else AcceptGoods(deal_id=deal_id)
