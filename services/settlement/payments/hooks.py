"""Where a settlement decision meets the payment rails, inside the decision's own transaction.

`carry_out` calls these two and nothing else: a card market's hold is recorded
as an authorization to make (the deal waits in `authorizing`), and each ledger
move of a decision records the provider operation it needs. Nothing here calls
the provider: the payment job does, after this transaction commits.
"""

from __future__ import annotations

import asyncpg

from haggle.contracts.market import MarketRulesSet
from services.settlement.domain.deal import Deal, DealState, Outcome
from services.settlement.domain.ledger import Transfer
from services.settlement.payments import domain, store


async def routed_hold(
    conn: asyncpg.Connection, deal: Deal, hold: Transfer, rules: MarketRulesSet
) -> Outcome | None:
    """None: the ledger takes the hold from the wallet. Else the deal authorizes (or fails) first."""
    op = domain.routed_hold(deal, hold, rules)
    if op is None:
        return None
    buyer = await store.party(conn, deal.market_id, deal.buyer_principal_id)
    seller = await store.party(conn, deal.market_id, deal.seller_principal_id)
    outcome = domain.authorizing(
        deal, bool(buyer.customer_id and buyer.payment_method_id), bool(seller.connected_account_id)
    )
    if outcome.deal is not None and outcome.deal.state is DealState.AUTHORIZING:
        await store.record_ops(conn, (op,))
    return outcome


async def record_moves(
    conn: asyncpg.Connection, deal: Deal, transfers: tuple[Transfer, ...], rules: MarketRulesSet
) -> None:
    await store.record_ops(conn, domain.ops_for(deal, transfers, rules))
