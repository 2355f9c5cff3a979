"""`haggle migrate [SERVICE...]`: apply each service's schema migrations, then exit.

Services also migrate when they start (advisory-locked, idempotent). Running the
migrations once before new pods start (the Kubernetes Job, compose's `migrate`)
makes a bad migration stop a rollout instead of crash-looping every pod.
"""

from __future__ import annotations

import asyncio
import importlib
import re
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from haggle.runtime.service import ServiceModule

console = Console()
_SERVICE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,40}$")


def load_module(name: str) -> ServiceModule:
    """`services.<name>.app.MODULE`, or a clear error naming the unknown service."""
    if not _SERVICE_NAME.match(name):
        raise typer.BadParameter(f"invalid service name {name!r}")
    path = f"services.{name}.app"
    try:
        return importlib.import_module(path).MODULE  # type: ignore[no-any-return]
    except ModuleNotFoundError as exc:
        if exc.name not in ("services", f"services.{name}", path):
            raise
        raise typer.BadParameter(f"unknown service {name!r} (no module {path})") from exc


async def migrate_services(database_url: str, modules: list[ServiceModule]) -> dict[str, list[str]]:
    """Migrate each module's schema in turn; returns the migration files applied per service."""
    from haggle.runtime import db

    applied: dict[str, list[str]] = {}
    for module in modules:
        pool = await db.create_pool(database_url, module.schema, 2)
        try:
            applied[module.name] = await db.migrate(pool, module.schema, module.migrations)
        finally:
            await pool.close()
    return applied


def migrate(
    services: Annotated[
        list[str] | None, typer.Argument(help="Services to migrate; default: every service.")
    ] = None,
) -> None:
    """Apply the database migrations of SERVICES, then exit (the deploy's migration job)."""
    import asyncpg

    from haggle.procs import SERVICES
    from haggle.runtime.settings import Settings

    settings = Settings()
    modules = [load_module(name) for name in services or SERVICES]
    try:
        applied = asyncio.run(migrate_services(settings.database_url, modules))
    except (OSError, asyncpg.PostgresError) as exc:
        console.print(f"[red]migration failed:[/] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
    for name, files in applied.items():
        console.print(f"{name}: {', '.join(files) if files else 'up to date'}")
