"""`haggle listings search`: query the listing service's HTTP search."""

from __future__ import annotations

import json

import httpx
import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Listings.", no_args_is_help=True)
console = Console()


@app.command()
def search(
    q: str | None = typer.Argument(None, help="words to find in title and description"),
    category: str | None = None,
    min_price: int | None = typer.Option(None, help="cents"),
    max_price: int | None = typer.Option(None, help="cents"),
    min_condition: str | None = typer.Option(
        None, help="new, like_new, very_good, good, acceptable, for_parts"
    ),
    market: str | None = None,
    limit: int = 20,
    as_json: bool = typer.Option(False, "--json"),
    url: str | None = typer.Option(None, help="listing service URL"),
) -> None:
    """Search active listings by text, category, price range and minimum condition."""
    from haggle.procs import url_for

    params = {
        k: v
        for k, v in {
            "q": q,
            "category": category,
            "min_price": min_price,
            "max_price": max_price,
            "min_condition": min_condition,
            "market": market,
            "limit": limit,
        }.items()
        if v is not None
    }
    try:
        response = httpx.get(f"{url or url_for('listing')}/listings", params=params, timeout=10)
    except httpx.HTTPError as exc:
        console.print(f"[red]listing service not reachable:[/] {exc}")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        console.print(f"[red]search refused:[/] {response.text}")
        raise typer.Exit(1)
    body = response.json()
    if as_json:
        print(json.dumps(body, indent=2))
        return
    table = Table("listing", "title", "category", "condition", "price", "status")
    for item in body["listings"]:
        price = f"${item['price_cents'] / 100:,.2f}"
        table.add_row(
            item["listing_id"], item["title"], item["category"], item["condition"], price, item["status"]
        )
    console.print(table)
    console.print(f"{body['count']} listing(s)")
