"""`haggle principals invite`: a one-time sign-in link to the web app, for a principal or an operator.

Like `haggle ledger check` reads the settlement schema, this operator tool writes the
invite straight into the web service's schema (migrated first); only the token's hash
is stored, the link is printed once.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import typer

app = typer.Typer(help="People in the market: sign-in links to the web app.", no_args_is_help=True)


@app.command("invite")
def invite(
    principal: str = typer.Argument(None, help="the principal to sign in (omit with --operator)"),
    market: str = typer.Option(..., help="the market the person takes part in"),
    operator: bool = typer.Option(False, "--operator", help="a link to the operator console instead"),
    hours: float = typer.Option(24.0, min=0.01, max=24 * 14, help="how long the link works"),
) -> None:
    """Print a single-use, expiring sign-in link."""
    from services.web import auth

    if operator == (principal is not None):
        raise typer.BadParameter("give a principal id, or --operator")
    role = auth.Role.OPERATOR if operator else auth.Role.PRINCIPAL
    print(asyncio.run(make_link(role, principal, market, timedelta(hours=hours))))


async def make_link(role: str, principal: str | None, market: str, ttl: timedelta) -> str:
    """A one-time link; `role` is 'principal' or 'operator'."""
    from haggle.runtime.db import create_pool, migrate
    from haggle.runtime.settings import Settings
    from services.web import app as web_app
    from services.web import auth
    from services.web.ops import invite_link

    settings = Settings()
    pool = await create_pool(settings.database_url, web_app.SCHEMA, 2)
    try:
        await migrate(pool, web_app.SCHEMA, web_app.MIGRATIONS)
        async with pool.acquire() as conn:
            token = await auth.create_invite(conn, auth.Role(role), principal, market, ttl)
    finally:
        await pool.close()
    return invite_link(token, settings)
