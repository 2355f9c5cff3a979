"""Card-market escrow speed: deals authorized through Stripe's API (the stateful fake) end to end.

Settlement runs as its own process pointed at `haggle_lab.testing.fake_stripe`
(in this process, so its answers cost a local HTTP round trip, not Stripe's
~300-600 ms). N `DealAgreed` in a card market are timed until N
`EscrowFunded` come back: the decision's transaction records the
authorization, the payment job leases it, calls the API with no transaction
open, and commits the answer (the hold) in a second transaction. The same
deals in an internal market are the baseline.

    .venv/bin/python -m bench.payments_throughput --count 500
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import time
import uuid
from collections.abc import Sequence

import asyncpg

from bench.settlement_throughput import BUYERS, _count, agreed, end_to_end_rate
from haggle import infra, procs
from haggle.client import Publisher, tail
from haggle.contracts import wrap
from haggle.contracts.market import MarketRulesSet, PaymentProvider
from haggle.contracts.settlement import LinkPaymentAccount, PaymentRole
from haggle.contracts.topics import (
    MARKET_EVENTS,
    NEGOTIATION_EVENTS_TOPIC,
    SETTLEMENT_COMMANDS,
    SETTLEMENT_EVENTS_TOPIC,
    all_topic_partitions,
)
from haggle.runtime.operators import operator_envelope
from haggle.runtime.settings import Settings
from haggle_lab.testing.fake_stripe import FakeStripe
from services.settlement.payments.stripe_rails import StripeRails, onboard_buyer, onboard_seller
from services.settlement.payments.webhooks import PATH

CARD_RULES = MarketRulesSet(payment_provider=PaymentProvider.STRIPE)


async def _links(rails: StripeRails, market_id: str) -> list[tuple[str, object]]:
    commands = []
    for b in range(BUYERS):
        principal = f"{market_id}-pb{b}"
        customer, method = await onboard_buyer(rails, market_id, principal, "pm_card_visa")
        link = LinkPaymentAccount(
            principal_id=principal,
            role=PaymentRole.BUYER,
            customer_id=customer,
            payment_method_id=method,
            auto_approve_limit_cents=10**9,
        )
        commands.append((principal, operator_envelope(link, market_id)))
    account, _ = await onboard_seller(rails, market_id, f"{market_id}-ps", "https://x.invalid/")
    seller = LinkPaymentAccount(
        principal_id=f"{market_id}-ps", role=PaymentRole.SELLER, connected_account_id=account
    )
    commands.append((f"{market_id}-ps", operator_envelope(seller, market_id)))
    return commands


async def _linked(database_url: str, market_id: str) -> None:
    """Until settlement knows the market's rules and every principal's provider accounts."""
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "settlement"})
    query = (
        "SELECT (SELECT count(*) FROM payment_accounts WHERE market_id = $1)"
        " + (SELECT count(*) FROM market_rules WHERE market_id = $1)"
    )
    try:
        for _ in range(600):
            if await conn.fetchval(query, market_id) >= BUYERS + 2:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("settlement did not learn the card market's accounts")
    finally:
        await conn.close()


async def card_rate(bootstrap: str, database_url: str, rails: StripeRails, count: int) -> float:
    market_id = f"bench-card-{uuid.uuid4().hex[:8]}"
    async with Publisher(bootstrap) as pub, tail(bootstrap, SETTLEMENT_EVENTS_TOPIC.name) as events:
        await pub.send(MARKET_EVENTS.name, market_id, operator_envelope(CARD_RULES, market_id))
        await pub.send_many(SETTLEMENT_COMMANDS.name, await _links(rails, market_id))  # type: ignore[arg-type]
        await _linked(database_url, market_id)
        deals = [
            (f"{market_id}-L{i}", wrap(agreed(market_id, i), market_id=market_id, producer="bench"))
            for i in range(count)
        ]
        started = time.perf_counter()
        await pub.send_many(NEGOTIATION_EVENTS_TOPIC.name, deals)
        await _count(events, "EscrowFunded", count, market_id)
        return count / (time.perf_counter() - started)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    args = parser.parse_args(argv)
    found = infra.up()
    infra.ensure_topics(found.kafka_bootstrap, all_topic_partitions())
    fake = FakeStripe(f"sk_test_{secrets.token_hex(8)}", f"whsec_{secrets.token_hex(8)}")
    fake.webhook_url = f"{procs.url_for('settlement')}{PATH}"
    with fake:
        env = {
            "HAGGLE_STRIPE_API_KEY": fake.api_key,
            "HAGGLE_STRIPE_API_BASE": fake.base_url,
            "HAGGLE_STRIPE_WEBHOOK_SECRET": fake.webhook_secret,
        }
        was_running = procs.pid_of("settlement") is not None
        procs.stop("settlement")
        procs.start("settlement", extra_env=env)
        procs.wait_ready("settlement")
        try:
            settings = Settings(
                stripe_api_key=fake.api_key,
                stripe_api_base=fake.base_url,
                stripe_webhook_secret=fake.webhook_secret,
            )
            card = asyncio.run(
                card_rate(found.kafka_bootstrap, found.database_url, StripeRails(settings), args.count)
            )
            internal = asyncio.run(end_to_end_rate(found.kafka_bootstrap, args.count))
        finally:
            procs.stop("settlement")
            if was_running:
                procs.start("settlement")
    print(
        f"card market: {card:,.1f} deals escrowed/s (authorized through the fake Stripe API);"
        f" internal market: {internal:,.1f}/s ({args.count} deals each)"
    )


if __name__ == "__main__":
    main()
