"""The main job end to end: `haggle market run` as a user runs it, against every service."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from haggle import procs
from haggle_lab.testing.observe import Observer

pytestmark = pytest.mark.usefixtures("running_services")


def run_market(json_path: Path, seed: int = 1) -> subprocess.CompletedProcess[str]:
    argv = [
        sys.executable,
        "-m",
        "haggle",
        "market",
        "run",
        "--participants",
        "20",
        "--listings",
        "60",
        "--seed",
        str(seed),
        "--deadline",
        "300",
        "--json",
        str(json_path),
        "--html",
        str(json_path.with_suffix(".html")),
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=420, check=False)


def infrastructure_retries() -> float:
    """Every service's retries for "infrastructure" errors, a deadlock between two batches included."""
    series = re.compile(r'^haggle_handler_retries_total\{[^}]*kind="infrastructure"[^}]*\} (\S+)', re.M)
    total = 0.0
    for name in procs.SERVICES:
        text = httpx.get(f"{procs.url_for(name)}/metrics", timeout=5).text
        total += sum(float(v) for v in series.findall(text))
    return total


async def test_market_run_reports_a_consistent_market(bootstrap: str, tmp_path: Path) -> None:
    retries_before = infrastructure_retries()
    async with Observer(bootstrap, "negotiation.events") as obs:
        first = await asyncio.to_thread(run_market, tmp_path / "r1.json")
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        report = json.loads((tmp_path / "r1.json").read_text())
        await asyncio.sleep(2)  # the observer reads on; the deals were all published before the report
        mine = [
            env for _, env in obs.seen if env.market_id == report["market_id"] and env.type == "DealAgreed"
        ]

    assert report["deals_agreed"] > 0
    assert all(report["invariants"].values()) and set(report["invariants"]) == {
        "ledger_balanced",
        "market_closed",
        "no_listing_sold_twice",
        "no_mandate_broken",
        "no_negotiation_after_close",
    }
    surplus = report["surplus"]
    assert sum(surplus["lost_cents"].values()) == surplus["optimum_cents"] - surplus["realised_cents"]
    assert len(report["principals"]) == report["participants"]
    assert 0 < report["surplus"]["efficiency"] <= 1
    assert report["deals_agreed"] <= report["listings_published"]
    assert report["deals_agreed"] == len({d.payload["deal_id"] for d in mine})
    assert report["money"]["gmv_agreed_cents"] == sum(d.payload["price_cents"] for d in mine)
    assert "Invariants" in first.stdout and "welfare efficiency" in first.stdout
    pictures = (tmp_path / "r1.html").read_text()
    assert report["market_id"] in pictures and pictures.count("<svg") >= 3 and "<script" not in pictures
    assert infrastructure_retries() == retries_before, "a fault-free market run met deadlocks or outages"
    await _closed_and_final(bootstrap, report, tmp_path)

    second = await asyncio.to_thread(run_market, tmp_path / "r2.json")
    assert second.returncode == 0, second.stdout[-3000:]
    again = json.loads((tmp_path / "r2.json").read_text())
    assert again["population_digest"] == report["population_digest"]
    assert again["market_id"] != report["market_id"]


async def _closed_and_final(bootstrap: str, report: dict[str, object], tmp_path: Path) -> None:
    """After the report the market is closed, nothing more happens in it, and its report taken
    again from the events is the same."""
    market_id = str(report["market_id"])
    async with httpx.AsyncClient(timeout=5) as client:
        for service in ("negotiation", "settlement", "agents"):
            view = (await client.get(f"{procs.url_for(service)}/markets/{market_id}")).json()
            assert view["phase"] == "closed", (service, view)
        agents = (await client.get(f"{procs.url_for('agents')}/markets/{market_id}")).json()
    assert agents["opening"] == 0 and agents["open"] == 0 and agents["deals_open"] == 0
    topics = ("negotiation.events", "settlement.events", "listing.events", "approval.events", "agent.inbox")
    async with Observer(bootstrap, *topics) as later:
        await asyncio.sleep(4)
    assert not [env for _, env in later.seen if env.market_id == market_id], "the closed market still moved"
    argv = [
        sys.executable,
        "-m",
        "haggle",
        "market",
        "report",
        market_id,
        "--json",
        str(tmp_path / "again.json"),
    ]
    again = await asyncio.to_thread(
        subprocess.run, argv, capture_output=True, text=True, timeout=300, check=False
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert json.loads((tmp_path / "again.json").read_text()) == report
