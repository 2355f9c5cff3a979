"""An audit export as text for a person: one line per fact, in order."""

from __future__ import annotations

from typing import Any

Json = dict[str, Any]
TERMS = ("price_cents", "offer_id", "shipping_method", "text")


def _principal(data: Json, agent_id: str | None) -> str:
    registration = data["agents"].get(agent_id or "")
    return str(registration["payload"]["principal_id"]) if registration else "?"


def _move_line(data: Json, move: Json) -> str:
    command = move["command"]
    terms = " ".join(f"{k}={command['payload'][k]}" for k in TERMS if k in command["payload"])
    who = f"{command['agent_id']} for {_principal(data, command['agent_id'])}"
    line = f"  {command['occurred_at']} {command['type']} {terms} — signed by {who} (seq {command['seq']})"
    decision = move.get("decision")
    if decision is not None:
        refused = ", ".join(decision["payload"]["guard_refusals"]) or "none"
        line += f"\n      proposed by {decision['payload']['brain']}; guard refused first: {refused}"
        if decision["payload"].get("fell_back"):
            line += " (fell back)"
    for answer in move.get("answers", []):
        reason = answer["payload"].get("reason")
        line += f"\n      referee: {answer['type']}" + (f" ({reason})" if reason else "")
    return line


def _deal(data: Json, trail: Json) -> list[str]:
    deal = trail["deal"]["payload"]
    lines = [
        f"deal {trail['deal_id']} in {data['market_id']}: listing {deal['listing_id']},"
        f" {deal['price_cents']} cents + {deal['shipping_cost_cents']} shipping ({deal['shipping_method']})",
        f"  buyer {deal['buyer_agent_id']} for {deal['buyer_principal_id']},"
        f" seller {deal['seller_agent_id']} for {deal['seller_principal_id']}",
    ]
    for side in ("buyer", "seller"):
        for entry in data["mandates"].get(deal[f"{side}_principal_id"], []):
            lines.append(
                f"  {side}'s mandate assigned by {entry['assigned_by']} at {entry['assigned_at']},"
                f" sha256 {entry['mandate_sha256'][:16]}…"
            )
    lines.append("moves:")
    lines += [_move_line(data, move) for move in trail["moves"]]
    lines.append("approvals:")
    for env in trail["approvals"]:
        by = env["payload"].get("granted_by") or env["payload"].get("denied_by") or env["producer"]
        signer = f" — signed by {env['agent_id']}" if env.get("signature") else ""
        lines.append(f"  {env['occurred_at']} {env['type']} by {by}{signer}")
    lines.append("settlement:")
    for env in trail["settlement"]:
        signer = f" — signed by {env['agent_id']}" if env.get("signature") else ""
        lines.append(f"  {env['occurred_at']} {env['type']}{signer}")
    return lines


def render(data: Json) -> str:
    lines: list[str] = []
    for trail in data["deals"]:
        lines += _deal(data, trail)
    return "\n".join(lines)
