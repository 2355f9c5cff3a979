"""`haggle ledger | approvals | disputes`: the operator's and the human approver's side of settlement.

`ledger check` reads the settlement schema directly (an operator tool).
Answers (approve, deny, resolve) and wallet funding are published as messages
for the settlement service to act on; nothing here writes to its database.
Listing pending approvals and disputes asks the service over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.table import Table

from haggle.contracts import Envelope, Message
from haggle.contracts.approval import ApprovalDenied, ApprovalGranted, ApprovalRequested
from haggle.contracts.settlement import DisputeOutcome, FundWallet, ResolveDispute
from haggle.contracts.topics import APPROVAL_EVENTS, SETTLEMENT_COMMANDS

ledger_app = typer.Typer(help="The settlement ledger.", no_args_is_help=True)
approvals_app = typer.Typer(
    help="Purchases above an auto-approve limit, waiting for a human.", no_args_is_help=True
)
disputes_app = typer.Typer(help="Disputes the rules left to a human.", no_args_is_help=True)
console = Console()
PRODUCER = "cli"


def _service_get(path: str, url: str | None) -> Any:
    from haggle.procs import url_for

    try:
        response = httpx.get(f"{url or url_for('settlement')}{path}", timeout=10)
    except httpx.HTTPError as exc:
        console.print(f"[red]settlement service not reachable:[/] {exc}")
        raise typer.Exit(1) from exc
    if response.status_code != 200:
        console.print(f"[red]{path}:[/] {response.status_code} {response.text[:300]}")
        raise typer.Exit(1)
    return response.json()


def _publish(topic: str, key: str, envelope: Envelope) -> None:
    from haggle.client import Publisher
    from haggle.runtime.settings import Settings

    async def send() -> None:
        async with Publisher(Settings().kafka_bootstrap_servers, "haggle-cli") as pub:
            await pub.send(topic, key, envelope)

    asyncio.run(send())


def _envelope(message: Message, market_id: str, correlation_id: str | None) -> Envelope:
    """Signed with the operator key (see haggle/runtime/operators.py)."""
    from haggle.runtime.operators import operator_envelope

    envelope = operator_envelope(message, market_id, PRODUCER)
    return envelope.model_copy(update={"correlation_id": correlation_id})


# ledger -------------------------------------------------------------------------------


@ledger_app.command("check")
def ledger_check(market: str | None = typer.Option(None, help="only this market")) -> None:
    """Verify the ledger's invariants; exit 1 when any fails."""
    from services.settlement.check import run_checks

    results = asyncio.run(_checks(market, run_checks))
    table = Table("invariant", "holds", "offenders")
    for result in results:
        mark = "[green]true[/]" if result.ok else "[red]false[/]"
        table.add_row(result.name, mark, "; ".join(result.offenders))
    console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


async def _checks(market: str | None, run_checks: Any) -> Any:
    import asyncpg

    from haggle.runtime.settings import Settings

    conn = await asyncpg.connect(Settings().database_url, server_settings={"search_path": "settlement"})
    try:
        return await run_checks(conn, market)
    finally:
        await conn.close()


@ledger_app.command("fund")
def ledger_fund(
    principal: str,
    amount_cents: int,
    market: str = typer.Option(..., help="the market the wallet belongs to"),
    limit_cents: int = typer.Option(0, "--limit", help="auto-approve limit, cents"),
    funding_id: str = typer.Option(None, help="idempotency key; a fresh one by default"),
) -> None:
    """Credit a principal's wallet in a market (FundWallet)."""
    command = FundWallet(
        funding_id=funding_id or uuid.uuid4().hex,
        principal_id=principal,
        amount_cents=amount_cents,
        auto_approve_limit_cents=limit_cents,
    )
    _publish(SETTLEMENT_COMMANDS.name, principal, _envelope(command, market, None))
    console.print(f"funding {command.funding_id} sent: {amount_cents} cents to {principal} in {market}")


# approvals ------------------------------------------------------------------------------


@approvals_app.command("list")
def approvals_list(
    market: str | None = None, as_json: bool = typer.Option(False, "--json"), url: str | None = None
) -> None:
    """Approvals waiting for an answer."""
    body = _service_get(f"/approvals{'?market=' + market if market else ''}", url)
    if as_json:
        print(json.dumps(body, indent=2))
        return
    table = Table("approval", "deal", "market", "principal", "amount", "expires")
    for item in body["approvals"]:
        amount = f"${item['amount_cents'] / 100:,.2f}"
        row = (item["approval_id"], item["deal_id"], item["market_id"], item["principal_id"], amount)
        table.add_row(*row, item["expires_at"] or "-")
    console.print(table)


def _pending_approval(approval_id: str, url: str | None) -> dict[str, Any]:
    body = _service_get("/approvals", url)
    found = next((a for a in body["approvals"] if a["approval_id"] == approval_id), None)
    if found is None:
        console.print(f"[red]no pending approval {approval_id}[/]")
        raise typer.Exit(1)
    return dict(found)


def _answer(item: dict[str, Any], answer: Message) -> None:
    envelope = _envelope(answer, item["market_id"], item["deal_id"])
    _publish(APPROVAL_EVENTS.name, item["principal_id"], envelope)


