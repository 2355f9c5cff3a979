"""The payment-provider port: what settlement asks of a provider, and the settings to reach one.

The market's rules choose (`domain.uses_provider`): an `internal` market moves money only in
the ledger and never reaches this port; a `stripe` market's operations go through
`StripeRails`, the one adapter. Every operation carries our idempotency key and may be sent
again with it after an error, a timeout or a crash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.settlement.payments.domain import PaymentOp, ProviderResult


class PaymentsSettings(BaseSettings):
    """From the environment: `HAGGLE_STRIPE_*` reaches Stripe, `HAGGLE_PAYMENTS_*` paces the job."""

    model_config = SettingsConfigDict(env_prefix="HAGGLE_", extra="ignore", frozen=True)

    stripe_api_key: SecretStr = Field(default=SecretStr(""), description="sk_live_… or sk_test_…")
    stripe_api_base: str | None = Field(default=None, description="another API host (stripe-mock, a fake)")
    stripe_webhook_secret: SecretStr = Field(default=SecretStr(""), description="whsec_… of the endpoint")
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3_600)
    payments_auth_validity_seconds: int = Field(
        default=7 * 24 * 3600, ge=1, description="how long a card authorization lasts (Stripe: 7 days)"
    )
    payments_capture_margin_seconds: int = Field(
        default=24 * 3600, ge=0, description="capture this long before the authorization lapses"
    )
    payments_tick_seconds: float = Field(default=0.25, gt=0, le=60)
    payments_sweep_seconds: float = Field(
        default=5.0, gt=0, le=3_600, description="how often held authorizations are checked for capture"
    )
    payments_lease_seconds: float = Field(
        default=60.0, gt=0, description="an operation claimed but not answered is tried again after this"
    )
    payments_timeout_seconds: float = Field(default=20.0, gt=0, le=120)
    payments_retry_seconds: float = Field(
        default=20.0, gt=0, description="retries (same idempotency key) give up after this, then the lease"
    )

    @property
    def stripe_configured(self) -> bool:
        return bool(self.stripe_api_key.get_secret_value())


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
