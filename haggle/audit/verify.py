"""Check an audit export on its own: every signature, and that the deal rests on signed moves.

What is checked (each failure names where in the file):
- each party's registration is signed by the key it registers (possession of the key);
- each move is signed by a party's registered key, and its decision record by the same key,
  naming that move and a mandate digest the operator assigned to that principal;
- the deal's price and shipping are those of an offer a party signed, accepted by a move the
  other party signed (the referee's records are unsigned: this binds them to signed ones);
- each approval answer and operator command is signed by an operator key;
- each agent command in settlement is signed by a party;
- with the mandates at hand (`mandates=`), each assignment's operator signature and digest.

Operator keys are trusted from `operator_keys` when given (the deployment's), else taken from
the export itself, which the report then says. A wholesale forgery (new keys, re-signed
everything) is consistent in itself: compare the agents' keys with the platform's agent.events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from haggle.contracts import Envelope, envelope_signature_valid
from haggle.contracts.decisions import mandate_digest
from haggle.contracts.mandate import AssignMandate, Mandate
from haggle.contracts.signing import signing_bytes, verify
from haggle.runtime.operators import OPERATOR_ID

Json = dict[str, Any]
OPERATOR_ANSWERS = {"ApprovalGranted", "ApprovalDenied"}


@dataclass
class Report:
    checked: int = 0
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deals: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, where: str, what: str) -> None:
        self.failures.append(f"{where}: {what}")


@dataclass
class _Keys:
    agents: dict[str, str]
    principals: dict[str, str]
    operators: tuple[str, ...]
    digests: dict[str, set[str]]


def _envelope(raw: Any, where: str, report: Report) -> Envelope | None:
    try:
        return Envelope.model_validate(raw)
    except ValidationError as exc:
        report.fail(where, f"not an envelope ({exc.error_count()} errors)")
        return None


def _signed_by(env: Envelope, key: str | None, where: str, report: Report) -> bool:
    report.checked += 1
    if key is None or not envelope_signature_valid(env, key):
        report.fail(where, f"{env.type} signature does not verify for {env.agent_id}")
        return False
    return True


def _agents(export: Json, report: Report) -> tuple[dict[str, str], dict[str, str]]:
    keys, principals = {}, {}
    for agent_id, raw in export.get("agents", {}).items():
        where = f"agents.{agent_id}"
        env = _envelope(raw, where, report)
        if env is None:
            continue
        payload = env.payload
        if env.type != "AgentRegistered" or payload.get("agent_id") != agent_id or env.agent_id != agent_id:
            report.fail(where, "not this agent's registration")
            continue
        if _signed_by(env, str(payload.get("public_key")), where, report):
            keys[agent_id], principals[agent_id] = str(payload["public_key"]), str(payload["principal_id"])
    return keys, principals


def _operator_signed(entry: Json, payload: Json, operators: tuple[str, ...]) -> bool:
    data = signing_bytes(entry["market_id"], OPERATOR_ID, int(entry["seq"]), payload)
    return any(verify(key, data, str(entry["signature"])) for key in operators)


def _mandates(
    export: Json, operators: tuple[str, ...], files: Mapping[str, Mandate], report: Report
) -> dict[str, set[str]]:
    digests: dict[str, set[str]] = {}
    for principal_id, entries in export.get("mandates", {}).items():
        digests[principal_id] = {str(e.get("mandate_sha256")) for e in entries}
        mandate = files.get(principal_id)
        if mandate is not None and mandate_digest(mandate) not in digests[principal_id]:
            report.fail(f"mandates.{principal_id}", "the mandate given is not one the operator assigned")
        for n, entry in enumerate(entries):
            where = f"mandates.{principal_id}[{n}]"
            if entry.get("assigned_by") != OPERATOR_ID:
                report.fail(where, f"assigned by {entry.get('assigned_by')!r}, not the operator")
            if mandate is None or mandate_digest(mandate) != entry.get("mandate_sha256"):
                continue
            report.checked += 1
            payload = AssignMandate(mandate=mandate, variant=entry["variant"]).model_dump(mode="json")
            if not _operator_signed(entry, payload, operators):
                report.fail(where, "the operator's signature does not verify for this mandate")
    if not files:
        report.notes.append("mandate signatures need the mandates (limits are withheld): digests only")
    return digests


def _move(move: Json, where: str, keys: _Keys, parties: set[str], report: Report) -> Envelope | None:
    command = _envelope(move.get("command"), f"{where}.command", report)
    if command is None:
        return None
    if command.agent_id not in parties:
        report.fail(f"{where}.command", f"signed by {command.agent_id}, not a party to the deal")
        return None
    if not _signed_by(command, keys.agents.get(str(command.agent_id)), f"{where}.command", report):
        return None
    if move.get("decision") is not None:
        _decision(move["decision"], command, f"{where}.decision", keys, report)
    return command


def _decision(raw: Json, command: Envelope, where: str, keys: _Keys, report: Report) -> None:
    decision = _envelope(raw, where, report)
    if decision is None or not _signed_by(decision, keys.agents.get(str(command.agent_id)), where, report):
        return
    if decision.agent_id != command.agent_id or decision.payload.get("command_event_id") != str(
        command.event_id
    ):
        report.fail(where, "records another move than the one it sits beside")
    principal = keys.principals.get(str(command.agent_id), "")
    if principal in keys.digests and decision.payload.get("mandate_sha256") not in keys.digests[principal]:
        report.fail(where, f"acted under a mandate the operator did not assign to {principal}")


def _binding(deal: Json, commands: list[Envelope], answers: list[Json], where: str, report: Report) -> None:
    """The deal's terms are a signed offer's, accepted by the other party's signed move."""
    offer_id = deal["accepted_offer_id"]
    made = [a for a in answers if a.get("type") == "OfferMade" and a["payload"].get("offer_id") == offer_id]
    by_id = {str(c.event_id): c for c in commands}
    offer = by_id.get(str(made[0].get("causation_id"))) if made else None
    if offer is None or made[0]["payload"].get("agent_id") != offer.agent_id:
        report.fail(where, f"accepted offer {offer_id} is not backed by a signed offer in the trail")
        return
    terms = ("price_cents", "shipping_method", "shipping_paid_by")
    if any(offer.payload.get(t) != deal.get(t) for t in terms):
        report.fail(where, f"the deal's terms are not those {offer.agent_id} signed")
    accepts = [c for c in commands if c.type == "AcceptOffer" and c.payload.get("offer_id") == offer_id]
    if not any(c.agent_id != offer.agent_id for c in accepts):
        report.fail(where, f"no signed accept of {offer_id} by the other party")


