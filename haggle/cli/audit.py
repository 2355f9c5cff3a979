"""`haggle audit deal|market|verify`: the signed chain behind a deal, exported and checked."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

app = typer.Typer(help="Audit trails: who acted for whom, signed.", no_args_is_help=True)
console = Console()
Json = dict[str, Any]


def _bootstrap() -> str:
    from haggle.runtime.settings import Settings

    return Settings().kafka_bootstrap_servers


def _build(market: str | None, deal_id: str | None) -> Json:
    from haggle.audit import export
    from haggle.audit.collect import collect, market_of_deal
    from haggle.runtime.operators import public_keys

    async def run() -> Json:
        bootstrap = _bootstrap()
        market_id = market or await market_of_deal(bootstrap, str(deal_id))
        found = await collect(bootstrap, market_id)
        deals = [deal_id] if deal_id is not None else sorted(found.deals)
        missing = [d for d in deals if d not in found.deals]
        if missing:
            raise typer.BadParameter(f"no deal {missing[0]!r} in market {market_id}")
        return export(found, market_id, deals, public_keys())

    return asyncio.run(run())


def _write(data: Json, path: Path | None) -> None:
    if path is not None:
        path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
        console.print(f"exported to {path}")


@app.command()
def deal(
    deal_id: str,
    market: str | None = typer.Option(None, help="the deal's market (found by scanning otherwise)"),
    json_path: Path | None = typer.Option(None, "--json", help="also export the trail to this file"),
) -> None:
    """Print the whole signed chain behind one deal; --json exports it for `haggle audit verify`."""
    from haggle.audit.collect import DealNotFound
    from haggle.audit.render import render

    try:
        data = _build(market, deal_id)
    except DealNotFound as exc:
        raise typer.BadParameter(str(exc), param_hint="DEAL_ID") from None
    typer.echo(render(data))
    _write(data, json_path)


@app.command()
def market(
    market_id: str,
    json_path: Path = typer.Option(..., "--json", help="export every deal's trail to this file"),
) -> None:
    """Export the trail of every deal of a market."""
    data = _build(market_id, None)
    console.print(f"{len(data['deals'])} deals of {market_id}")
    _write(data, json_path)


@app.command("verify")
def verify(
    file: Path,
    operator_keys: list[str] = typer.Option([], "--operator-key", help="trusted operator public key"),
    mandates: list[Path] = typer.Option([], "--mandate", help="a mandate file, to check its assignment"),
) -> None:
    """Check every signature in an export, from the file alone; exit 1 if anything fails."""
    from haggle.audit import verify_export
    from haggle.contracts.mandate import load_mandate

    try:
        data = json.loads(file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise typer.BadParameter(f"cannot read {file}: {exc}") from None
    from haggle.runtime.operators import public_keys

    loaded = {m.principal_id: m for m in (load_mandate(p) for p in mandates)}
    trusted = operator_keys or list(public_keys())  # the deployment's, when this machine has them
    report = verify_export(data, trusted, loaded)
    for note in report.notes:
        typer.echo(f"note: {note}")
    for failure in report.failures:
        typer.echo(f"FAIL {failure}")
    verdict = "ok" if report.ok else f"{len(report.failures)} failures"
    typer.echo(f"{report.deals} deals, {report.checked} signatures checked: {verdict}")
    if not report.ok:
        raise typer.Exit(1)
