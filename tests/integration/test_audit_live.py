"""`haggle audit deal` and `haggle audit verify` on a deal our agents really made, approved by a human."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from haggle.contracts.approval import ApprovalGranted
from haggle.contracts.decisions import mandate_digest
from haggle.contracts.topics import APPROVAL_EVENTS
from haggle.runtime.operators import operator_envelope
from haggle_lab.testing import mandates as m
from haggle_lab.testing.observe import of_type
from tests.integration.agents_support import agent_market

pytestmark = pytest.mark.usefixtures("running_services")


def haggle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "haggle", *args], capture_output=True, text=True, timeout=180, check=False
    )


async def test_the_audit_of_a_real_deal_verifies_and_a_tampered_one_does_not(
    bootstrap: str, market_id: str, tmp_path: Path
) -> None:
    seller = m.seller(f"{market_id}-alice", [m.sell_item("bike", asking=30_000, floor=20_000)])
    buyer = m.buyer(f"{market_id}-bob", [m.want("ride", max_price=26_000)], budget=50_000, auto_approve=1_000)
    async with agent_market(bootstrap, market_id) as mk:
        await mk.assign(seller, buyer)
        requested = await mk.obs.wait_for(of_type("ApprovalRequested"), "agent.inbox", timeout=60)
        ask = requested[0].payload
        answer = ApprovalGranted(
            approval_id=ask["approval_id"],
            deal_id=ask["deal_id"],
            principal_id=ask["principal_id"],
            granted_by="carol",
        )
        await mk.pub.send(APPROVAL_EVENTS.name, ask["principal_id"], operator_envelope(answer, market_id))
        await mk.obs.wait_for(
            of_type("EscrowFunded", deal_id=ask["deal_id"]), "settlement.events", timeout=60
        )
    deal_id = ask["deal_id"]
    exported = tmp_path / "audit.json"
    done = await asyncio.to_thread(
        haggle, "audit", "deal", deal_id, "--market", market_id, "--json", str(exported)
    )
    assert done.returncode == 0, done.stderr
    assert "ApprovalGranted by carol" in done.stdout and "proposed by strategy:" in done.stdout

    data = json.loads(exported.read_text())
    trail = data["deals"][0]
    assert trail["moves"][0]["command"]["type"] == "OpenNegotiation"
    assert trail["moves"][-1]["command"]["type"] == "AcceptOffer"
    assert all(move["decision"] is not None for move in trail["moves"])
    assert {e["mandate_sha256"] for e in data["mandates"][buyer.principal_id]} == {mandate_digest(buyer)}
    assert "26000" not in json.dumps(data["mandates"])  # the private max is not in the export

    mandate_file = tmp_path / "bob.json"
    mandate_file.write_text(buyer.model_dump_json())
    checked = await asyncio.to_thread(
        haggle, "audit", "verify", str(exported), "--mandate", str(mandate_file)
    )
    assert checked.returncode == 0, checked.stdout
    assert ": ok" in checked.stdout

    trail["moves"][1]["command"]["payload"]["price_cents"] += 100
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    refused = await asyncio.to_thread(haggle, "audit", "verify", str(tampered))
    assert refused.returncode == 1
    assert "FAIL deals[0].moves[1].command" in refused.stdout


def test_auditing_a_deal_that_does_not_exist_is_refused(bootstrap: str) -> None:
    done = haggle("audit", "deal", "no-such-deal")
    assert done.returncode == 2
    assert "no deal 'no-such-deal'" in done.stderr
