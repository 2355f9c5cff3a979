"""Settlement end to end over real Kafka and PostgreSQL, the listing and settlement services as processes.

Each test is its own market. The test publishes DealAgreed as the referee
would, funds wallets as the operator, answers approvals and disputes through
the real `haggle` CLI, and sends the agents' signed commands itself.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from haggle.contracts import Condition, Envelope, ShippingMethod
from haggle.contracts.agents import Role
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.settlement import (
    AcceptGoods,
    ConfirmHandover,
    DisputeOutcome,
    DisputeReason,
    EscrowFailure,
    FundWallet,
    OpenDispute,
    ResolveDispute,
    SettlementRefusal,
    ShipItem,
)
from haggle.contracts.topics import MANDATE_COMMANDS, SETTLEMENT_COMMANDS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing import mandates
from haggle_lab.testing.actors import ScriptedAgent
from tests.integration.settlement_support import (
    SettlementMarket,
    eventually,
    haggle_cli,
    settlement_market,
    settlement_services,
)

pytestmark = pytest.mark.timeout(180)
PRICE = 20_000
FEE = PRICE * 500 // 10_000
ESCROW = PRICE + 1_500


@pytest.fixture(scope="module")
def services(endpoints: object) -> Iterator[None]:
    with settlement_services():
        yield


@pytest.fixture
async def market(
    services: None, bootstrap: str, database_url: str, market_id: str
) -> AsyncIterator[SettlementMarket]:
    async with settlement_market(bootstrap, database_url, market_id) as m:
        yield m


def ids(market: SettlementMarket) -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:6]
    return f"{market.market_id}-D{suffix}", f"{market.market_id}-L{suffix}"


async def agreed_deal(
    market: SettlementMarket, method: ShippingMethod = ShippingMethod.PARCEL_STANDARD, **rules: object
) -> tuple[str, str, Envelope]:
    await market.open(**rules)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id, Condition.VERY_GOOD, PRICE)
    env = market.deal(deal_id, listing_id, PRICE, method)
    await market.agree(env)
    return deal_id, listing_id, env


async def test_happy_path_pays_the_seller_the_price_less_the_fee(market: SettlementMarket) -> None:
    await market.open()
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id, Condition.VERY_GOOD, PRICE)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    funded = await market.event("EscrowFunded", deal_id)
    assert funded.payload["amount_cents"] == ESCROW and funded.payload["fee_cents"] == FEE
    await market.listing_event("ListingReserved", listing_id)
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000 - ESCROW)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    delivered = await market.event("ShipmentDelivered", deal_id)
    assert delivered.payload["delivered_condition"] == "very_good"
    released = await market.event("FundsReleased", deal_id)
    assert released.payload["amount_cents"] == PRICE - FEE
    await market.listing_event("ListingSold", listing_id)
    assert market.events_of(deal_id) == [
        "EscrowFunded",
        "ShipmentBooked",
        "ShipmentInTransit",
        "ShipmentDelivered",
        "InspectionPassed",
        "FundsReleased",
    ]
    assert await market.balance(market.wallet(market.seller)) == (PRICE - FEE, PRICE - FEE)
    assert await market.balance(market.wallet(market.buyer)) == (50_000 - ESCROW, 50_000 - ESCROW)
    assert await market.balance(f"fees:{market.market_id}") == (FEE, FEE)
    for agent in (market.buyer, market.seller):
        assert {"EscrowFunded", "ShipmentDelivered", "FundsReleased"} <= set(market.inbox_of(agent, deal_id))
    assert all(check.ok for check in await market.ledger_check())


async def test_insufficient_funds_fail_the_escrow_and_relist(market: SettlementMarket) -> None:
    await market.open()
    await market.fund(market.buyer, ESCROW - 1)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    failed = await market.event("EscrowFailed", deal_id)
    assert failed.payload["reason"] == EscrowFailure.INSUFFICIENT_FUNDS
    await market.listing_event("ListingRelisted", listing_id)
    assert await market.balance(market.wallet(market.buyer)) == (ESCROW - 1, ESCROW - 1)
    assert await market.state(deal_id) == "failed"
    for agent in (market.buyer, market.seller):
        await market.obs.wait_for(lambda e, a=agent: e.agent_id == a.agent_id and e.type == "EscrowFailed")


async def _approval_requested(market: SettlementMarket) -> tuple[str, str, str]:
    await market.open()
    await market.fund(market.buyer, 50_000, limit=PRICE)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    requested = await market.obs.wait_for(lambda e: e.type == "ApprovalRequested", "approval.events")
    assert requested[0].payload["amount_cents"] == ESCROW
    await market.obs.wait_for(lambda e: e.type == "ApprovalRequested" and e.agent_id == market.buyer.agent_id)
    code, out = await haggle_cli("approvals", "list", "--market", market.market_id, "--json")
    assert code == 0, out
    listed = json.loads(out)["approvals"]
    assert [a["deal_id"] for a in listed] == [deal_id]
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000)
    return deal_id, listing_id, listed[0]["approval_id"]


async def test_approval_granted_by_a_human_holds_the_escrow(market: SettlementMarket) -> None:
    deal_id, _, approval_id = await _approval_requested(market)
    code, out = await haggle_cli("approvals", "grant", approval_id, "--by", "alice")
    assert code == 0, out
    await market.event("EscrowFunded", deal_id)
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000 - ESCROW)


async def test_approval_denied_by_a_human_fails_the_escrow_and_relists(market: SettlementMarket) -> None:
    deal_id, listing_id, approval_id = await _approval_requested(market)
    code, out = await haggle_cli("approvals", "deny", approval_id, "--reason", "too dear")
    assert code == 0, out
    failed = await market.event("EscrowFailed", deal_id)
    assert failed.payload["reason"] == EscrowFailure.APPROVAL_DENIED
    await market.listing_event("ListingRelisted", listing_id)
    code, out = await haggle_cli("approvals", "grant", approval_id)
    assert code == 1 and "no pending approval" in out


async def _assign(market: SettlementMarket, mandate: Mandate) -> None:
    command = AssignMandate(mandate=mandate)
    await market.pub.send(
        MANDATE_COMMANDS.name, mandate.principal_id, operator_envelope(command, market.market_id)
    )


async def test_an_amended_auto_approve_limit_is_the_one_settlement_asks_at(market: SettlementMarket) -> None:
    """The buyer's mandate first asks a human above $0; the amendment (as /me/mandate sends it)
    raises the limit and the next deal holds its escrow without asking. An amendment the mandate
    contract refuses (it also changes the budget) moves nothing; one that lowers it asks again."""
    await market.open()
    first = mandates.buyer(market.buyer.principal_id, [mandates.want("w1", 40_000)], 200_000, auto_approve=0)
    await market.fund(market.buyer, 200_000, limit=0)
    await _assign(market, first)

    async def limit_is(cents: int) -> bool:
        query = "SELECT auto_approve_limit_cents FROM wallets WHERE market_id = $1 AND principal_id = $2"
        return await market.pool.fetchval(query, market.market_id, market.buyer.principal_id) == cents

    raised = first.model_copy(update={"auto_approve_limit_cents": 30_000})
    # One key, one partition: settlement sees the first mandate before its amendment.
    await _assign(market, raised)
    await eventually(lambda: limit_is(30_000), "the amended limit")
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    assert "ApprovalRequested" not in market.inbox_of(market.buyer, deal_id)

    refused = raised.model_copy(update={"auto_approve_limit_cents": 0, "budget_cents": 100_000})
    lowered = raised.model_copy(update={"auto_approve_limit_cents": 1_000})
    await _assign(market, refused)
    await _assign(market, lowered)
    await eventually(lambda: limit_is(1_000), "the lowered limit")
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.obs.wait_for(lambda e: e.type == "ApprovalRequested" and e.payload["deal_id"] == deal_id)


async def test_an_unanswered_approval_expires(market: SettlementMarket) -> None:
    await market.open(approval_timeout_seconds=1)
    await market.fund(market.buyer, 50_000, limit=0)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    failed = await market.event("EscrowFailed", deal_id)
    assert failed.payload["reason"] == EscrowFailure.APPROVAL_EXPIRED
    await market.obs.wait_for(lambda e: e.type == "ApprovalExpired", "approval.events")


async def test_a_lost_parcel_is_refunded(market: SettlementMarket) -> None:
    await market.open(carrier_loss_bps=10_000)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    refunded = await market.event("Refunded", deal_id)
    assert refunded.payload["reason"] == "lost_parcel" and refunded.payload["amount_cents"] == ESCROW
    resolved = await market.event("DisputeResolved", deal_id)
    assert (resolved.payload["outcome"], resolved.payload["decided_by"]) == ("refund", "rule")
    assert "ShipmentLost" in market.events_of(deal_id)
    await market.listing_event("ListingWithdrawn", listing_id)
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000)
    assert await market.balance(market.wallet(market.seller)) == (0, 0)


async def test_a_misdescribed_item_is_disputed_returned_and_refunded(market: SettlementMarket) -> None:
    await market.open(inspection_window_seconds=30)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id, Condition.VERY_GOOD)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.ACCEPTABLE))
    delivered = await market.event("ShipmentDelivered", deal_id)
    assert delivered.payload["delivered_condition"] == "acceptable"
    listed = Condition.VERY_GOOD
    assert not Condition(delivered.payload["delivered_condition"]).at_least(listed)
    dispute = OpenDispute(deal_id=deal_id, reason=DisputeReason.CONDITION_WORSE, detail="scratched all over")
    await market.command(market.buyer, dispute)
    resolved = await market.event("DisputeResolved", deal_id)
    assert resolved.payload["outcome"] == "refund_after_return"
    assert resolved.payload["rule"] == "condition_below_listing"
    await market.event("ShipmentBooked", deal_id, leg="return")
    refunded = await market.event("Refunded", deal_id)
    assert refunded.payload["amount_cents"] == ESCROW
    await market.listing_event("ListingWithdrawn", listing_id)
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000)
    assert "FundsReleased" not in market.events_of(deal_id)


async def test_a_local_pickup_needs_both_sides_to_confirm(market: SettlementMarket) -> None:
    await market.open(inspection_window_seconds=60)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE, ShippingMethod.LOCAL_PICKUP))
    funded = await market.event("EscrowFunded", deal_id)
    assert funded.payload["amount_cents"] == PRICE
    await market.command(market.seller, ConfirmHandover(deal_id=deal_id, condition=Condition.VERY_GOOD))
    await market.event("HandoverConfirmed", deal_id, by="seller")
    assert await market.state(deal_id) == "funded"
    await market.command(market.buyer, ConfirmHandover(deal_id=deal_id))
    delivered = await market.event("ShipmentDelivered", deal_id)
    assert delivered.payload["method"] == "local_pickup"
    await market.command(market.buyer, AcceptGoods(deal_id=deal_id))
    passed = await market.event("InspectionPassed", deal_id)
    assert passed.payload["ended_by"] == "accepted"
    await market.event("FundsReleased", deal_id)
    await market.listing_event("ListingSold", listing_id)
    assert await market.balance(market.wallet(market.seller)) == (PRICE - FEE, PRICE - FEE)


async def test_a_dispute_the_rules_cannot_decide_waits_for_a_human(market: SettlementMarket) -> None:
    await market.open(inspection_window_seconds=30)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    await market.event("ShipmentDelivered", deal_id)
    dispute = OpenDispute(deal_id=deal_id, reason=DisputeReason.WRONG_ITEM, detail="a toaster\x00, not this")
    await market.command(market.buyer, dispute)
    await market.event("DisputeOpened", deal_id)
    code, out = await haggle_cli("disputes", "list", "--market", market.market_id, "--json")
    assert code == 0, out
    listed = json.loads(out)["disputes"]
    assert [(d["deal_id"], d["dispute_detail"]) for d in listed] == [(deal_id, "a toaster\\0, not this")]
    assert await market.state(deal_id) == "disputed"
    code, out = await haggle_cli(
        "disputes", "resolve", deal_id, "--outcome", "release", "--note", "same item"
    )
    assert code == 0, out
    resolved = await market.event("DisputeResolved", deal_id)
    assert (resolved.payload["decided_by"], resolved.payload["outcome"]) == ("operator", "release")
    await market.event("FundsReleased", deal_id)
    await market.listing_event("ListingSold", listing_id)
    code, out = await haggle_cli("ledger", "check", "--market", market.market_id)
    assert code == 0 and "false" not in out, out


async def test_the_same_deal_agreed_three_times_funds_one_escrow(market: SettlementMarket) -> None:
    await market.open()
    await market.fund(market.buyer, 100_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    env = market.deal(deal_id, listing_id, PRICE)
    replay = env.model_copy(update={"event_id": uuid.uuid4()})
    for copy in (env, env, env, replay):
        await market.agree(copy)
    await market.event("EscrowFunded", deal_id)

    async def replay_handled() -> bool:
        return bool(await market.pool.fetchval("SELECT 1 FROM inbox WHERE event_id = $1", replay.event_id))

    await eventually(replay_handled, "the replay under a new event id to be handled")
    assert await market.pool.fetchval("SELECT count(*) FROM transfers WHERE deal_id = $1", deal_id) == 1
    assert await market.balance(market.wallet(market.buyer)) == (100_000, 100_000 - ESCROW)
    assert market.events_of(deal_id).count("EscrowFunded") == 1


async def refusal_of(market: SettlementMarket, env: Envelope) -> str:
    found = await market.obs.wait_for(
        lambda e: e.type == "SettlementCommandRefused" and e.payload["command_event_id"] == str(env.event_id),
        "settlement.events",
    )
    return str(found[0].payload["reason"])


async def test_agent_commands_are_refused_with_their_reason(market: SettlementMarket) -> None:
    stranger = market.agent("stranger", Role.BUYER)
    await market.open(stranger, inspection_window_seconds=60)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    impostor = ScriptedAgent(
        market.seller.agent_id, market.seller.principal_id, Role.SELLER, market.market_id
    )
    ship = ShipItem(deal_id=deal_id, packed_condition=Condition.GOOD)
    elsewhere = ShipItem(deal_id=f"{deal_id}-nope", packed_condition=Condition.GOOD)
    sent = {
        SettlementRefusal.BAD_SIGNATURE: await market.command(impostor, ship),
        SettlementRefusal.UNKNOWN_AGENT: await market.command(market.agent("ghost", Role.SELLER), ship),
        SettlementRefusal.NOT_A_PARTY: await market.command(stranger, ship),
        SettlementRefusal.WRONG_PARTY: await market.command(market.buyer, ship),
        SettlementRefusal.UNKNOWN_DEAL: await market.command(market.seller, elsewhere),
        SettlementRefusal.WRONG_STATE: await market.command(market.buyer, AcceptGoods(deal_id=deal_id)),
        SettlementRefusal.WRONG_SHIPPING_METHOD: await market.command(
            market.seller, ConfirmHandover(deal_id=deal_id, condition=Condition.GOOD)
        ),
    }
    stale = market.buyer.sign(AcceptGoods(deal_id=deal_id), seq=1)
    bad = market.buyer.sign(AcceptGoods(deal_id=deal_id))
    invalid = bad.model_copy(update={"payload": {**bad.payload, "deal_id": "bad id!"}})
    self_judged = market.buyer.sign(
        ResolveDispute(deal_id=deal_id, outcome=DisputeOutcome.REFUND, resolved_by="me")
    )
    for reason, env in (
        (SettlementRefusal.REPLAYED_SEQ, stale),
        (SettlementRefusal.INVALID_PAYLOAD, invalid),
        (SettlementRefusal.NOT_OPERATOR, self_judged),
    ):
        await market.pub.send(SETTLEMENT_COMMANDS.name, deal_id, env)
        sent[reason] = env
    for reason, env in sent.items():
        assert await refusal_of(market, env) == reason
    inbox = market.obs.matching(
        lambda e: e.agent_id == market.buyer.agent_id and e.type == "SettlementCommandRefused"
    )
    assert len(inbox) >= 4
    assert await market.state(deal_id) == "funded"
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000 - ESCROW)


async def test_operator_commands_need_the_operator_key_and_sound_amounts(market: SettlementMarket) -> None:
    await market.open()
    funding = FundWallet(
        funding_id="f-1", principal_id=market.buyer.principal_id, amount_cents=10, auto_approve_limit_cents=0
    )
    cases = (
        (
            operator_envelope(funding.model_copy(update={"amount_cents": 0}), market.market_id),
            "invalid_amount",
        ),
        (market.envelope(funding.model_copy(update={"amount_cents": 10**6})), "not_operator"),
        (market.buyer.sign(funding), "not_operator"),
        (operator_envelope(funding, market.market_id), None),
        (operator_envelope(funding, market.market_id), None),
        (
            operator_envelope(funding.model_copy(update={"amount_cents": 11}), market.market_id),
            "transfer_id_conflict",
        ),
    )
    for env, _ in cases:
        await market.pub.send(SETTLEMENT_COMMANDS.name, market.buyer.principal_id, env)
    for env, reason in cases:
        if reason:
            assert await refusal_of(market, env) == reason
    assert len(market.obs.matching(lambda e: e.type == "WalletFunded")) == 1
    assert await market.balance(market.wallet(market.buyer)) == (10, 10)
    every = {r for _, r in cases} | {
        "bad_signature",
        "unknown_agent",
        "replayed_seq",
        "unknown_deal",
        "not_a_party",
        "wrong_party",
        "wrong_state",
        "wrong_shipping_method",
        "invalid_payload",  # the test above
        "condition_required",
        "inspection_closed",  # pure rules: tests/unit/test_settlement_deal.py
    }
    assert every - {None} == {r.value for r in SettlementRefusal}


async def test_a_market_script_answers_approvals_by_threshold(market: SettlementMarket) -> None:
    await market.open()
    await market.fund(market.buyer, 200_000, limit=0)
    script = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "haggle", "approvals", "auto", "--market", market.market_id),
        *("--grant-up-to", str(ESCROW), "--seconds", "40"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert script.stdout is not None
        line = await asyncio.wait_for(script.stdout.readline(), timeout=30)
        assert b"listening" in line, line
        cheap, dear = ids(market), ids(market)
        for (deal_id, listing_id), price in ((cheap, PRICE), (dear, PRICE + 1)):
            await market.listing(listing_id)
            await market.agree(market.deal(deal_id, listing_id, price))
        await market.event("EscrowFunded", cheap[0])
        failed = await market.event("EscrowFailed", dear[0])
        assert failed.payload["reason"] == EscrowFailure.APPROVAL_DENIED
    finally:
        script.kill()
        await script.wait()


async def test_an_operator_signed_dispute_is_the_buyers_and_only_in_inspection(
    market: SettlementMarket,
) -> None:
    """The web app opens a principal's dispute signed with the operator key (it holds no agent key)."""
    await market.open(inspection_window_seconds=60)
    await market.fund(market.buyer, 50_000)
    deal_id, listing_id = ids(market)
    await market.listing(listing_id)
    await market.agree(market.deal(deal_id, listing_id, PRICE))
    await market.event("EscrowFunded", deal_id)
    dispute = OpenDispute(deal_id=deal_id, reason=DisputeReason.WRONG_ITEM, detail="not what I bought")
    too_early = operator_envelope(dispute, market.market_id, "web")
    await market.pub.send(SETTLEMENT_COMMANDS.name, deal_id, too_early)
    refused = await market.event(
        "SettlementCommandRefused", deal_id, command_event_id=str(too_early.event_id)
    )
    assert refused.payload["reason"] == SettlementRefusal.WRONG_STATE.value
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    await market.event("ShipmentDelivered", deal_id)
    forged = ScriptedAgent("operator", "nobody", Role.BUYER, market.market_id).sign(dispute)
    await market.pub.send(SETTLEMENT_COMMANDS.name, deal_id, forged)
    refused = await market.event("SettlementCommandRefused", deal_id, command_event_id=str(forged.event_id))
    assert refused.payload["reason"] == SettlementRefusal.UNKNOWN_AGENT.value
    await market.pub.send(
        SETTLEMENT_COMMANDS.name, deal_id, operator_envelope(dispute, market.market_id, "web")
    )
    opened = await market.event("DisputeOpened", deal_id)
    assert opened.payload["opened_by"] == market.buyer.agent_id
    assert await market.state(deal_id) == "disputed"
