"""`haggle payments`: card markets' principals onboarded at Stripe, and the ledger reconciled with it.

`onboard buyer|seller` talks to Stripe (the same `HAGGLE_STRIPE_*` settings as
the settlement service), then publishes the operator-signed `LinkPaymentAccount`.
`reconcile` reads the settlement schema and asks Stripe for every object it
names; it prints any drift and exits 1 when there is some.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import typer
from rich.console import Console

from haggle.cli.settlement import _envelope, _publish
from haggle.contracts.market import MarketRulesSet, PaymentProvider
from haggle.contracts.settlement import LinkPaymentAccount, PaymentRole
from haggle.contracts.topics import MARKET_EVENTS, SETTLEMENT_COMMANDS

app = typer.Typer(help="Card payments and seller payouts through Stripe.", no_args_is_help=True)
onboard_app = typer.Typer(help="Link a principal to its Stripe accounts.", no_args_is_help=True)
app.add_typer(onboard_app, name="onboard")
console = Console()


def _rails():  # type: ignore[no-untyped-def]
    from haggle.runtime.settings import current
    from services.settlement.payments.stripe_rails import StripeRails

    settings = current()
    if not settings.stripe_configured:
        console.print("[red]HAGGLE_STRIPE_API_KEY is not set[/]")
        raise typer.Exit(2)
    return StripeRails(settings)


@onboard_app.command("buyer")
def onboard_buyer(
    principal: str,
    market: str = typer.Option(..., help="the card market"),
    payment_method: str = typer.Option(
        "pm_card_visa", help="a payment method to save (in test mode, Stripe's test cards)"
    ),
    limit_cents: int = typer.Option(0, "--limit", help="auto-approve limit, cents"),
) -> None:
    """A Customer with a saved payment method (SetupIntent), linked to the principal."""
    from services.settlement.payments.stripe_rails import onboard_buyer as create

    customer, method = asyncio.run(create(_rails(), market, principal, payment_method))
    command = LinkPaymentAccount(
        principal_id=principal,
        role=PaymentRole.BUYER,
        customer_id=customer,
        payment_method_id=method,
        auto_approve_limit_cents=limit_cents,
    )
    _publish(SETTLEMENT_COMMANDS.name, principal, _envelope(command, market, None))
    console.print(f"{principal}: customer {customer}, payment method {method} linked in {market}")


@onboard_app.command("seller")
def onboard_seller(
    principal: str,
    market: str = typer.Option(..., help="the card market"),
    return_url: str = typer.Option(
        "https://example.com/onboarded", help="where Stripe sends the seller back"
    ),
) -> None:
    """A connected account for payouts, linked to the principal; prints its onboarding link."""
    from services.settlement.payments.stripe_rails import onboard_seller as create

    account, url = asyncio.run(create(_rails(), market, principal, return_url))
    command = LinkPaymentAccount(
        principal_id=principal, role=PaymentRole.SELLER, connected_account_id=account
    )
    _publish(SETTLEMENT_COMMANDS.name, principal, _envelope(command, market, None))
    console.print(f"{principal}: connected account {account} linked in {market}; onboarding: {url}")


@app.command("use")
def use_provider(
    provider: PaymentProvider,
    market: str = typer.Option(..., help="the market whose money moves through this provider"),
) -> None:
    """Republish the market's rules (as settlement has them) with this payment provider."""
    from haggle.cli.settlement import _service_get

    try:
        current = _service_get(f"/markets/{market}/rules", None)
    except typer.Exit:
        console.print("no rules published yet: starting from the defaults")
        current = {}
    rules = MarketRulesSet.model_validate({**current, "payment_provider": provider.value})
    _publish(MARKET_EVENTS.name, market, _envelope(rules, market, None))
    console.print(f"{market}: rules republished with payment_provider={provider.value}")


@app.command("reconcile")
def reconcile(
    market: str | None = typer.Option(None, help="only this market (default: every card market)"),
    grace: float = typer.Option(300.0, help="seconds an operation may be in flight before it is drift"),
) -> None:
    """Compare the ledger with Stripe's objects; print any drift, exit 1 on drift."""
    report = asyncio.run(_reconcile(market, grace))
    for line in report.drift:
        console.print(f"[red]drift[/] {line}", soft_wrap=True)
    console.print(
        f"{report.checked} deals checked, {report.in_flight} in flight, {len(report.drift)} drifted",
        soft_wrap=True,
    )
    if report.drift:
        raise typer.Exit(1)


async def _reconcile(market: str | None, grace: float):  # type: ignore[no-untyped-def]
    import asyncpg

    from haggle.runtime.settings import Settings
    from services.settlement.payments.reconcile import reconcile as run

    rails = _rails()
    conn = await asyncpg.connect(Settings().database_url, server_settings={"search_path": "settlement"})
    try:
        return await run(conn, rails, market, timedelta(seconds=grace), datetime.now(UTC))
    finally:
        await conn.close()
