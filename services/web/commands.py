"""What the web app writes: operator-signed commands and answers, through its own outbox.

The web app never touches another service's schema. A person's action becomes a
message signed with the operator key (as `haggle approvals grant` signs it), naming
the person who acted (`principal:<id>`); it is written to the outbox in the same
transaction as the web app's own record of it, and the relay publishes it.
"""

from __future__ import annotations

from haggle.contracts import Message, sealing
from haggle.contracts.approval import ApprovalDenied, ApprovalGranted
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.market import MarketClosing, MarketRulesSet
from haggle.contracts.settlement import (
    AcceptGoods,
    DisputeOutcome,
    DisputeReason,
    FundWallet,
    OpenDispute,
    ResolveDispute,
    SetShipTo,
)
from haggle.contracts.topics import APPROVAL_EVENTS, MANDATE_COMMANDS, MARKET_EVENTS, SETTLEMENT_COMMANDS
from haggle.runtime.operators import operator_envelope
from haggle.runtime.outbox import UnitOfWork
from services.web import vault

PRODUCER = "web"


def actor(principal_id: str) -> str:
    """How an answer names the person who gave it."""
    return f"principal:{principal_id}"


def _emit(
    uow: UnitOfWork, topic: str, key: str, message: Message, market_id: str, correlation: str | None
) -> None:
    uow.emit(topic, key, operator_envelope(message, market_id, PRODUCER, correlation))


async def assign_mandate(uow: UnitOfWork, market_id: str, mandate: Mandate, source: str) -> bool:
    """Fund the budget and hand the mandate to the agents service, once per principal."""
    stored = await uow.conn.fetchval(
        "INSERT INTO mandates (principal_id, market_id, mandate, source) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT (principal_id) DO NOTHING RETURNING 1",
        mandate.principal_id,
        market_id,
        mandate.model_dump_json(),
        source,
    )
    if stored is None:
        return False
    if mandate.budget_cents > 0:
        funding = FundWallet(
            funding_id=f"web-{mandate.principal_id}",
            principal_id=mandate.principal_id,
            amount_cents=mandate.budget_cents,
            auto_approve_limit_cents=mandate.auto_approve_limit_cents,
        )
        _emit(uow, SETTLEMENT_COMMANDS.name, mandate.principal_id, funding, market_id, None)
    assign = AssignMandate(mandate=mandate, variant="web")
    _emit(uow, MANDATE_COMMANDS.name, mandate.principal_id, assign, market_id, None)
    return True


async def amend_mandate(uow: UnitOfWork, market_id: str, old: Mandate, new: Mandate) -> bool:
    """Record the amended mandate and hand it to the agents service; False when it changed meanwhile."""
    stored = await uow.conn.fetchval(
        "UPDATE mandates SET mandate = $3, submitted_at = now()"
        " WHERE principal_id = $1 AND mandate = $2::jsonb RETURNING 1",
        new.principal_id,
        old.model_dump_json(),
        new.model_dump_json(),
    )
    if stored is None:
        return False
    assign = AssignMandate(mandate=new, variant="web")
    _emit(uow, MANDATE_COMMANDS.name, new.principal_id, assign, market_id, None)
    return True


async def answer_approval(
    uow: UnitOfWork, approval: dict[str, object], principal_id: str, grant: bool
) -> bool:
    """Grant or deny once; a second answer (another tab, a double click) sends nothing."""
    sent = await uow.conn.fetchval(
        "UPDATE approvals SET answer_sent_at = now() WHERE approval_id = $1 AND principal_id = $2"
        " AND status = 'waiting' AND answer_sent_at IS NULL AND expires_at > now() RETURNING 1",
        approval["approval_id"],
        principal_id,
    )
    if sent is None:
        return False
    ids = {
        "approval_id": approval["approval_id"],
        "deal_id": approval["deal_id"],
        "principal_id": principal_id,
    }
    answer: Message = (
        ApprovalGranted.model_validate({**ids, "granted_by": actor(principal_id)})
        if grant
        else ApprovalDenied.model_validate(
            {**ids, "denied_by": actor(principal_id), "reason": "denied in the web app"}
        )
    )
    market_id, deal_id = str(approval["market_id"]), str(approval["deal_id"])
    _emit(uow, APPROVAL_EVENTS.name, principal_id, answer, market_id, deal_id)
    return True


async def send_ship_to(uow: UnitOfWork, market_id: str, deal_id: str, buyer_principal_id: str) -> bool:
    """The buyer's address to settlement for one deal: opened from the web's vault in memory and
    sealed for this deal under the shipping key. False when the buyer gave no address."""
    row = await uow.conn.fetchrow(
        "SELECT nonce, ciphertext FROM addresses WHERE principal_id = $1", buyer_principal_id
    )
    if row is None:
        return False
    address = vault.unseal(buyer_principal_id, bytes(row["nonce"]), bytes(row["ciphertext"]))
    sealed = sealing.seal(sealing.shipping_key(create=True), sealing.Sealed.ADDRESS, deal_id, address)
    del address
    command = SetShipTo(deal_id=deal_id, sealed_address=sealed)
    _emit(uow, SETTLEMENT_COMMANDS.name, deal_id, command, market_id, deal_id)
    return True


def open_dispute(uow: UnitOfWork, market_id: str, deal_id: str, reason: DisputeReason, detail: str) -> None:
    command = OpenDispute(deal_id=deal_id, reason=reason, detail=detail)
    _emit(uow, SETTLEMENT_COMMANDS.name, deal_id, command, market_id, deal_id)


def accept_goods(uow: UnitOfWork, market_id: str, deal_id: str) -> None:
    """The buyer accepts what arrived (settlement takes an operator-signed one as the buyer's)."""
    _emit(uow, SETTLEMENT_COMMANDS.name, deal_id, AcceptGoods(deal_id=deal_id), market_id, deal_id)


def resolve_dispute(
    uow: UnitOfWork, market_id: str, deal_id: str, outcome: DisputeOutcome, note: str
) -> None:
    command = ResolveDispute(deal_id=deal_id, outcome=outcome, resolved_by="operator:web", note=note)
    _emit(uow, SETTLEMENT_COMMANDS.name, deal_id, command, market_id, deal_id)


def open_market(uow: UnitOfWork, market_id: str, rules: MarketRulesSet) -> None:
    _emit(uow, MARKET_EVENTS.name, market_id, rules, market_id, None)


def close_market(uow: UnitOfWork, market_id: str, reason: str) -> None:
    _emit(uow, MARKET_EVENTS.name, market_id, MarketClosing(reason=reason), market_id, None)
