"""`haggle payments reconcile`: the ledger (the book of record) against the provider's objects.

For each deal of a card market, what the ledger says (`LedgerSide`) must match
what the provider holds (`ProviderSide`): an open hold is an authorization (or
an early capture) of the same amount; a posted hold a capture of it and, once
paid out, a Transfer of the seller's payout to their connected account; a
voided hold a cancelled authorization or a full refund; no hold, no money
taken. Operations still in flight (younger than the grace period) are skipped;
older ones, failed ones and provider money no ledger transfer explains are drift.
`compare` is pure; `reconcile` reads both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

from haggle.contracts.market import PaymentProvider
from services.settlement.payments.port import IntentView, PaymentRails, TransferView

MONEY_TAKEN = ("requires_capture", "succeeded", "processing")


@dataclass(frozen=True)
class LedgerSide:
    deal_id: str
    hold_cents: int | None
    """The escrow hold's amount; None when the deal never held money."""
    resolution: str | None
    """'post' or 'void' once the hold was resolved."""
    payout_cents: int | None
    seller_account: str | None


@dataclass(frozen=True)
class ProviderSide:
    intent: IntentView | None
    transfer: TransferView | None


@dataclass
class Report:
    checked: int = 0
    in_flight: int = 0
    drift: list[str] = field(default_factory=list)


def compare(ledger: LedgerSide, provider: ProviderSide) -> list[str]:
    """What the provider's objects get wrong about one deal's ledger transfers (empty: in step)."""
    deal, intent, hold = ledger.deal_id, provider.intent, ledger.hold_cents
    if hold is None:
        if intent is not None and intent.status in MONEY_TAKEN:
            return [f"{deal}: provider {intent.status} {intent.amount_cents} with no ledger hold"]
        return []
    if intent is None:
        return [f"{deal}: ledger holds {hold} but the provider has no payment"]
    drift = []
    if intent.amount_cents != hold:
        drift.append(f"{deal}: ledger holds {hold}, provider authorized {intent.amount_cents}")
    captured = intent.status == "succeeded"
    refunded = intent.amount_refunded_cents
    if ledger.resolution is None:
        if intent.status != "requires_capture" and not (captured and refunded == 0):
            drift.append(f"{deal}: hold open but the provider's payment is {intent.status}")
    elif ledger.resolution == "post":
        if not captured or intent.amount_received_cents != hold or refunded:
            drift.append(
                f"{deal}: released but the provider's payment is {intent.status}, refunded {refunded}"
            )
        drift += _payout_drift(ledger, provider.transfer)
    elif ledger.resolution == "void":
        if not (intent.status == "canceled" or (captured and refunded == intent.amount_received_cents)):
            drift.append(
                f"{deal}: refunded but the provider's payment is {intent.status}, refunded {refunded}"
            )
        if provider.transfer is not None:
            drift.append(f"{deal}: refunded but the seller was paid {provider.transfer.amount_cents}")
    return drift


def _payout_drift(ledger: LedgerSide, transfer: TransferView | None) -> list[str]:
    if ledger.payout_cents is None:
        return []
    if transfer is None:
        return [
            f"{ledger.deal_id}: ledger paid the seller {ledger.payout_cents}, the provider has no transfer"
        ]
    drift = []
    if transfer.amount_cents != ledger.payout_cents or transfer.reversed:
        drift.append(
            f"{ledger.deal_id}: payout {ledger.payout_cents}, provider transfer {transfer.amount_cents}"
        )
    if ledger.seller_account and transfer.destination != ledger.seller_account:
        drift.append(f"{ledger.deal_id}: payout went to {transfer.destination}, not {ledger.seller_account}")
    return drift


_DEALS = """
SELECT d.deal_id, h.amount AS hold, h.debit_account_id AS hold_from, r.phase AS resolution,
       rel.amount AS payout, a.connected_account_id AS seller_account, i.intent_id,
       (SELECT provider_id FROM payment_ops o WHERE o.deal_id = d.deal_id AND o.kind = 'payout'
        AND o.status = 'done') AS transfer_id,
       (SELECT min(created_at) FROM payment_ops o WHERE o.deal_id = d.deal_id AND o.status = 'pending')
        AS pending_since,
       (SELECT string_agg(op_key || ' ' || coalesce(detail, ''), '; ') FROM payment_ops o
        WHERE o.deal_id = d.deal_id AND o.status = 'failed' AND o.kind <> 'authorize') AS failed_ops
FROM deals d
LEFT JOIN transfers h ON h.id = 'hold:' || d.deal_id
LEFT JOIN transfers r ON r.pending_id = h.id
LEFT JOIN transfers rel ON rel.id = 'release:' || d.deal_id
LEFT JOIN payment_accounts a ON a.market_id = d.market_id AND a.principal_id = d.seller_principal_id
LEFT JOIN payment_intents i ON i.deal_id = d.deal_id
WHERE d.market_id = $1
ORDER BY d.deal_id
"""


async def card_markets(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT market_id FROM market_rules WHERE rules->>'payment_provider' = $1 ORDER BY market_id",
        PaymentProvider.STRIPE.value,
    )
    return [r["market_id"] for r in rows]


async def reconcile(
    conn: asyncpg.Connection, rails: PaymentRails, market_id: str | None, grace: timedelta, now: datetime
) -> Report:
    report = Report()
    for market in [market_id] if market_id else await card_markets(conn):
        known: set[str] = set()
        for row in await conn.fetch(_DEALS, market):
            if row["hold_from"] and not row["hold_from"].startswith("card:"):
                continue  # held from a wallet while the market was internal: the ledger alone
            report.checked += 1
            if row["intent_id"]:
                known.add(row["intent_id"])
            if row["pending_since"] is not None:
                if now - row["pending_since"] < grace:
                    report.in_flight += 1
                    continue
                report.drift.append(
                    f"{row['deal_id']}: a provider operation pending since {row['pending_since']}"
                )
            if row["failed_ops"]:
                report.drift.append(f"{row['deal_id']}: failed {row['failed_ops']}")
            ledger = LedgerSide(
                row["deal_id"], row["hold"], row["resolution"], row["payout"], row["seller_account"]
            )
            intent = await rails.intent(row["intent_id"]) if row["intent_id"] else None
            transfer = await rails.transfer(row["transfer_id"]) if row["transfer_id"] else None
            report.drift += compare(ledger, ProviderSide(intent, transfer))
        for intent in await rails.intents_of(market):
            if intent.intent_id not in known and intent.status in MONEY_TAKEN:
                report.drift.append(
                    f"{intent.metadata.get('deal_id', '?')}: provider payment {intent.intent_id}"
                    f" {intent.status} that no ledger transfer explains"
                )
    return report
