"""The market report: what happened, what it was worth, and how close to the best it came.

Definitions:
- GMV agreed: the sum of the item prices of every deal agreed (shipping not
  included). GMV settled: the same sum over deals whose escrow was released
  to the seller — the value that really changed hands.
- Completion: deals agreed / negotiations, and listings sold (released) /
  listings published.
- Rounds: over all negotiations; p90 is the nearest-rank 90th percentile.
- Median price: of deals agreed; for an even count, the lower middle price.
- Surplus counts only released deals, once per listing. A buyer gains its
  want's private max price minus what it paid in total; a seller gains what it
  netted minus its private floor. A deal fills a want (the one it names, else
  the buyer's highest-valued open want it satisfies) only when the item's TRUE
  condition meets the want's minimum; otherwise the buyer valued what it got
  at nothing. Refunded deals count zero. Realised surplus is therefore at most
  the optimum (`haggle.market.optimum`), which the report checks.
- Efficiency: realised surplus / optimum; None when the optimum is zero. At
  most 1; it can be zero or negative when released deals destroyed value (a
  buyer kept an item worse than it wanted, shipping cost more than the trade
  gained).
- Per variant: deals per principal (as buyer plus as seller), mean price index
  (price / the catalogue value at the listed condition) as seller and as
  buyer, and the variant's share of the realised surplus.
"""

from __future__ import annotations

import json
import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from haggle.market.facts import ApprovalAnswer, DealFact, MarketFacts, SettlementOutcome
from haggle.market.goods import SaleItem, WantSpec
from haggle.market.optimum import optimum, within_budgets
from haggle.market.waterfall import lost_cents

_FROZEN = ConfigDict(frozen=True, extra="forbid")
BUDGET_OPTIMUM_MAX_EDGES = 20_000
"""Above this many feasible trades the budget-bound optimum is not computed (seconds to minutes)."""


class Completion(BaseModel):
    model_config = _FROZEN
    deals_per_negotiation: float | None
    listings_sold_share: float | None


class Rounds(BaseModel):
    model_config = _FROZEN
    median: float | None
    p90: int | None


class Money(BaseModel):
    model_config = _FROZEN
    gmv_agreed_cents: int
    gmv_settled_cents: int
    median_price_cents: int | None


class TokenUse(BaseModel):
    """What the model brains cost: tokens, the share of prompt tokens read from cache, a dollar estimate."""

    model_config = _FROZEN
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_hit_ratio: float | None = None
    dollars_estimate: float = 0.0
    tokens_per_negotiation: float | None = None
    tokens_per_deal: float | None = None


def _token_use(facts: MarketFacts) -> TokenUse:
    u = facts.model_usage
    prompt = u.input_tokens + u.cache_read_tokens + u.cache_write_tokens
    total = prompt + u.output_tokens
    return TokenUse(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_read_tokens=u.cache_read_tokens,
        cache_write_tokens=u.cache_write_tokens,
        cache_hit_ratio=_share(u.cache_read_tokens, prompt),
        dollars_estimate=round(u.micro_dollars / 1_000_000, 6),
        tokens_per_negotiation=round(total / u.negotiations, 1) if u.negotiations else None,
        tokens_per_deal=round(total / len(facts.deals), 1) if facts.deals and total else None,
    )


class Approvals(BaseModel):
    model_config = _FROZEN
    requested: int
    granted: int
    denied: int
    expired: int
    pending: int
    answer_seconds_median: float | None
    answer_seconds_p90: float | None
    """Request to answer (or to expiry), over the answered requests."""


class Disputes(BaseModel):
    model_config = _FROZEN
    total: int
    by_reason: dict[str, int]
    by_outcome: dict[str, int]


class Settlements(BaseModel):
    model_config = _FROZEN
    released: int
    refunded: int
    escrow_failed: int
    open: int
    escrow_failures_by_reason: dict[str, int]
    refunds_by_reason: dict[str, int]


class Surplus(BaseModel):
    model_config = _FROZEN
    buyers_cents: int
    sellers_cents: int
    realised_cents: int
    optimum_cents: int
    efficiency: float | None
    optimum_trades: int
    wants_filled: int
    budget_optimum_cents: int | None
    """The optimum if every buyer must pay for its trades within its budget at the sellers' floors
    (None: the market is too large to solve); what a market of these budgets could at most realise."""
    budget_optimum_gap: float | None
    budget_efficiency: float | None
    lost_cents: dict[str, int]
    """Cause → cents between the optimum and the realised surplus; sums to exactly their difference."""


