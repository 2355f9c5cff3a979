"""The audit trail, built from a signed market in memory: a clean export verifies, each tampering fails."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from haggle.audit import export, index, verify_export
from haggle.contracts import AgentKey
from haggle.contracts.decisions import mandate_digest
from haggle_lab.testing.audit_market import SignedMarket, signed_market

Json = dict[str, Any]


@pytest.fixture(scope="module")
def market() -> tuple[SignedMarket, Json]:
    made, ids = signed_market(3)
    data = json.loads(json.dumps(export(index(made.records), made.market_id, ids, [made.operator.public])))
    return made, data


def _verify(market: tuple[SignedMarket, Json], tamper: Callable[[Json], None] | None = None) -> list[str]:
    made, data = market
    data = copy.deepcopy(data)
    if tamper is not None:
        tamper(data)
    return verify_export(data, [made.operator.public]).failures


def test_a_clean_export_verifies_every_signature(market: tuple[SignedMarket, Json]) -> None:
    made, data = market
    report = verify_export(data, [made.operator.public])
    assert report.failures == []
    # per deal: 3 moves + 3 decisions + 1 approval + 1 settlement command; 4 registrations
    assert report.checked == 3 * 8 + len(data["agents"])
    assert report.deals == 3


def test_the_export_names_who_acted_for_whom_without_the_limits(market: tuple[SignedMarket, Json]) -> None:
    _, data = market
    trail = data["deals"][0]
    assert [m["command"]["type"] for m in trail["moves"]] == [
        "OpenNegotiation",
        "CounterOffer",
        "AcceptOffer",
    ]
    assert all(m["decision"]["payload"]["brain"] == "strategy:boulware" for m in trail["moves"])
    buyer = trail["deal"]["payload"]["buyer_principal_id"]
    assert data["mandates"][buyer][0]["assigned_by"] == "operator"
    text = json.dumps(data)
    assert "max_price_cents" not in text and "floor_cents" not in text and "budget_cents" not in text


def _first_move(data: Json, n: int = 0) -> Json:
    command: Json = data["deals"][0]["moves"][n]["command"]
    return command


def test_a_changed_price_in_a_signed_move_fails(market: tuple[SignedMarket, Json]) -> None:
    failures = _verify(market, lambda d: _first_move(d, 1)["payload"].update(price_cents=1))
    assert any("deals[0].moves[1].command: CounterOffer signature does not verify" in f for f in failures)


def test_a_changed_deal_price_is_not_what_was_signed(market: tuple[SignedMarket, Json]) -> None:
    failures = _verify(market, lambda d: d["deals"][0]["deal"]["payload"].update(price_cents=1))
    assert failures == ["deals[0].deal: the deal's terms are not those s0.agent signed"]


def test_a_swapped_agent_key_fails(market: tuple[SignedMarket, Json]) -> None:
    def swap(data: Json) -> None:
        data["agents"]["s0.agent"]["payload"]["public_key"] = AgentKey.generate().public

    failures = _verify(market, swap)
    assert any(f.startswith("agents.s0.agent: AgentRegistered signature") for f in failures)
    assert any("deals[0].moves[1].command" in f for f in failures)


def test_a_rewritten_decision_record_fails(market: tuple[SignedMarket, Json]) -> None:
    def rewrite(data: Json) -> None:
        data["deals"][0]["moves"][0]["decision"]["payload"]["guard_refusals"] = []

    assert any("moves[0].decision: MoveDecided signature" in f for f in _verify(market, rewrite))


def test_a_decision_beside_another_move_fails(market: tuple[SignedMarket, Json]) -> None:
    def shuffle(data: Json) -> None:
        moves = data["deals"][0]["moves"]
        moves[0]["decision"], moves[2]["decision"] = moves[2]["decision"], moves[0]["decision"]

    failures = _verify(market, shuffle)
    assert "deals[0].moves[0].decision: records another move than the one it sits beside" in failures


def test_a_removed_accept_leaves_the_deal_unbacked(market: tuple[SignedMarket, Json]) -> None:
    failures = _verify(market, lambda d: d["deals"][0]["moves"].pop(2))
    assert any("no signed accept" in f for f in failures)


def test_a_forged_approval_fails(market: tuple[SignedMarket, Json]) -> None:
    def forge(data: Json) -> None:
        granted = data["deals"][0]["approvals"][1]
        granted["payload"]["granted_by"] = "mallory"

    assert any(
        "approvals[1]: ApprovalGranted is not signed by an operator key" in f for f in _verify(market, forge)
    )


def test_an_untrusted_operator_key_fails_the_approvals(market: tuple[SignedMarket, Json]) -> None:
    _, data = market
    failures = verify_export(data, [AgentKey.generate().public]).failures
    assert len([f for f in failures if "ApprovalGranted is not signed" in f]) == 3


def test_a_move_under_another_mandate_fails(market: tuple[SignedMarket, Json]) -> None:
    def other(data: Json) -> None:
        buyer = data["deals"][0]["deal"]["payload"]["buyer_principal_id"]
        data["mandates"][buyer][0]["mandate_sha256"] = "0" * 64

    failures = _verify(market, other)
    assert any("acted under a mandate the operator did not assign" in f for f in failures)


def test_with_the_mandate_its_operator_signature_is_checked(market: tuple[SignedMarket, Json]) -> None:
    made, data = market
    buyer = next(p for _, env in made.records if env.type == "AssignMandate" for p in [env.payload])
    principal = buyer["mandate"]["principal_id"]
    from haggle.contracts.mandate import Mandate

    mandate = Mandate.model_validate(buyer["mandate"])
    good = verify_export(data, [made.operator.public], {principal: mandate})
    assert good.failures == [] and good.checked == verify_export(data, [made.operator.public]).checked + 1
    changed = mandate.model_copy(update={"budget_cents": mandate.budget_cents + 1})
    assert mandate_digest(changed) != mandate_digest(mandate)
    bad = verify_export(data, [made.operator.public], {principal: changed})
    assert bad.failures == [f"mandates.{principal}: the mandate given is not one the operator assigned"]


def test_garbage_in_a_trail_is_a_failure_not_a_crash(market: tuple[SignedMarket, Json]) -> None:
    failures = _verify(market, lambda d: d["deals"][0].update(deal={"type": 3}))
    assert failures and failures[0].startswith("deals[0].deal: not an envelope")
