"""`haggle events tail TOPIC`: read a topic as an outside consumer would (no group, no offsets moved)."""

from __future__ import annotations

import asyncio
import contextlib
import sys

import orjson
import typer

from haggle.events import Filter, UnknownTopic, check_topic, describe, known_topics, read

app = typer.Typer(help="The event topics, as a consumer sees them.", no_args_is_help=True)


@app.command()
def tail(
    topic: str = typer.Argument(..., help="a topic of the registry, e.g. negotiation.events"),
    market: str | None = typer.Option(None, "--market", help="only this market's messages"),
    types: list[str] = typer.Option([], "--type", help="only this message type (repeatable)"),
    follow: bool = typer.Option(False, "--follow", "-f", help="keep reading new messages"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line: topic, offset, envelope"),
    new_only: bool = typer.Option(False, "--new", help="skip the history: start at the end"),
) -> None:
    """Print a topic's messages from the start (or, with --new, from now); --follow keeps going."""
    from haggle.runtime.settings import Settings

    try:
        check_topic(topic)
    except UnknownTopic as exc:
        raise typer.BadParameter(str(exc), param_hint="TOPIC") from None
    wanted = Filter(market, frozenset(types))
    bootstrap = Settings().kafka_bootstrap_servers
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_print(bootstrap, topic, wanted, follow, as_json, not new_only))


async def _print(
    bootstrap: str, topic: str, wanted: Filter, follow: bool, as_json: bool, start: bool
) -> None:
    out = sys.stdout
    # A malformed record has no market or type: shown only when nothing is filtered.
    unfiltered = wanted.market_id is None and not wanted.types
    async for item in read(bootstrap, [topic], wanted, follow=follow, from_start=start, malformed=unfiltered):
        out.write(orjson.dumps(item.as_json()).decode() if as_json else describe(item))
        out.write("\n")
        out.flush()


@app.command("topics")
def topics() -> None:
    """Every topic a consumer can tail."""
    for name in known_topics():
        typer.echo(name)
