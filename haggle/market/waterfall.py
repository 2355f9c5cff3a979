"""Where the surplus went: every cent between the optimum and what was realised, by cause.

For each trade of the optimal matching (want w, listing l, surplus s*):
- it happened and was released: what it lost is the costlier shipping chosen
  (`shipping_cost`: the chosen method's cost less the cheapest offered);
- w was filled or l was sold by another released deal: `allocation`, less the
  surplus those other (non-optimal) trades realised — never below zero, since
  the optimal matching beats any swap;
- otherwise by what became of the pair: `no_negotiation`; a negotiation that
  ended without a deal (`negotiation_<end reason>`, `negotiation_rounds_exhausted`
  when the last round's offer was rejected, `negotiation_open` if it never
  ended); a deal whose escrow failed (`approval_denied`, `approval_expired`,
  `escrow_<reason>`), that was refunded (`refund_<reason>`) or never settled
  (`unsettled`).
The causes add up exactly to `optimum − realised` (a property test checks it).

The report runs this against the optimum within budgets (each buyer's trades paid at the
sellers' floors within its budget) and adds `beyond_budget`, the part of the unbounded
optimum no market of these budgets could realise. Against that matching `allocation` is a net
figure and may be negative (a set of trades outside it can do better than its share of it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from haggle.contracts.negotiation import EndReason
from haggle.market.facts import DealFact, MarketFacts, NegotiationFact, SettlementOutcome
from haggle.market.optimum import Optimum

ESCROW_CAUSES = {"approval_denied": "approval_denied", "approval_expired": "approval_expired"}


Gain = tuple[DealFact, int, str | None]
"""A released deal counted in the realised surplus, its surplus, and the want it filled."""


def lost_cents(facts: MarketFacts, gains: Sequence[Gain], best: Optimum) -> dict[str, int]:
    realised = {(want, deal.listing_id): (deal, surplus) for deal, surplus, want in gains if want is not None}
    filled = {want for _, _, want in gains if want is not None}
    sold = {deal.listing_id for deal, _, _ in gains}
    optimal = {(m.want_id, m.listing_id) for m in best.matches}
    lost: dict[str, int] = defaultdict(int)
    buyer_of = {w.id: w.buyer_id for w in facts.population.wants()}
    for match in best.matches:
        pair = (match.want_id, match.listing_id)
        if pair in realised:
            lost["shipping_cost"] += match.surplus_cents - realised[pair][1]
        elif match.want_id in filled or match.listing_id in sold:
            lost["allocation"] += match.surplus_cents
        else:
            lost[_fate(facts, buyer_of[match.want_id], match.listing_id)] += match.surplus_cents
    for deal, surplus, want in gains:
        if (want, deal.listing_id) not in optimal:
            lost["allocation"] -= surplus
    return dict(sorted((cause, cents) for cause, cents in lost.items() if cents != 0))


def _fate(facts: MarketFacts, buyer_id: str, listing_id: str) -> str:
    tried = [n for n in facts.negotiations if n.listing_id == listing_id and n.buyer_principal_id == buyer_id]
    if not tried:
        return "no_negotiation"
    last = tried[-1]
    deal = next((d for d in reversed(facts.deals) if d.thread_id == last.thread_id), None)
    if deal is None:
        return _ended(last)
    settled = next((s for s in facts.settlements if s.deal_id == deal.deal_id), None)
    if settled is None or settled.outcome is SettlementOutcome.OPEN:
        return "unsettled"
    if settled.outcome is SettlementOutcome.ESCROW_FAILED:
        return ESCROW_CAUSES.get(settled.reason, f"escrow_{settled.reason or 'failed'}")
    if settled.outcome is SettlementOutcome.REFUNDED:
        return f"refund_{settled.reason or 'unspecified'}"
    return "allocation"  # released, but it filled another of the buyer's wants


def _ended(negotiation: NegotiationFact) -> str:
    if negotiation.end_reason is None:
        return "negotiation_open"
    if negotiation.end_reason is EndReason.REJECTED and negotiation.rounds >= negotiation.max_rounds > 0:
        return "negotiation_rounds_exhausted"
    return f"negotiation_{negotiation.end_reason.value}"
