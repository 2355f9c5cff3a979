"""From what a market published on Kafka to `MarketFacts`: ids mapped back to the population's.

Inside a run every principal id is scoped by the market (`<market>.<p001>`) so
that markets can share services; the report speaks the population's ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from haggle.contracts import Envelope
from haggle.market.facts import (
    ApprovalAnswer,
    ApprovalFact,
    DealFact,
    DisputeFact,
    NegotiationFact,
    SettlementFact,
    SettlementOutcome,
)


class Scope:
    def __init__(self, market_id: str) -> None:
        self.market_id = market_id
        self.prefix = f"{market_id}."

    def principal(self, population_id: str) -> str:
        return f"{self.prefix}{population_id}"

    def unscope(self, scoped: str) -> str:
        """`<market>.p001` → `p001`; `<market>.p001.agent` → `p001`; `<market>.p001.s0001` → `s0001`."""
        rest = scoped[len(self.prefix) :] if scoped.startswith(self.prefix) else scoped
        parts = rest.split(".")
        if len(parts) >= 2 and parts[-1] == "agent":
            return parts[0]
        return parts[-1]


def _of(seen: Iterable[tuple[str, Envelope]], *types: str) -> list[Envelope]:
    return [env for _, env in seen if env.type in types]


def listing_ids(seen: list[tuple[str, Envelope]], scope: Scope) -> tuple[str, ...]:
    published = {scope.unscope(e.payload["listing_id"]) for e in _of(seen, "ListingPublished")}
    return tuple(sorted(published))


def negotiations(seen: list[tuple[str, Envelope]], scope: Scope) -> tuple[NegotiationFact, ...]:
    opened = {e.payload["thread_id"]: e.payload for e in _of(seen, "ThreadOpened")}
    ended = {e.payload["thread_id"]: e.payload for e in _of(seen, "NegotiationEnded")}
    sellers = {
        e.payload["listing_id"]: e.payload["seller_principal_id"] for e in _of(seen, "ListingPublished")
    }
    facts = []
    for thread_id, start in sorted(opened.items()):
        end = ended.get(thread_id)
        facts.append(
            NegotiationFact(
                thread_id=thread_id,
                listing_id=scope.unscope(start["listing_id"]),
                buyer_principal_id=scope.unscope(start["buyer_agent_id"]),
                seller_principal_id=scope.unscope(sellers.get(start["listing_id"], start["seller_agent_id"])),
                rounds=end["rounds"] if end else 0,
                max_rounds=start.get("max_rounds", 0),
                end_reason=end["reason"] if end else None,
            )
        )
    return tuple(facts)


def deals(seen: list[tuple[str, Envelope]], scope: Scope) -> tuple[DealFact, ...]:
    found: dict[str, DealFact] = {}
    for env in _of(seen, "DealAgreed"):
        p = env.payload
        found.setdefault(
            p["deal_id"],
            DealFact(
                deal_id=p["deal_id"],
                listing_id=scope.unscope(p["listing_id"]),
                thread_id=p["thread_id"],
                buyer_principal_id=scope.unscope(p["buyer_principal_id"]),
                seller_principal_id=scope.unscope(p["seller_principal_id"]),
                price_cents=p["price_cents"],
                shipping_method=p["shipping_method"],
                shipping_cost_cents=p["shipping_cost_cents"],
                shipping_paid_by=p["shipping_paid_by"],
                rounds=p.get("rounds", 0),
            ),
        )
    return tuple(found.values())


def settlements(seen: list[tuple[str, Envelope]], deal_ids: Iterable[str]) -> tuple[SettlementFact, ...]:
    final: dict[str, SettlementFact] = {}
    outcome = {
        "FundsReleased": SettlementOutcome.RELEASED,
        "Refunded": SettlementOutcome.REFUNDED,
        "EscrowFailed": SettlementOutcome.ESCROW_FAILED,
    }
    for env in _of(seen, *outcome):
        final.setdefault(
            env.payload["deal_id"],
            SettlementFact(
                deal_id=env.payload["deal_id"],
                outcome=outcome[env.type],
                reason=str(env.payload.get("reason", "")),
            ),
        )
    return tuple(final.get(d, SettlementFact(deal_id=d, outcome=SettlementOutcome.OPEN)) for d in deal_ids)


def approvals(seen: list[tuple[str, Envelope]], scope: Scope) -> tuple[ApprovalFact, ...]:
    answers = {
        "ApprovalGranted": ApprovalAnswer.GRANTED,
        "ApprovalDenied": ApprovalAnswer.DENIED,
        "ApprovalExpired": ApprovalAnswer.EXPIRED,
    }
    answered: dict[str, Envelope] = {}
    for env in _of(seen, *answers):
        answered.setdefault(env.payload["approval_id"], env)
    found: dict[str, ApprovalFact] = {}
    for env in _of(seen, "ApprovalRequested"):
        p = env.payload
        answer = answered.get(p["approval_id"])
        found.setdefault(
            p["approval_id"],
            ApprovalFact(
                approval_id=p["approval_id"],
                deal_id=p["deal_id"],
                principal_id=scope.unscope(p["principal_id"]),
                amount_cents=p["amount_cents"],
                answer=answers[answer.type] if answer else ApprovalAnswer.PENDING,
                answer_seconds=_seconds_between(env, answer) if answer else None,
            ),
        )
    return tuple(found.values())


def _seconds_between(first: Envelope, then: Envelope) -> float:
    return max(0.0, (then.occurred_at - first.occurred_at).total_seconds())


def disputes(seen: list[tuple[str, Envelope]]) -> tuple[DisputeFact, ...]:
    resolved = {e.payload["deal_id"]: e.payload for e in _of(seen, "DisputeResolved")}
    found: dict[str, DisputeFact] = {}
    for env in _of(seen, "DisputeOpened"):
        deal_id = env.payload["deal_id"]
        done = resolved.get(deal_id)
        found.setdefault(
            deal_id,
            DisputeFact(
                deal_id=deal_id,
                reason=env.payload["reason"],
                outcome=done["outcome"] if done else None,
                decided_by=done["decided_by"] if done else None,
            ),
        )
    return tuple(found.values())


def referee_refusals(seen: list[tuple[str, Envelope]]) -> dict[str, int]:
    return dict(Counter(str(e.payload["reason"]) for e in _of(seen, "ActionRefused")))