class PrincipalStats(BaseModel):
    """One person's market: what a report card shows."""

    model_config = _FROZEN
    principal_id: str
    variant: str
    deals_as_buyer: int
    deals_as_seller: int
    bought_price_index: float | None
    """Mean price paid / the catalogue's reference value at the listed condition."""
    sold_price_index: float | None
    surplus_cents: int


class VariantStats(BaseModel):
    model_config = _FROZEN
    variant: str
    principals: int
    deals: int
    deals_per_principal: float
    seller_price_index: float | None
    buyer_price_index: float | None
    surplus_cents: int
    surplus_share: float | None
    model_tokens: int = 0
    dollars_estimate: float = 0.0


class MarketReport(BaseModel):
    model_config = _FROZEN
    market_id: str
    population_digest: str
    participants: int
    listings_planned: int
    listings_published: int
    wants: int
    negotiations: int
    deals_agreed: int
    deals_settled: int
    listings_sold: int
    completion: Completion
    rounds: Rounds
    money: Money
    approvals: Approvals
    disputes: Disputes
    settlements: Settlements
    refused_moves: int
    refusals: dict[str, dict[str, int]]
    surplus: Surplus
    variants: tuple[VariantStats, ...]
    principals: tuple[PrincipalStats, ...]
    invariants: dict[str, bool]
    ok: bool
    tokens: TokenUse = TokenUse()
    """What the model brains used and cost (zero for a market of strategies)."""

    def to_json(self) -> str:
        """Stable JSON: fields in declaration order, every mapping sorted by key."""
        return json.dumps(self.model_dump(mode="json"), indent=2) + "\n"


@dataclass(frozen=True, slots=True)
class DealSurplus:
    deal: DealFact
    buyer_cents: int
    seller_cents: int
    want_id: str | None


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole > 0 else None


