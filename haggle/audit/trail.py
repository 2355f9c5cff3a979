"""Build the audit trail of deals from the topics' envelopes: pure, no I/O.

A trail answers "who acted for whom": for each deal, the parties' self-signed agent
registrations (agent → principal → public key), the mandates the operator assigned them (who
signed, when, the sha256 of the mandate: its limits never appear in clear), every move of the
negotiation as the agent signed it, with the agent's signed record of how it came about (which
brain, what the guard refused) and the referee's answer, the approvals (who decided, when) and
the settlement steps. `haggle.audit.verify` checks it from the export alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from haggle.contracts import Envelope, payload_of
from haggle.contracts.decisions import mandate_digest
from haggle.contracts.mandate import AssignMandate

AUDIT_VERSION = 1
Json = dict[str, Any]

AUDITED_TOPICS = (
    "agent.events",
    "mandate.commands",
    "negotiation.commands",
    "negotiation.events",
    "agent.decisions",
    "approval.events",
    "settlement.commands",
    "settlement.events",
)


def _dump(env: Envelope) -> Json:
    return env.model_dump(mode="json")


@dataclass
class Index:
    """The envelopes of one market, indexed by what a trail looks them up by."""

    registrations: dict[str, Envelope] = field(default_factory=dict)
    mandates: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    deals: dict[str, Envelope] = field(default_factory=dict)
    commands_by_thread: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    commands: dict[str, Envelope] = field(default_factory=dict)
    answers: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    opened_by: dict[str, str] = field(default_factory=dict)
    decisions: dict[str, Envelope] = field(default_factory=dict)
    approvals: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    settlement: dict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))

    def add(self, topic: str, env: Envelope) -> None:
        adder = _ADDERS.get(topic)
        if adder is not None:
            adder(self, env)

    def _agent(self, env: Envelope) -> None:
        if env.type == "AgentRegistered":
            self.registrations.setdefault(str(env.payload["agent_id"]), env)

    def _mandate(self, env: Envelope) -> None:
        if env.type == "AssignMandate":
            self.mandates[str(env.payload["mandate"]["principal_id"])].append(env)

    def _command(self, env: Envelope) -> None:
        self.commands.setdefault(str(env.event_id), env)
        if thread_id := env.payload.get("thread_id"):
            self.commands_by_thread[str(thread_id)].append(env)

    def _referee(self, env: Envelope) -> None:
        if env.type == "DealAgreed":
            self.deals.setdefault(str(env.payload["deal_id"]), env)
        if env.type == "ThreadOpened" and env.causation_id:
            self.opened_by[str(env.payload["thread_id"])] = env.causation_id
        if env.causation_id:
            self.answers[env.causation_id].append(env)

    def _decision(self, env: Envelope) -> None:
        self.decisions.setdefault(str(env.payload["command_event_id"]), env)

    def _approval(self, env: Envelope) -> None:
        self.approvals[str(env.payload.get("deal_id"))].append(env)

    def _settlement(self, env: Envelope) -> None:
        if deal_id := env.payload.get("deal_id"):
            self.settlement[str(deal_id)].append(env)


_ADDERS = {
    "agent.events": Index._agent,
    "mandate.commands": Index._mandate,
    "negotiation.commands": Index._command,
    "negotiation.events": Index._referee,
    "agent.decisions": Index._decision,
    "approval.events": Index._approval,
    "settlement.commands": Index._settlement,
    "settlement.events": Index._settlement,
}


def index(records: Iterable[tuple[str, Envelope]]) -> Index:
    found = Index()
    for topic, env in records:
        found.add(topic, env)
    return found


def mandate_entry(env: Envelope) -> Json:
    """Who assigned the mandate and its digest; the signature is over the mandate itself."""
    cmd = payload_of(env)
    assert isinstance(cmd, AssignMandate)
    return {
        "event_id": str(env.event_id),
        "assigned_at": env.occurred_at.isoformat(),
        "assigned_by": env.agent_id,
        "market_id": env.market_id,
        "seq": env.seq,
        "signature": env.signature,
        "variant": cmd.variant,
        "mandate_sha256": mandate_digest(cmd.mandate),
    }


def _moves(ix: Index, thread_id: str) -> list[Json]:
    commands = list(ix.commands_by_thread.get(thread_id, []))
    opening = ix.commands.get(ix.opened_by.get(thread_id, ""))
    if opening is not None:
        commands.insert(0, opening)
    commands.sort(key=lambda env: (env.occurred_at, env.seq or 0))
    moves = []
    for command in commands:
        event_id = str(command.event_id)
        decision = ix.decisions.get(event_id)
        moves.append(
            {
                "command": _dump(command),
                "decision": _dump(decision) if decision is not None else None,
                "answers": [_dump(a) for a in ix.answers.get(event_id, []) if a.agent_id is None],
            }
        )
    return moves


def deal_trail(ix: Index, deal_id: str) -> Json:
    deal = ix.deals[deal_id]
    thread_id = str(deal.payload["thread_id"])
    return {
        "deal_id": deal_id,
        "deal": _dump(deal),
        "moves": _moves(ix, thread_id),
        "approvals": [_dump(env) for env in ix.approvals.get(deal_id, [])],
        "settlement": [_dump(env) for env in sorted(ix.settlement.get(deal_id, []), key=_when)],
    }


def _when(env: Envelope) -> datetime:
    return env.occurred_at


def export(ix: Index, market_id: str, deal_ids: Iterable[str], operator_keys: Iterable[str]) -> Json:
    """The export of some deals of one market: what `haggle audit verify` checks on its own."""
    deals = [deal_trail(ix, deal_id) for deal_id in deal_ids]
    agents: dict[str, Json] = {}
    mandates: dict[str, list[Json]] = {}
    for trail in deals:
        payload = trail["deal"]["payload"]
        for side in ("buyer", "seller"):
            agent_id, principal_id = payload[f"{side}_agent_id"], payload[f"{side}_principal_id"]
            if (registration := ix.registrations.get(agent_id)) is not None:
                agents[agent_id] = _dump(registration)
            mandates[principal_id] = [mandate_entry(env) for env in ix.mandates.get(principal_id, [])]
    return {
        "audit_version": AUDIT_VERSION,
        "generated_at": datetime.now(UTC).isoformat(),
        "market_id": market_id,
        "operator_keys": sorted(set(operator_keys)),
        "agents": dict(sorted(agents.items())),
        "mandates": dict(sorted(mandates.items())),
        "deals": deals,
    }
