"""An offline dry run of the pure market parts: population → mandates → strategy brains → facts → report.

No Kafka, no services: each want meets its first acceptable listing through
the agents' in-process self-play loop (brains behind their guards). It proves
the pieces fit — the mandates run, the deals respect every private limit, and
the report's surplus stays within the optimum.
"""

from __future__ import annotations

from haggle.contracts.negotiation import EndReason
from haggle.market.facts import REQUIRED_INVARIANTS, DealFact, MarketFacts, NegotiationFact, SettlementFact
from haggle.market.facts import SettlementOutcome as Outcome
from haggle.market.goods import SaleItem, WantSpec
from haggle.market.mandates import to_mandate
from haggle.market.population import Population, build_population
from haggle.market.report import build_report
from services.agents.brains import build_brain
from services.agents.selfplay import play
from services.agents.view import ListingView, MandateLimits


def _pairs(population: Population) -> list[tuple[WantSpec, SaleItem]]:
    """Each want with the first unsold listing its agent would negotiate for."""
    unsold = list(population.listings())
    pairs = []
    for want in population.wants():
        item = next((i for i in unsold if want.accepts(i) and i.seller_id != want.buyer_id), None)
        if item is not None:
            unsold.remove(item)
            pairs.append((want, item))
    return pairs


async def _trade(
    population: Population, want: WantSpec, item: SaleItem, n: int
) -> tuple[NegotiationFact, DealFact | None]:
    buyer, seller = (
        to_mandate(population.principal(want.buyer_id)),
        to_mandate(population.principal(item.seller_id)),
    )
    listing = ListingView.from_facts(
        seller.item(item.id).to_listing(item.id, f"{item.seller_id}-agent", item.seller_id)
    )
    outcome = await play(
        build_brain(buyer.brain),
        build_brain(seller.brain),
        listing,
        MandateLimits.for_buyer(want.max_price_cents, buyer.budget_cents, want.min_condition),
        MandateLimits.for_seller(item.floor_cents),
        max_rounds=12,
    )
    thread = f"t{n}"
    end = EndReason.DEAL if outcome.deal else EndReason.REJECTED
    fact = NegotiationFact(
        thread_id=thread,
        listing_id=item.id,
        buyer_principal_id=want.buyer_id,
        seller_principal_id=item.seller_id,
        rounds=outcome.rounds,
        end_reason=end,
    )
    if outcome.deal is None:
        return fact, None
    offer = outcome.deal
    deal = DealFact(
        deal_id=f"d{n}",
        listing_id=item.id,
        thread_id=thread,
        buyer_principal_id=want.buyer_id,
        seller_principal_id=item.seller_id,
        price_cents=offer.price_cents,
        shipping_method=offer.shipping_method,
        shipping_cost_cents=offer.shipping_cost_cents,
        shipping_paid_by=offer.shipping_paid_by,
        rounds=outcome.rounds,
        want_id=want.id,
    )
    return fact, deal


async def test_a_strategy_market_trades_within_every_limit_and_the_optimum() -> None:
    population = build_population(3, 16, 40, 200_000, 0.0, ["boulware", "conceder"], parallel=False)
    negotiations, deals = [], []
    for n, (want, item) in enumerate(_pairs(population)):
        negotiation, deal = await _trade(population, want, item, n)
        negotiations.append(negotiation)
        if deal is not None:
            assert deal.seller_net_cents >= item.floor_cents
            assert deal.buyer_total_cents <= want.max_price_cents
            assert deal.price_cents <= item.asking_price_cents
            deals.append(deal)
    assert deals, "a market of literature strategies must close some deals"
    facts = MarketFacts(
        market_id="dry-run",
        population=population,
        listing_ids=tuple(i.id for i in population.listings()),
        negotiations=tuple(negotiations),
        deals=tuple(deals),
        settlements=tuple(SettlementFact(deal_id=d.deal_id, outcome=Outcome.RELEASED) for d in deals),
        invariants=dict.fromkeys(REQUIRED_INVARIANTS, True),
    )
    report = build_report(facts)
    assert report.deals_agreed == len(deals) and report.money.gmv_settled_cents == sum(
        d.price_cents for d in deals
    )
    assert report.surplus.efficiency is not None and 0 < report.surplus.efficiency <= 1
    assert report.surplus.buyers_cents >= 0 and report.surplus.sellers_cents >= 0
    assert {v.variant for v in report.variants} == {"boulware", "conceder"}