@approvals_app.command("grant")
def approvals_grant(approval_id: str, by: str = "operator", url: str | None = None) -> None:
    """Approve the purchase: the settlement service then holds the escrow."""
    item = _pending_approval(approval_id, url)
    answer = ApprovalGranted(
        approval_id=approval_id, deal_id=item["deal_id"], principal_id=item["principal_id"], granted_by=by
    )
    _publish(
        APPROVAL_EVENTS.name, item["principal_id"], _envelope(answer, item["market_id"], item["deal_id"])
    )
    console.print(f"granted {approval_id}")


@approvals_app.command("deny")
def approvals_deny(approval_id: str, by: str = "operator", reason: str = "", url: str | None = None) -> None:
    """Refuse the purchase: the deal fails and the listing is relisted."""
    item = _pending_approval(approval_id, url)
    answer = ApprovalDenied(
        approval_id=approval_id,
        deal_id=item["deal_id"],
        principal_id=item["principal_id"],
        denied_by=by,
        reason=reason,
    )
    _publish(
        APPROVAL_EVENTS.name, item["principal_id"], _envelope(answer, item["market_id"], item["deal_id"])
    )
    console.print(f"denied {approval_id}")


# disputes -------------------------------------------------------------------------------


@disputes_app.command("list")
def disputes_list(
    market: str | None = None, as_json: bool = typer.Option(False, "--json"), url: str | None = None
) -> None:
    """Disputes waiting for a human."""
    body = _service_get(f"/disputes{'?market=' + market if market else ''}", url)
    if as_json:
        print(json.dumps(body, indent=2))
        return
    table = Table("deal", "market", "reason", "detail", "price", "delivered")
    for d in body["disputes"]:
        price = f"${d['price_cents'] / 100:,.2f}"
        row = (d["deal_id"], d["market_id"], d["dispute_reason"], d["dispute_detail"][:60], price)
        table.add_row(*row, d.get("delivered_condition") or "-")
    console.print(table)


@disputes_app.command("resolve")
def disputes_resolve(
    deal_id: str,
    outcome: Annotated[DisputeOutcome, typer.Option(help="release, refund or refund_after_return")],
    by: str = "operator",
    note: str = "",
    url: str | None = None,
) -> None:
    """Decide a dispute: release to the seller, refund the buyer, or refund once the item is back."""
    deal = _service_get(f"/deals/{deal_id}", url)
    command = ResolveDispute(deal_id=deal_id, outcome=outcome, resolved_by=by, note=note)
    _publish(SETTLEMENT_COMMANDS.name, deal_id, _envelope(command, deal["market_id"], deal_id))
    console.print(f"resolution sent for {deal_id}: {outcome.value}")


@approvals_app.command("auto")
def approvals_auto(
    market: str = typer.Option(..., help="answer this market's approvals"),
    grant_up_to: int = typer.Option(..., help="grant at or below this many cents, deny above"),
    seconds: float = typer.Option(60.0, help="stop after this long"),
    by: str = "script",
) -> None:
    """A scripted human: answer every approval requested from now on by a price threshold."""
    from haggle.runtime.settings import Settings

    answered = asyncio.run(_auto_answer(Settings().kafka_bootstrap_servers, market, grant_up_to, seconds, by))
    console.print(f"answered {answered} approval(s) in {market}")


def scripted_answer(
    request: ApprovalRequested, grant_up_to: int, by: str
) -> ApprovalGranted | ApprovalDenied:
    """The answer a threshold policy gives: what a market script says in place of a person."""
    ids = {
        "approval_id": request.approval_id,
        "deal_id": request.deal_id,
        "principal_id": request.principal_id,
    }
    if request.amount_cents <= grant_up_to:
        return ApprovalGranted(**ids, granted_by=by)
    return ApprovalDenied(**ids, denied_by=by, reason=f"above the scripted {grant_up_to} cents")


async def _auto_answer(bootstrap: str, market: str, grant_up_to: int, seconds: float, by: str) -> int:
    from haggle.client import Publisher, tail

    answered = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    async with (
        Publisher(bootstrap, "haggle-approvals-auto") as pub,
        tail(bootstrap, APPROVAL_EVENTS.name) as sub,
    ):
        print(f"listening for approvals in {market}", flush=True)
        while loop.time() < deadline:
            for records in (await sub.getmany(timeout_ms=200)).values():
                for request in filter(None, (_approval_request(r.value, market) for r in records)):
                    answer = scripted_answer(request, grant_up_to, by)
                    envelope = _envelope(answer, market, request.deal_id)
                    await pub.send(APPROVAL_EVENTS.name, request.principal_id, envelope)
                    answered += 1
    return answered


def _approval_request(raw: bytes | None, market: str) -> ApprovalRequested | None:
    from pydantic import ValidationError

    from haggle.contracts import MalformedMessage, decode

    try:
        env = decode(raw)
        if env.market_id != market or env.type != "ApprovalRequested":
            return None
        return ApprovalRequested.model_validate(env.payload)
    except (MalformedMessage, ValidationError):
        return None
