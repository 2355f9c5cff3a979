"""The payment-provider port: what settlement asks of a provider.

The market's rules choose (`domain.uses_provider`): an `internal` market moves money only in
the ledger and never reaches this port; a `stripe` market's operations go through
`StripeRails`, the one adapter, which reaches Stripe with the service's settings
(`HAGGLE_STRIPE_*`, `HAGGLE_PAYMENTS_*` in `haggle.runtime.settings`). Every operation
carries our idempotency key and may be sent again with it after an error, a timeout or a
crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from services.settlement.payments.domain import PaymentOp, ProviderResult


@dataclass(frozen=True)
class Party:
    """A principal's accounts at the provider."""

    customer_id: str | None = None
    payment_method_id: str | None = None
    connected_account_id: str | None = None


@dataclass(frozen=True)
class IntentView:
    """What the provider holds for a deal, as it says now."""

    intent_id: str
    status: str
    amount_cents: int
    amount_received_cents: int
    charge_id: str | None
    amount_refunded_cents: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class TransferView:
    transfer_id: str
    amount_cents: int
    destination: str
    reversed: bool
    metadata: dict[str, str]


class PaymentRails(Protocol):
    async def authorize(self, op: PaymentOp, buyer: Party) -> ProviderResult: ...

    async def capture(self, op: PaymentOp, intent_id: str) -> ProviderResult: ...

    async def payout(self, op: PaymentOp, seller: Party, charge_id: str | None) -> ProviderResult: ...

    async def void(self, op: PaymentOp, intent_id: str, captured: bool) -> ProviderResult: ...

    async def intent(self, intent_id: str) -> IntentView: ...

    async def transfer(self, transfer_id: str) -> TransferView: ...

    async def intents_of(self, market_id: str) -> list[IntentView]: ...
