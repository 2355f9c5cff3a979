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
from haggle.testing.observe import Observer

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
        "no_listing_sold_twice",
        "no_mandate_broken",
    }
    assert 0 < report["surplus"]["efficiency"] <= 1
    assert report["deals_agreed"] <= report["listings_published"]
    assert report["deals_agreed"] == len({d.payload["deal_id"] for d in mine})
    assert report["money"]["gmv_agreed_cents"] == sum(d.payload["price_cents"] for d in mine)
    assert "Invariants" in first.stdout and "welfare efficiency" in first.stdout
    pictures = (tmp_path / "r1.html").read_text()
    assert report["market_id"] in pictures and pictures.count("<svg") >= 3 and "<script" not in pictures
    assert infrastructure_retries() == retries_before, "a fault-free market run met deadlocks or outages"

    second = await asyncio.to_thread(run_market, tmp_path / "r2.json")
    assert second.returncode == 0, second.stdout[-3000:]
    again = json.loads((tmp_path / "r2.json").read_text())
    assert again["population_digest"] == report["population_digest"]
    assert again["market_id"] != report["market_id"]
