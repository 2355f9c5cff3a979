"""A principal as its agent knows it: the mandate, the key, what the principal refused, the budget. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
        most = self._max_price()[want_id]
        return purchases.buying_cap(most, self.mandate.auto_approve_limit_cents, refused)

    def _max_price(self) -> dict[str, int]:
        """Each want's max price, looked up once per mandate (an amendment replaces the mandate)."""
        cached: tuple[Mandate, dict[str, int]] | None = self.__dict__.get("_max_price_of")
        if cached is None or cached[0] is not self.mandate:
            cached = (self.mandate, {want.id: want.max_price_cents for want in self.mandate.wants})
            self.__dict__["_max_price_of"] = cached
        return cached[1]

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
