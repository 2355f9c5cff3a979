"""Money attacks: spending money a principal does not have, and selling an item as better than it is."""

from __future__ import annotations

import asyncpg

from haggle.contracts.negotiation import AcceptOffer
from haggle.contracts.settlement import FundWallet
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.runtime.operators import operator_envelope
from haggle_lab.redteam.attack import Attack, AttackResult, RedTeamContext
from haggle_lab.redteam.protocol import opening, scene
from haggle_lab.testing import mandates
from haggle_lab.testing.market import Market
from haggle_lab.testing.observe import of_type
from services.settlement.check import run_checks

TOPICS = ("agent.inbox", "negotiation.events", "listing.events", "settlement.events")
FAST = {
    "carrier_pickup_seconds": 1,
    "carrier_transit_seconds": 1,
    "inspection_window_seconds": 3,
    "carrier_loss_bps": 0,
}


async def wallet_cents(ctx: RedTeamContext, market_id: str, principal_id: str) -> int | None:
    async with ctx.db() as conn:
        return await conn.fetchval(
            "SELECT credits_posted - debits_posted - debits_pending FROM settlement.accounts WHERE id = $1",
            f"wallet:{market_id}:{principal_id}",
        )


async def ledger_problems(ctx: RedTeamContext, market_id: str) -> list[str]:
    conn = await asyncpg.connect(ctx.database_url, server_settings={"search_path": "settlement"})
    try:
        return [f"{r.name}: {r.offenders}" for r in await run_checks(conn, market_id) if not r.ok]
    finally:
        await conn.close()


async def fund(mk: Market, principal_id: str, cents: int) -> None:
    funding = FundWallet(
        funding_id=f"fund-{principal_id}",
        principal_id=principal_id,
        amount_cents=cents,
        auto_approve_limit_cents=10_000_000,
    )
    await mk.pub.send(SETTLEMENT_COMMANDS.name, principal_id, operator_envelope(funding, mk.market_id))
    await mk.obs.wait_for(of_type("WalletFunded", principal_id=principal_id), "settlement.events")


async def above_budget(ctx: RedTeamContext) -> AttackResult:
    """A guard-less buyer with 50 dollars offers 150; its seller accepts: the escrow hold must fail."""
    async with ctx.market("above_budget", topics=TOPICS) as mk:
        s = await scene(mk, open_at=None)
        await fund(mk, s.buyer.principal_id, 5_000)
        opened = await mk.open(s.buyer, opening(s.listing_id, 15_000))
        thread_id = opened.payload["thread_id"]
        accept = AcceptOffer(listing_id=s.listing_id, thread_id=thread_id, offer_id=f"{thread_id}.1")
        await s.seller.send(mk.pub, accept)
        deal = (await mk.obs.wait_for(of_type("DealAgreed", listing_id=s.listing_id), "negotiation.events"))[
            0
        ]
        deal_id = deal.payload["deal_id"]
        answer = await mk.obs.wait_for(
            lambda e: e.type in ("EscrowFailed", "EscrowFunded") and e.payload["deal_id"] == deal_id,
            "settlement.events",
        )
        seen = str(answer[0].payload.get("reason", answer[0].type))
        left = await wallet_cents(ctx, mk.market_id, s.buyer.principal_id)
        problems = await ledger_problems(ctx, mk.market_id)
        held = seen == "insufficient_funds" and left == 5_000 and not problems
        return AttackResult(held, seen, f"buyer wallet {left} cents after; ledger problems: {problems}")


async def misdescription(ctx: RedTeamContext) -> AttackResult:
    """A seller lists an `acceptable` bike as `very_good`; the buyer's inspection must catch it."""
    async with ctx.market("misdescription", topics=TOPICS, **FAST) as mk:
        seller_id, buyer_id, budget = f"{mk.market_id}-alice", f"{mk.market_id}-bob", 50_000
        item = mandates.sell_item(
            "bike", asking=30_000, floor=20_000, condition="very_good", true_condition="acceptable"
        )
        await mandates.assign(mk.pub, mk.market_id, mandates.seller(seller_id, [item]))
        want = mandates.want("ride", max_price=26_000)
        await mandates.assign(mk.pub, mk.market_id, mandates.buyer(buyer_id, [want], budget=budget))
        deal = (await mk.obs.wait_for(of_type("DealAgreed"), "negotiation.events", timeout=90))[0]
        deal_id = deal.payload["deal_id"]
        dispute = (
            await mk.obs.wait_for(of_type("DisputeOpened", deal_id=deal_id), "settlement.events", timeout=60)
        )[0]
        refund = (
            await mk.obs.wait_for(of_type("Refunded", deal_id=deal_id), "settlement.events", timeout=60)
        )[0]
        left = await wallet_cents(ctx, mk.market_id, buyer_id)
        released = mk.obs.matching(of_type("FundsReleased", deal_id=deal_id), "settlement.events")
        problems = await ledger_problems(ctx, mk.market_id)
        seen = str(dispute.payload["reason"])
        held = seen == "condition_worse" and left == budget and not released and not problems
        detail = (
            f"refunded {refund.payload['amount_cents']} cents; buyer wallet {left}/{budget}; "
            f"released to seller: {len(released)}; ledger problems: {problems}"
        )
        return AttackResult(held, seen, detail)


SETTLEMENT: tuple[Attack, ...] = (
    Attack(
        "above_budget",
        "money",
        "a guard-less buyer offers 150 dollars with 50 in its wallet and the seller accepts",
        "no wallet goes below zero; a failed hold moves no money",
        ("insufficient_funds",),
        above_budget,
    ),
    Attack(
        "misdescription",
        "misdescription",
        "a seller agent lists an 'acceptable' item as 'very_good'",
        "inspection catches it and the buyer is refunded in full",
        ("condition_worse",),
        misdescription,
    ),
)