def _deal(trail: Json, n: int, keys: _Keys, report: Report) -> None:
    where = f"deals[{n}]"
    deal_env = _envelope(trail.get("deal"), f"{where}.deal", report)
    if deal_env is None:
        return
    deal = deal_env.payload
    parties = {str(deal["buyer_agent_id"]), str(deal["seller_agent_id"])}
    for side in ("buyer", "seller"):
        agent_id = str(deal[f"{side}_agent_id"])
        if keys.principals.get(agent_id) != deal[f"{side}_principal_id"]:
            report.fail(f"{where}.deal", f"the {side} agent {agent_id} is not registered for that principal")
    commands, answers = [], []
    for m, move in enumerate(trail.get("moves", [])):
        if (command := _move(move, f"{where}.moves[{m}]", keys, parties, report)) is not None:
            commands.append(command)
        answers += move.get("answers", [])
    _binding(deal, commands, answers, f"{where}.deal", report)
    _operators(trail, where, keys, parties, report)


def _operators(trail: Json, where: str, keys: _Keys, parties: set[str], report: Report) -> None:
    for a, raw in enumerate(trail.get("approvals", [])):
        env = _envelope(raw, f"{where}.approvals[{a}]", report)
        if env is not None and env.type in OPERATOR_ANSWERS:
            _signed_by_operator(env, f"{where}.approvals[{a}]", keys.operators, report)
    for s, raw in enumerate(trail.get("settlement", [])):
        env = _envelope(raw, f"{where}.settlement[{s}]", report)
        if env is None or env.signature is None:
            continue  # the settlement service's own records
        if env.agent_id == OPERATOR_ID:
            _signed_by_operator(env, f"{where}.settlement[{s}]", keys.operators, report)
        elif env.agent_id in parties:
            _signed_by(env, keys.agents.get(str(env.agent_id)), f"{where}.settlement[{s}]", report)
        else:
            report.fail(f"{where}.settlement[{s}]", f"signed by {env.agent_id}, not a party")


def _signed_by_operator(env: Envelope, where: str, operators: tuple[str, ...], report: Report) -> None:
    report.checked += 1
    if env.agent_id != OPERATOR_ID or not any(envelope_signature_valid(env, k) for k in operators):
        report.fail(where, f"{env.type} is not signed by an operator key")


def verify_export(
    export: Json, operator_keys: Iterable[str] = (), mandates: Mapping[str, Mandate] | None = None
) -> Report:
    report = Report()
    operators = tuple(operator_keys)
    if not operators:
        operators = tuple(export.get("operator_keys", ()))
        report.notes.append("operator keys taken from the export itself (pass --operator-key to pin them)")
    agents, principals = _agents(export, report)
    digests = _mandates(export, operators, mandates or {}, report)
    keys = _Keys(agents, principals, operators, digests)
    for n, trail in enumerate(export.get("deals", [])):
        try:
            _deal(trail, n, keys, report)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            report.fail(f"deals[{n}]", f"malformed trail ({type(exc).__name__}: {str(exc)[:80]})")
        report.deals += 1
    return report
