"""Card markets end to end: settlement as a real process against the stateful fake Stripe.

Each flow drives a deal with real Kafka and PostgreSQL and checks both books:
the ledger's invariants and the provider's objects (`haggle payments
reconcile`, which must find no drift). Escrow is price 200.00 plus buyer-paid
shipping 15.00; the seller is paid the price less the 5% fee.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from haggle import procs
from haggle.contracts import Condition, wrap
from haggle.contracts.settlement import (
    AcceptGoods,
    DisputeOutcome,
    DisputeReason,
    OpenDispute,
    ProviderEvent,
    ResolveDispute,
    ShipItem,
)
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.infra import InfraEndpoints
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing.fake_stripe import sign
from services.settlement.payments.webhooks import PATH
from tests.integration.payments_support import (
    CARD_RULES,
    CardRails,
    agreed,
    card_market,
    card_rails,
    intent_of,
    link,
    ops_settled,
    refunds_of,
    transfers_of,
)
from tests.integration.settlement_support import SettlementMarket, eventually, haggle_cli, settlement_market

pytestmark = pytest.mark.timeout(240)
ESCROW, PAYOUT = 21_500, 19_000


@pytest.fixture(scope="module")
def card(endpoints: InfraEndpoints) -> Iterator[CardRails]:
    with card_rails() as rails:
        yield rails


@pytest.fixture
async def market(bootstrap: str, database_url: str, market_id: str) -> AsyncIterator[SettlementMarket]:
    async with settlement_market(bootstrap, database_url, market_id) as found:
        yield found


async def reconciled(market: SettlementMarket, card: CardRails) -> str:
    code, out = await haggle_cli("payments", "reconcile", "--market", market.market_id, "--grace", "0")
    assert code == 0, out
    assert all(r.ok for r in await market.ledger_check())
    return out


async def released(market: SettlementMarket, deal_id: str) -> None:
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))
    await market.event("ShipmentDelivered", deal_id)
    await market.command(market.buyer, AcceptGoods(deal_id=deal_id))
    await market.event("FundsReleased", deal_id)


async def test_authorize_capture_and_pay_out(market: SettlementMarket, card: CardRails) -> None:
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    funded = await market.event("EscrowFunded", deal_id)
    assert funded.payload["amount_cents"] == ESCROW
    [intent] = intent_of(card.fake, deal_id)
    assert (intent["amount"], intent["capture_method"], intent["status"]) == (
        ESCROW,
        "manual",
        "requires_capture",
    )
    assert await market.balance(f"card:{market.market_id}:{market.buyer.principal_id}") == (0, -ESCROW)
    await released(market, deal_id)
    await ops_settled(market, deal_id)
    [intent] = intent_of(card.fake, deal_id)
    [transfer] = transfers_of(card.fake, deal_id)
    assert (intent["status"], intent["amount_received"]) == ("succeeded", ESCROW)
    assert (transfer["amount"], transfer["source_transaction"]) == (PAYOUT, intent["latest_charge"])
    seller = await market.pool.fetchval(
        "SELECT connected_account_id FROM payment_accounts WHERE principal_id = $1",
        market.seller.principal_id,
    )
    assert transfer["destination"] == seller
    assert "0 drifted" in await reconciled(market, card)


async def test_unshipped_deal_cancels_the_authorization(market: SettlementMarket, card: CardRails) -> None:
    await card_market(market, card, ship_deadline_seconds=2)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    refunded = await market.event("Refunded", deal_id)
    assert refunded.payload["reason"] == "not_shipped"
    await ops_settled(market, deal_id)
    [intent] = intent_of(card.fake, deal_id)
    assert intent["status"] == "canceled"
    assert transfers_of(card.fake, deal_id) == [] and refunds_of(card.fake, deal_id) == []
    await reconciled(market, card)


async def test_long_inspection_captures_at_shipment_and_a_refund_follows(
    market: SettlementMarket, card: CardRails
) -> None:
    """8 days of inspection outlast a 7-day authorization: captured when shipped, refunded after."""
    await card_market(market, card, inspection_window_seconds=8 * 24 * 3600)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    await market.event("EscrowFunded", deal_id)
    await market.command(market.seller, ShipItem(deal_id=deal_id, packed_condition=Condition.VERY_GOOD))

    async def captured() -> bool:
        return intent_of(card.fake, deal_id)[0]["status"] == "succeeded"

    await eventually(captured, "the capture at shipment", timeout=60)
    assert await market.state(deal_id) in ("shipping", "inspecting")
    await market.event("ShipmentDelivered", deal_id)
    dispute = OpenDispute(deal_id=deal_id, reason=DisputeReason.WRONG_ITEM, detail="a grinder, not this")
    await market.command(market.buyer, dispute)
    await market.event("DisputeOpened", deal_id)
    resolve = ResolveDispute(deal_id=deal_id, outcome=DisputeOutcome.REFUND, resolved_by="ops")
    await market.pub.send(SETTLEMENT_COMMANDS.name, deal_id, operator_envelope(resolve, market.market_id))
    await market.event("Refunded", deal_id)
    await ops_settled(market, deal_id)
    [refund] = refunds_of(card.fake, deal_id)
    assert refund["amount"] == ESCROW
    assert transfers_of(card.fake, deal_id) == []
    await reconciled(market, card)


async def test_a_lapsed_authorization_refunds_the_deal(market: SettlementMarket, card: CardRails) -> None:
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    await market.event("EscrowFunded", deal_id)
    card.fake.lapse(intent_of(card.fake, deal_id)[0]["id"])
    refunded = await market.event("Refunded", deal_id)
    assert refunded.payload["reason"] == "authorization_lapsed"
    await ops_settled(market, deal_id)
    await reconciled(market, card)


async def test_a_declined_card_fails_the_escrow_with_the_reason(
    market: SettlementMarket, card: CardRails
) -> None:
    await card_market(market, card, buyer_method="pm_card_chargeDeclinedInsufficientFunds")
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    failed = await market.event("EscrowFailed", deal_id)
    assert (failed.payload["reason"], failed.payload["detail"]) == ("payment_declined", "insufficient_funds")
    assert await market.state(deal_id) == "failed"
    await ops_settled(market, deal_id)
    await reconciled(market, card)


async def test_a_card_market_never_holds_from_a_wallet(market: SettlementMarket, card: CardRails) -> None:
    """A buyer with a funded wallet but no saved card: the escrow fails, the wallet is untouched."""
    await market.open(**CARD_RULES)
    await market.fund(market.buyer, 50_000)
    await link(market, card.rails, market.seller)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    failed = await market.event("EscrowFailed", deal_id)
    assert failed.payload["reason"] == "no_payment_method"
    assert await market.balance(market.wallet(market.buyer)) == (50_000, 50_000)
    assert intent_of(card.fake, deal_id) == []


def _post(payload: str, signature: str) -> httpx.Response:
    url = f"{procs.url_for('settlement')}{PATH}"
    return httpx.post(url, content=payload, headers={"stripe-signature": signature}, timeout=10)


async def test_a_chargeback_opens_a_dispute_once_and_replays_change_nothing(
    market: SettlementMarket, card: CardRails
) -> None:
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    await market.event("EscrowFunded", deal_id)
    intent_id = intent_of(card.fake, deal_id)[0]["id"]
    card.fake.chargeback(intent_id, reason="fraudulent")
    opened = await market.event("DisputeOpened", deal_id)
    assert (opened.payload["opened_by"], opened.payload["reason"]) == ("payment_provider", "chargeback")
    [delivered] = [p for p, _ in card.fake.deliveries if '"charge.dispute.created"' in p and intent_id in p]
    assert _post(delivered, sign(delivered, card.fake.webhook_secret)).status_code == 200  # same event id
    stale = sign(delivered, card.fake.webhook_secret, timestamp=int(time.time()) - 3_600)
    assert _post(delivered, stale).status_code == 400  # an old delivery replayed
    event_id = delivered.split('"id": "', 1)[1].split('"', 1)[0]

    async def taken_once() -> bool:
        rows = await market.pool.fetchval(
            "SELECT count(*) FROM provider_events WHERE event_id = $1", event_id
        )
        return rows == 1

    await eventually(taken_once, "the chargeback recorded")
    await market.command(market.buyer, AcceptGoods(deal_id=deal_id))  # any later command: a fence
    await market.event("SettlementCommandRefused", deal_id)
    assert market.events_of(deal_id).count("DisputeOpened") == 1
    assert await market.state(deal_id) == "disputed"


async def test_forged_webhooks_are_refused(market: SettlementMarket, card: CardRails) -> None:
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    await market.event("EscrowFunded", deal_id)
    intent = intent_of(card.fake, deal_id)[0]
    forged = card.fake.event("payment_intent.canceled", {**intent, "status": "canceled"})
    assert _post(forged, sign(forged, "whsec_not_the_secret")).status_code == 400
    assert _post(forged, "t=1,v1=00").status_code == 400
    # Written straight onto the topic, past the endpoint: the handler checks the signature again.
    command = ProviderEvent(provider="stripe", payload=forged, signature=sign(forged, "whsec_wrong"))
    env = wrap(command, market_id=market.market_id, producer="mallory", correlation_id=deal_id)
    await market.pub.send(SETTLEMENT_COMMANDS.name, deal_id, env)
    refused = await market.event("SettlementCommandRefused", "")
    assert refused.payload["reason"] == "bad_signature"
    assert await market.state(deal_id) == "funded"
    assert intent_of(card.fake, deal_id)[0]["status"] == "requires_capture"


async def test_a_replayed_provider_call_moves_money_once(market: SettlementMarket, card: CardRails) -> None:
    """Every operation the job makes, sent again with its key, finds the first answer."""
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    await market.event("EscrowFunded", deal_id)
    await released(market, deal_id)
    await ops_settled(market, deal_id)
    unkeyed = [
        r[1] for r in card.fake.requests if r[0] == "POST" and not r[3] and "account_links" not in r[1]
    ]
    assert unkeyed == []
    sent = [r for r in card.fake.requests if r[3] and deal_id in str(r[3])]
    assert {r[1].split("/")[2] for r in sent} == {"payment_intents", "transfers"}
    async with httpx.AsyncClient(base_url=card.fake.base_url) as client:
        for method, path, body, key in sent:
            headers = {"authorization": f"Bearer {card.fake.api_key}", "idempotency-key": str(key)}
            again = await client.request(method, path, content=body, headers=headers)
            assert again.headers.get("idempotent-replayed") == "true", (path, again.text)
    assert len(intent_of(card.fake, deal_id)) == 1 and len(transfers_of(card.fake, deal_id)) == 1
    await reconciled(market, card)


async def test_reconcile_exits_1_on_money_moved_behind_the_ledgers_back(
    market: SettlementMarket, card: CardRails
) -> None:
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    await agreed(market, deal_id)
    await market.event("EscrowFunded", deal_id)
    await released(market, deal_id)
    await ops_settled(market, deal_id)
    await reconciled(market, card)
    intent_id = intent_of(card.fake, deal_id)[0]["id"]
    async with httpx.AsyncClient(base_url=card.fake.base_url) as client:  # a refund from the dashboard
        headers = {"authorization": f"Bearer {card.fake.api_key}"}
        done = await client.post("/v1/refunds", data={"payment_intent": intent_id}, headers=headers)
        assert done.status_code == 200, done.text
    code, out = await haggle_cli("payments", "reconcile", "--market", market.market_id)
    assert code == 1, out
    assert f"{deal_id}: released but the provider's payment is succeeded, refunded {ESCROW}" in out


@pytest.mark.slow
async def test_kill_9_between_provider_call_and_commit_charges_and_pays_once(
    market: SettlementMarket, card: CardRails
) -> None:
    """Settlement dies after Stripe took the authorization (then the payout) and before our commit."""
    await card_market(market, card)
    deal_id = f"{market.market_id}-d1"
    killed: list[str] = []

    def kill_after(path: str, answer: dict[str, object]) -> None:
        metadata = answer.get("metadata")
        kind = path.rsplit("/", 1)[1]
        ours = isinstance(metadata, dict) and metadata.get("deal_id") == deal_id
        if ours and kind in ("payment_intents", "transfers") and kind not in killed:
            killed.append(kind)
            procs.crash_and_restart("settlement", down_for=0.2)

    card.fake.on_call = kill_after
    try:
        await agreed(market, deal_id)
        await market.event("EscrowFunded", deal_id, timeout=60)
        await eventually(_ready, "settlement back", timeout=60)
        await released(market, deal_id)
        await ops_settled(market, deal_id)
    finally:
        card.fake.on_call = None
    assert killed == ["payment_intents", "transfers"]
    assert len(intent_of(card.fake, deal_id)) == 1 and len(transfers_of(card.fake, deal_id)) == 1
    assert card.fake.keys_sent("/v1/payment_intents").count(f"authorize:hold:{deal_id}") == 2
    assert card.fake.keys_sent("/v1/transfers").count(f"payout:release:{deal_id}") == 2
    assert "0 drifted" in await reconciled(market, card)


async def _ready() -> bool:
    return procs.ready("settlement")[0]


async def test_no_card_number_or_secret_in_the_logs(card: CardRails) -> None:
    """Runs after the flows above: everything settlement logged while it moved card money."""
    text = procs.log_path("settlement").read_text(errors="replace")
    assert "payment operation" in text or "stripe" in text  # the flows were logged here
    for secret in (card.fake.api_key, card.fake.webhook_secret):
        assert secret not in text
    assert not re.search(r"\b(sk|rk)_(test|live)_[A-Za-z0-9]{8,}|whsec_[A-Za-z0-9]{8,}", text)
    assert [n for n in re.findall(r"(?<!\d)\d{13,19}(?!\d)", text) if luhn(n)] == []


def luhn(number: str) -> bool:
    digits = [int(d) for d in reversed(number)]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0