def _sorted_counts(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def p90(values: Sequence[int]) -> int | None:
    """Nearest-rank 90th percentile: the smallest value with at least 90% of values at or below it."""
    if not values:
        return None
    return sorted(values)[math.ceil(0.9 * len(values)) - 1]


def _satisfies(want: WantSpec, item: SaleItem, deal: DealFact) -> bool:
    return (
        want.buyer_id == deal.buyer_principal_id != item.seller_id
        and want.matches(item)
        and item.true_condition.at_least(want.min_condition)
    )


def _filled_want(
    deal: DealFact, item: SaleItem, wants: dict[str, WantSpec], filled: set[str]
) -> WantSpec | None:
    if deal.want_id is not None:
        candidates: Iterable[WantSpec] = (wants[deal.want_id],)
    else:
        candidates = (w for w in wants.values() if w.buyer_id == deal.buyer_principal_id)
    usable = [w for w in candidates if w.id not in filled and _satisfies(w, item, deal)]
    return min(usable, key=lambda w: (-w.max_price_cents, w.id)) if usable else None


def realised_surplus(facts: MarketFacts) -> list[DealSurplus]:
    """Buyer and seller surplus of each released deal, first deal per listing only, in agreement order."""
    released = {s.deal_id for s in facts.settlements if s.outcome is SettlementOutcome.RELEASED}
    items = {item.id: item for item in facts.population.listings()}
    wants = {want.id: want for want in facts.population.wants()}
    filled: set[str] = set()
    sold: set[str] = set()
    found: list[DealSurplus] = []
    for deal in facts.deals:
        if deal.deal_id not in released or deal.listing_id in sold:
            continue
        sold.add(deal.listing_id)
        item = items[deal.listing_id]
        want = _filled_want(deal, item, wants, filled)
        value = 0 if want is None else want.max_price_cents
        if want is not None:
            filled.add(want.id)
        buyer, seller = value - deal.buyer_total_cents, deal.seller_net_cents - item.floor_cents
        found.append(DealSurplus(deal, buyer, seller, None if want is None else want.id))
    return found


def _surplus(facts: MarketFacts, gains: list[DealSurplus]) -> Surplus:
    """Split, efficiency and the waterfall (`haggle.market.waterfall`)."""
    wants, listings = facts.population.wants(), facts.population.listings()
    best = optimum(wants, listings, facts.consent_limits_cents)
    buyers = sum(g.buyer_cents for g in gains)
    sellers = sum(g.seller_cents for g in gains)
    realised = buyers + sellers
    if realised > best.surplus_cents:
        raise AssertionError(f"realised surplus {realised} above the optimum {best.surplus_cents}: a bug")
    budgets = {p.id: p.budget_cents for p in facts.population.principals}
    bounded = (
        within_budgets(wants, listings, budgets, facts.consent_limits_cents)
        if best.feasible_edges <= BUDGET_OPTIMUM_MAX_EDGES
        else None
    )
    realised_gains = [(g.deal, g.buyer_cents + g.seller_cents, g.want_id) for g in gains]
    lost = lost_cents(facts, realised_gains, bounded.best if bounded else best)
    if bounded is not None and best.surplus_cents > bounded.best.surplus_cents:
        lost = dict(
            sorted({**lost, "beyond_budget": best.surplus_cents - bounded.best.surplus_cents}.items())
        )
    bounded_cents = bounded.best.surplus_cents if bounded else None
    return Surplus(
        buyers_cents=buyers,
        sellers_cents=sellers,
        realised_cents=realised,
        optimum_cents=best.surplus_cents,
        efficiency=realised / best.surplus_cents if best.surplus_cents > 0 else None,
        optimum_trades=len(best.matches),
        wants_filled=sum(g.want_id is not None for g in gains),
        budget_optimum_cents=bounded_cents,
        budget_optimum_gap=round(bounded.gap, 4) if bounded else None,
        budget_efficiency=realised / bounded_cents if bounded_cents else None,
        lost_cents=lost,
    )


def _mean(values: list[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _variant_stats(
    facts: MarketFacts, gains: list[DealSurplus], total_surplus: int
) -> tuple[VariantStats, ...]:
    variant_of = {p.id: p.variant for p in facts.population.principals}
    items = {item.id: item for item in facts.population.listings()}
    rows = []
    for variant in facts.population.variants:
        members = sum(v == variant for v in variant_of.values())
        sold = [d for d in facts.deals if variant_of[d.seller_principal_id] == variant]
        bought = [d for d in facts.deals if variant_of[d.buyer_principal_id] == variant]
        usage = facts.model_usage
        principals = [pid for pid, v in variant_of.items() if v == variant]
        surplus = sum(g.seller_cents for g in gains if variant_of[g.deal.seller_principal_id] == variant)
        surplus += sum(g.buyer_cents for g in gains if variant_of[g.deal.buyer_principal_id] == variant)
        rows.append(
            VariantStats(
                variant=variant,
                principals=members,
                deals=len(sold) + len(bought),
                deals_per_principal=(len(sold) + len(bought)) / members if members else 0.0,
                seller_price_index=_mean([d.price_cents / items[d.listing_id].reference_cents for d in sold]),
                buyer_price_index=_mean(
                    [d.price_cents / items[d.listing_id].reference_cents for d in bought]
                ),
                surplus_cents=surplus,
                surplus_share=_share(surplus, total_surplus),
                model_tokens=sum(usage.tokens_by_principal.get(pid, 0) for pid in principals),
                dollars_estimate=round(
                    sum(usage.micro_dollars_by_principal.get(pid, 0) for pid in principals) / 1_000_000, 6
                ),
            )
        )
    return tuple(rows)


def _principal_stats(facts: MarketFacts, gains: list[DealSurplus]) -> tuple[PrincipalStats, ...]:
    items = {item.id: item for item in facts.population.listings()}

    def index(deals: list[DealFact]) -> float | None:
        return _mean([d.price_cents / items[d.listing_id].reference_cents for d in deals])

    rows = []
    for principal in facts.population.principals:
        bought = [d for d in facts.deals if d.buyer_principal_id == principal.id]
        sold = [d for d in facts.deals if d.seller_principal_id == principal.id]
        surplus = sum(g.buyer_cents for g in gains if g.deal.buyer_principal_id == principal.id)
        surplus += sum(g.seller_cents for g in gains if g.deal.seller_principal_id == principal.id)
        rows.append(
            PrincipalStats(
                principal_id=principal.id,
                variant=principal.variant,
                deals_as_buyer=len(bought),
                deals_as_seller=len(sold),
                bought_price_index=index(bought),
                sold_price_index=index(sold),
                surplus_cents=surplus,
            )
        )
    return tuple(rows)


def _settlements(facts: MarketFacts) -> Settlements:
    by_outcome = Counter(s.outcome for s in facts.settlements)
    settled = {s.deal_id for s in facts.settlements}
    unsettled = sum(deal.deal_id not in settled for deal in facts.deals)

    def reasons(outcome: SettlementOutcome) -> dict[str, int]:
        return _sorted_counts(s.reason or "unspecified" for s in facts.settlements if s.outcome is outcome)

    return Settlements(
        released=by_outcome[SettlementOutcome.RELEASED],
        refunded=by_outcome[SettlementOutcome.REFUNDED],
        escrow_failed=by_outcome[SettlementOutcome.ESCROW_FAILED],
        open=by_outcome[SettlementOutcome.OPEN] + unsettled,
        escrow_failures_by_reason=reasons(SettlementOutcome.ESCROW_FAILED),
        refunds_by_reason=reasons(SettlementOutcome.REFUNDED),
    )


def _approvals(facts: MarketFacts) -> Approvals:
    answers = Counter(a.answer for a in facts.approvals)
    waited = sorted(a.answer_seconds for a in facts.approvals if a.answer_seconds is not None)
    return Approvals(
        answer_seconds_median=round(statistics.median(waited), 3) if waited else None,
        answer_seconds_p90=round(waited[math.ceil(0.9 * len(waited)) - 1], 3) if waited else None,
        requested=len(facts.approvals),
        granted=answers[ApprovalAnswer.GRANTED],
        denied=answers[ApprovalAnswer.DENIED],
        expired=answers[ApprovalAnswer.EXPIRED],
        pending=answers[ApprovalAnswer.PENDING],
    )


def _money(facts: MarketFacts, released: set[str]) -> Money:
    prices = [deal.price_cents for deal in facts.deals]
    return Money(
        gmv_agreed_cents=sum(prices),
        gmv_settled_cents=sum(d.price_cents for d in facts.deals if d.deal_id in released),
        median_price_cents=statistics.median_low(prices) if prices else None,
    )


def build_report(facts: MarketFacts) -> MarketReport:
    released = {s.deal_id for s in facts.settlements if s.outcome is SettlementOutcome.RELEASED}
    sold = {d.listing_id for d in facts.deals if d.deal_id in released}
    rounds = [n.rounds for n in facts.negotiations]
    gains = realised_surplus(facts)
    surplus = _surplus(facts, gains)
    refusals = {source: dict(sorted(counts.items())) for source, counts in sorted(facts.refusals.items())}
    return MarketReport(
        market_id=facts.market_id,
        population_digest=facts.population.digest(),
        participants=len(facts.population.principals),
        listings_planned=len(facts.population.listings()),
        listings_published=len(facts.listing_ids),
        wants=len(facts.population.wants()),
        negotiations=len(facts.negotiations),
        deals_agreed=len(facts.deals),
        deals_settled=len(released),
        listings_sold=len(sold),
        completion=Completion(
            deals_per_negotiation=_share(len(facts.deals), len(facts.negotiations)),
            listings_sold_share=_share(len(sold), len(facts.listing_ids)),
        ),
        rounds=Rounds(median=statistics.median(rounds) if rounds else None, p90=p90(rounds)),
        money=_money(facts, released),
        approvals=_approvals(facts),
        disputes=Disputes(
            total=len(facts.disputes),
            by_reason=_sorted_counts(d.reason.value for d in facts.disputes),
            by_outcome=_sorted_counts(d.outcome.value if d.outcome else "open" for d in facts.disputes),
        ),
        settlements=_settlements(facts),
        refused_moves=sum(sum(counts.values()) for counts in refusals.values()),
        tokens=_token_use(facts),
        refusals=refusals,
        surplus=surplus,
        variants=_variant_stats(facts, gains, surplus.realised_cents),
        principals=_principal_stats(facts, gains),
        invariants=dict(sorted(facts.invariants.items())),
        ok=all(facts.invariants.values()),
    )
