"""The agents' pure domain: a negotiation as one agent sees it, the budget, and the rules of
shopping, purchases and one turn. Imports no database, broker or HTTP client: the service's
handlers load state, call these functions and save what they return, and an in-process engine
can hold the same state in memory and call the same functions (see README.md)."""

from services.agents.domain.budget import Budget, BudgetRefusal, BudgetRefused
from services.agents.domain.negotiation import (
    TRANSITIONS,
    EndedBecause,
    IllegalTransition,
    Negotiation,
    Role,
    Status,
    buyer_neg_id,
    seller_neg_id,
)
from services.agents.domain.principal import Principal

__all__ = [
    "TRANSITIONS",
    "Budget",
    "BudgetRefusal",
    "BudgetRefused",
    "EndedBecause",
    "IllegalTransition",
    "Negotiation",
    "Principal",
    "Role",
    "Status",
    "buyer_neg_id",
    "seller_neg_id",
]
