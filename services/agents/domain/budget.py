"""A buyer's budget: what its deals took (committed) and what its live negotiations hold. Pure.

A buyer thread holds (`reserve`) the most it could commit from its opening to its end, so several
threads at once can never promise more than the budget. A deal turns its thread's hold into a
commitment (`commit`); a thread that ends without a deal gives its hold back (`release`); a
purchase that fails or is refunded gives its commitment back (`refund`). Every operation returns
a new `Budget`; the handlers save what it returns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType


class BudgetRefusal(StrEnum):
    OVER_FREE = "over_free"
    """A hold larger than what is free."""
    OVER_HELD_AND_FREE = "over_held_and_free"
    """A commitment larger than the thread's hold plus what is free."""
    OVER_COMMITTED = "over_committed"
    """A refund larger than what is committed."""
    NEGATIVE = "negative"


class BudgetRefused(ValueError):
    def __init__(self, reason: BudgetRefusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


def _frozen(holds: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType({k: v for k, v in holds.items() if v})


@dataclass(frozen=True)
class Budget:
    total_cents: int
    committed_cents: int = 0
    holds: Mapping[str, int] = field(default_factory=dict)
    """Live negotiation id → the cents it holds."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "holds", _frozen(self.holds))

    @property
    def held_cents(self) -> int:
        return sum(self.holds.values())

    def held_by(self, neg_id: str) -> int:
        return self.holds.get(neg_id, 0)

    @property
    def free_cents(self) -> int:
        """What no deal took and no live negotiation holds (never below zero)."""
        return max(0, self.total_cents - self.committed_cents - self.held_cents)

    def free_for(self, neg_id: str) -> int:
        """What `neg_id` could hold: the free money plus what it holds already."""
        return max(0, self.total_cents - self.committed_cents - (self.held_cents - self.held_by(neg_id)))

    def reserve(self, neg_id: str, cents: int) -> Budget:
        """`neg_id` holds `cents` (replacing what it held)."""
        _not_negative(cents)
        if cents > self.free_for(neg_id):
            raise BudgetRefused(BudgetRefusal.OVER_FREE, f"hold {cents} > free {self.free_for(neg_id)}")
        return replace(self, holds={**self.holds, neg_id: cents})

    def release(self, neg_id: str) -> Budget:
        """`neg_id` ended without a deal: its hold comes free."""
        return replace(self, holds={k: v for k, v in self.holds.items() if k != neg_id})

    def commit(self, neg_id: str, cents: int) -> Budget:
        """A deal of `cents` on `neg_id`: its hold goes, the deal's amount is committed."""
        _not_negative(cents)
        could = self.free_for(neg_id)
        if cents > could:
            raise BudgetRefused(BudgetRefusal.OVER_HELD_AND_FREE, f"deal {cents} > held and free {could}")
        return replace(self.release(neg_id), committed_cents=self.committed_cents + cents)

    def overdrawn(self, neg_id: str, cents: int) -> Budget:
        """A deal the referee agreed beyond what `commit` allows (the guard should make this
        impossible): the money is spent all the same, so it is recorded, never refused."""
        _not_negative(cents)
        return replace(self.release(neg_id), committed_cents=self.committed_cents + cents)

    def refund(self, cents: int) -> Budget:
        """A purchase that failed or was refunded: its amount is free again."""
        _not_negative(cents)
        if cents > self.committed_cents:
            raise BudgetRefused(
                BudgetRefusal.OVER_COMMITTED, f"refund {cents} > committed {self.committed_cents}"
            )
        return replace(self, committed_cents=self.committed_cents - cents)


def _not_negative(cents: int) -> None:
    if cents < 0:
        raise BudgetRefused(BudgetRefusal.NEGATIVE, f"{cents} cents")
