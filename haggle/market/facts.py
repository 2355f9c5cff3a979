"""The facts of a finished market, as the runner collected them from the event streams.

Plain data, validated when built: every deal names a listing of the
population and two of its principals, every settlement, approval and dispute
names a deal, and the runner's invariant checks are all present. The report
(`haggle.market.report`) turns these facts into figures.
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import EndReason, Party, PricedTerms
from haggle.contracts.settlement import Decider, DisputeOutcome, DisputeReason
from haggle.market.population import Population

REQUIRED_INVARIANTS = ("ledger_balanced", "no_listing_sold_twice", "no_mandate_broken")
"""Checks the runner makes on the live system; a report without any of them is refused."""

_FROZEN = ConfigDict(frozen=True, extra="forbid")


class FactsError(Exception):
    """Facts that contradict each other or the population; the report cannot be trusted on them.

    Not a ValueError, so pydantic lets it through its validators as itself."""


class SettlementOutcome(StrEnum):
    RELEASED = "released"
    REFUNDED = "refunded"
    ESCROW_FAILED = "escrow_failed"
    OPEN = "open"


class ApprovalAnswer(StrEnum):
    GRANTED = "granted"
    DENIED = "denied"
    EXPIRED = "expired"
    PENDING = "pending"


class NegotiationFact(BaseModel):
    model_config = _FROZEN
    thread_id: str
    listing_id: str
    buyer_principal_id: str
    seller_principal_id: str
    rounds: int = Field(ge=0)
    max_rounds: int = Field(default=0, ge=0, description="the thread's round cap (0: unknown)")
    end_reason: EndReason | None = Field(description="None: still open when the market stopped")


class DealFact(PricedTerms, BaseModel):
    model_config = _FROZEN
    deal_id: str
    listing_id: str
    thread_id: str
    buyer_principal_id: str
    seller_principal_id: str
    price_cents: int = Field(strict=True, gt=0)
    shipping_method: ShippingMethod
    shipping_cost_cents: int = Field(strict=True, ge=0)
    shipping_paid_by: Party
    rounds: int = Field(default=0, ge=0)
    want_id: str | None = Field(default=None, description="the want it fills; None: the report infers it")


class SettlementFact(BaseModel):
    model_config = _FROZEN
    deal_id: str
    outcome: SettlementOutcome
    reason: str = Field(default="", max_length=200, description="escrow failure or refund reason")


class ApprovalFact(BaseModel):
    model_config = _FROZEN
    approval_id: str
    deal_id: str
    principal_id: str
    amount_cents: int = Field(strict=True, ge=0)
    answer: ApprovalAnswer
    answer_seconds: float | None = Field(default=None, ge=0, description="request to answer or expiry")


class DisputeFact(BaseModel):
    model_config = _FROZEN
    deal_id: str
    reason: DisputeReason
    outcome: DisputeOutcome | None = None
    decided_by: Decider | None = None


class ModelUsageFact(BaseModel):
    """Tokens the market's model brains used, and their estimated cost (the agents' price table)."""

    model_config = _FROZEN
    input_tokens: NonNegativeInt = 0
    output_tokens: NonNegativeInt = 0
    cache_read_tokens: NonNegativeInt = 0
    cache_write_tokens: NonNegativeInt = 0
    micro_dollars: NonNegativeInt = 0
    negotiations: NonNegativeInt = Field(default=0, description="agent negotiations that asked a model")
    tokens_by_principal: dict[str, NonNegativeInt] = Field(default_factory=dict)
    micro_dollars_by_principal: dict[str, NonNegativeInt] = Field(default_factory=dict)


class MarketFacts(BaseModel):
    """One market's facts. `refusals` is source (e.g. referee, guard) → reason → count."""

    model_config = _FROZEN
    market_id: str
    population: Population
    listing_ids: tuple[str, ...] = Field(description="the population's listings that were published")
    negotiations: tuple[NegotiationFact, ...] = ()
    deals: tuple[DealFact, ...] = Field(default=(), description="in the order they were agreed")
    settlements: tuple[SettlementFact, ...] = ()
    approvals: tuple[ApprovalFact, ...] = ()
    disputes: tuple[DisputeFact, ...] = ()
    refusals: dict[str, dict[str, NonNegativeInt]] = Field(default_factory=dict)
    consent_limits_cents: dict[str, NonNegativeInt] = Field(
        default_factory=dict,
        description="the most a principal would approve paying (absent: no limit beyond the mandate)",
    )
    invariants: dict[str, bool]
    model_usage: ModelUsageFact = ModelUsageFact()

    @model_validator(mode="after")
    def _consistent(self) -> MarketFacts:
        problems = [*self._missing_invariants(), *self._unknown_references(), *self._deal_problems()]
        if problems:
            raise FactsError("; ".join(problems))
        return self

    def _missing_invariants(self) -> list[str]:
        return [
            f"invariant {name} was not checked" for name in REQUIRED_INVARIANTS if name not in self.invariants
        ]

    def _unknown_references(self) -> list[str]:
        listings = {item.id for item in self.population.listings()}
        principals = {p.id for p in self.population.principals}
        deals = {deal.deal_id for deal in self.deals}
        found = [f"listing {lid} is not in the population" for lid in self.listing_ids if lid not in listings]
        for n in self.negotiations:
            if n.listing_id not in listings:
                found.append(f"negotiation {n.thread_id}: unknown listing {n.listing_id}")
        named: list[tuple[str, str]] = [("settlement", s.deal_id) for s in self.settlements]
        named += [("approval", a.deal_id) for a in self.approvals]
        named += [("dispute", d.deal_id) for d in self.disputes]
        found += [f"{kind} names unknown deal {deal_id}" for kind, deal_id in named if deal_id not in deals]
        for deal in self.deals:
            if deal.buyer_principal_id not in principals:
                found.append(f"deal {deal.deal_id}: unknown buyer {deal.buyer_principal_id}")
        for approval in self.approvals:
            if approval.principal_id not in principals:
                found.append(f"approval {approval.approval_id}: unknown principal {approval.principal_id}")
        return found

    def _deal_problems(self) -> list[str]:
        listings = {item.id: item for item in self.population.listings()}
        wants = {want.id: want for want in self.population.wants()}
        found: list[str] = []
        seen: set[str] = set()
        for deal in self.deals:
            item = listings.get(deal.listing_id)
            if deal.deal_id in seen:
                found.append(f"deal {deal.deal_id} appears twice")
            seen.add(deal.deal_id)
            if item is None or item.seller_id != deal.seller_principal_id:
                found.append(f"deal {deal.deal_id}: listing {deal.listing_id} is not the seller's")
            elif (deal.shipping_method, deal.shipping_cost_cents) not in {
                (o.method, o.cost_cents) for o in item.shipping
            }:
                found.append(f"deal {deal.deal_id}: shipping terms the listing does not offer")
            want = wants.get(deal.want_id) if deal.want_id is not None else None
            if deal.want_id is not None and (want is None or want.buyer_id != deal.buyer_principal_id):
                found.append(f"deal {deal.deal_id}: want {deal.want_id} is not the buyer's")
        settled = Counter(s.deal_id for s in self.settlements)
        found += [f"deal {deal_id} settled twice" for deal_id, n in sorted(settled.items()) if n > 1]
        return found
