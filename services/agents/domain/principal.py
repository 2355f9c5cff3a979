"""A principal as its agent knows it: the mandate, the key, what the principal refused, the budget. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property

from haggle.contracts import AgentKey
from haggle.contracts.mandate import Mandate, amendment_problems
from services.agents.domain import purchases
from services.agents.domain.budget import Budget
from services.agents.domain.negotiation import Negotiation


@dataclass
class Principal:
    principal_id: str
    market_id: str
    agent_id: str
    variant: str
    mandate: Mandate
    key: AgentKey
    admitted: bool
    committed_cents: int
    refused_listings: frozenset[str] = frozenset()
    refused_wants: frozenset[str] = frozenset()

    def buying_cap(self, want_id: str) -> int:
        refused = want_id in self.refused_wants
        return purchases.buying_cap(self._max_price[want_id], self.mandate.auto_approve_limit_cents, refused)

    @cached_property
    def _max_price(self) -> dict[str, int]:
        """Each want's max price (a mandate does not change once assigned)."""
        return {want.id: want.max_price_cents for want in self.mandate.wants}

    def budget(self, holding: Iterable[Negotiation]) -> Budget:
        """The budget with the holds of these negotiations (its live buyer ones count)."""
        holds = {n.neg_id: n.reserved_cents for n in holding if n.is_buyer and n.live}
        return Budget(self.mandate.budget_cents, self.committed_cents, holds)

    def spend(self, budget: Budget) -> None:
        """Take a budget's commitment as this principal's (saved with it)."""
        self.committed_cents = budget.committed_cents

    def amend(self, mandate: Mandate) -> list[str]:
        """Take a second mandate if the mandate contract allows the change; else why not
        (`amendment_problems`), the mandate kept."""
        problems = amendment_problems(self.mandate, mandate)
        if not problems:
            self.mandate = mandate
        return problems

    def refuse_purchase(self, listing_id: str, want_id: str | None) -> None:
        """The principal did not consent to buying this listing for this want (`purchases`)."""
        self.refused_listings = self.refused_listings | {listing_id}
        if want_id is not None:
            self.refused_wants = self.refused_wants | {want_id}

    def listing_id_for(self, item_id: str) -> str:
        return f"{self.principal_id}.{item_id}"

    def item_id_of(self, listing_id: str) -> str | None:
        """The item of ours a listing id names; None: not one of our listings."""
        prefix = f"{self.principal_id}."
        return listing_id[len(prefix) :] if listing_id.startswith(prefix) else None
