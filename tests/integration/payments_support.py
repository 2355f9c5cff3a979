"""What the card-payment tests share: stripe-mock, the stateful fake Stripe, settlement pointed at it.

stripe-mock (Stripe's official mock, a Go program) is built into
`.haggle/bin` if it is missing and started on a free port. The fake runs in
the test process; settlement is restarted with `HAGGLE_STRIPE_*` naming it,
and put back as it was afterwards. The environment is changed for this test
process too, so a settlement the fault tests restart still finds the fake.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from haggle import procs
from haggle.contracts import Condition, ShippingMethod
from haggle.contracts.settlement import LinkPaymentAccount, PaymentRole
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.infra.state import REPO_ROOT
from haggle.runtime.operators import operator_envelope
from haggle.runtime.settings import Settings
from haggle_lab.testing.actors import ScriptedAgent
from haggle_lab.testing.fake_stripe import FakeStripe
from haggle_lab.testing.ports import free_port
from services.settlement.payments.stripe_rails import StripeRails, onboard_buyer, onboard_seller
from services.settlement.payments.webhooks import PATH
from tests.integration.settlement_support import SettlementMarket, eventually, settlement_services

STRIPE_MOCK_VERSION = "v0.203.0"
BIN_DIR = REPO_ROOT / ".haggle" / "bin"


def stripe_mock_binary() -> Path:
    """`.haggle/bin/stripe-mock`, built with `go install` when it is not there yet."""
    found = BIN_DIR / "stripe-mock"
    if found.exists():
        return found
    if on_path := shutil.which("stripe-mock"):
        return Path(on_path)
    BIN_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["go", "install", f"github.com/stripe/stripe-mock@{STRIPE_MOCK_VERSION}"],
        env={**os.environ, "GOBIN": str(BIN_DIR)},
        check=True,
        timeout=600,
    )
    return found


@contextlib.contextmanager
def stripe_mock() -> Iterator[str]:
    port, tls_port = free_port(), free_port()
    process = subprocess.Popen(
        [
            str(stripe_mock_binary()),
            "-http-addr",
            f"127.0.0.1:{port}",
            "-https-addr",
            f"127.0.0.1:{tls_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/v1/charges", headers={"Authorization": "Bearer sk_test_123"}, timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("stripe-mock did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class CardRails:
    fake: FakeStripe
    settings: Settings
    env: dict[str, str]

    @functools.cached_property
    def rails(self) -> StripeRails:
        return StripeRails(self.settings)


def _settings_env(fake: FakeStripe) -> dict[str, str]:
    return {
        "HAGGLE_STRIPE_API_KEY": fake.api_key,
        "HAGGLE_STRIPE_API_BASE": fake.base_url,
        "HAGGLE_STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
        "HAGGLE_PAYMENTS_LEASE_SECONDS": "2",
        "HAGGLE_PAYMENTS_TICK_SECONDS": "0.1",
        "HAGGLE_PAYMENTS_SWEEP_SECONDS": "0.5",
        "HAGGLE_PAYMENTS_RETRY_SECONDS": "10",
    }


@contextlib.contextmanager
def card_rails() -> Iterator[CardRails]:
    """A fake Stripe, and settlement (with listing) running against it until the block ends."""
    api_key, secret = f"sk_test_{secrets.token_hex(12)}", f"whsec_{secrets.token_hex(16)}"
    fake = FakeStripe(api_key, secret, webhook_url=f"{procs.url_for('settlement')}{PATH}").start()
    env = _settings_env(fake)
    saved = {name: os.environ.get(name) for name in env}
    was_running = procs.pid_of("settlement") is not None
    os.environ.update(env)
    procs.stop("settlement")
    try:
        with settlement_services():
            yield CardRails(fake, Settings(**_as_fields(env)), env)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        procs.stop("settlement")
        if was_running:
            procs.start("settlement")
            procs.wait_ready("settlement")
        fake.stop()


def _as_fields(env: dict[str, str]) -> dict[str, Any]:
    return {name.removeprefix("HAGGLE_").lower(): value for name, value in env.items()}


CARD_RULES: dict[str, Any] = {"payment_provider": "stripe"}


async def link(
    market: SettlementMarket, rails: StripeRails, agent: ScriptedAgent, payment_method: str = "pm_card_visa"
) -> LinkPaymentAccount:
    """Onboard one principal at the provider and link it, as `haggle payments onboard` does."""
    if agent.role.value == "buyer":
        customer, method = await onboard_buyer(rails, market.market_id, agent.principal_id, payment_method)
        command = LinkPaymentAccount(
            principal_id=agent.principal_id,
            role=PaymentRole.BUYER,
            customer_id=customer,
            payment_method_id=method,
            auto_approve_limit_cents=10_000_000,
        )
    else:
        account, _ = await onboard_seller(rails, market.market_id, agent.principal_id, "https://x.invalid/")
        command = LinkPaymentAccount(
            principal_id=agent.principal_id, role=PaymentRole.SELLER, connected_account_id=account
        )
    env = operator_envelope(command, market.market_id)
    await market.pub.send(SETTLEMENT_COMMANDS.name, agent.principal_id, env)

    async def linked() -> bool:
        return bool(
            await market.pool.fetchval(
                "SELECT 1 FROM payment_accounts WHERE market_id = $1 AND principal_id = $2",
                market.market_id,
                agent.principal_id,
            )
        )

    await eventually(linked, f"{agent.principal_id} linked")
    return command


async def card_market(
    market: SettlementMarket, card: CardRails, buyer_method: str = "pm_card_visa", **rules: Any
) -> None:
    await market.open(**{**CARD_RULES, **rules})
    await link(market, card.rails, market.buyer, buyer_method)
    await link(market, card.rails, market.seller)


async def agreed(market: SettlementMarket, deal_id: str, condition: Condition = Condition.VERY_GOOD) -> None:
    listing_id = f"l-{deal_id}"
    await market.listing(listing_id, condition)
    await market.agree(market.deal(deal_id, listing_id, method=ShippingMethod.PARCEL_STANDARD))


def intent_of(fake: FakeStripe, deal_id: str) -> list[dict[str, Any]]:
    return [o for o in fake.of_kind("payment_intent") if o["metadata"].get("deal_id") == deal_id]


def transfers_of(fake: FakeStripe, deal_id: str) -> list[dict[str, Any]]:
    return [o for o in fake.of_kind("transfer") if o["metadata"].get("deal_id") == deal_id]


def refunds_of(fake: FakeStripe, deal_id: str) -> list[dict[str, Any]]:
    return [o for o in fake.of_kind("refund") if o["metadata"].get("deal_id") == deal_id]


async def ops_settled(market: SettlementMarket, deal_id: str) -> None:
    async def settled() -> bool:
        pending = await market.pool.fetchval(
            "SELECT count(*) FROM payment_ops WHERE deal_id = $1 AND status = 'pending'", deal_id
        )
        return pending == 0

    await eventually(settled, f"{deal_id}'s provider operations answered", timeout=60)
