"""Every service from the image, run as the Helm chart runs it (non-root, read-only root
filesystem, the chart's arguments and environment), against Kafka and PostgreSQL containers:
each is ready, a small market runs through them with every invariant true, and Debian's
Prometheus, scraping them, answers every dashboard query and alert rule with data."""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import yaml

from haggle import procs
from haggle.client import Publisher
from haggle.contracts.settlement import FundWallet
from haggle.contracts.topics import SETTLEMENT_COMMANDS
from haggle.market.report import MarketReport
from haggle.runtime.operators import operator_envelope
from haggle_lab.redteam.catalogue import Attack, AttackResult, RedTeamContext, broken, by_name
from tests.containers import engine
from tests.containers.conftest import ImageServices, Prometheus, run_small_market
from tests.deploy.promql import dashboard_exprs, rule_exprs

pytestmark = [pytest.mark.containers, pytest.mark.timeout(900)]

DASHBOARD = engine.DEPLOY / "grafana" / "dashboards" / "haggle.json"
RULES = engine.DEPLOY / "prometheus" / "rules.yaml"
# Strategy brains, the red team's brain that always tries the worst move (guard refusals), and
# a Claude brain against the fake Messages API (LLM calls and tokens).
VARIANTS = ["boulware", "conceder", "compromised", "claude-haiku"]
_COMPARISON = re.compile(r"\s(==|!=|>=|<=|>|<)\s*[0-9.]+\s*$")


def test_every_service_from_the_image_is_ready(image_services: ImageServices) -> None:
    assert list(image_services.urls) == list(procs.SERVICES)
    for name, run in image_services.runs.items():
        assert run.args == ["run", name]
        assert run.read_only and run.user == "10001:10001" and "/tmp" in run.tmpfs, name
        assert '"msg":"service started"' in image_services.logs(name), name
    print(f"\nevery service from the image ready in {image_services.ready_seconds:.1f} s")


# Hostile input a real market meets, from the red team's catalogue: a referee refusal, a
# listing refused for infeasible shipping, an escrow that fails for want of funds, a
# misdescribed item (a dispute and its refund) and raw garbage (dead letters).
ATTACKS = ("out_of_turn", "infeasible_shipping", "above_budget", "misdescription", "garbage_flood")


@dataclass
class MarketRun:
    report: MarketReport
    started: float
    attacks: list[tuple[Attack, AttackResult]]
    retried_through_outage: bool
    duplicate_skipped: bool


def settlement_counter(name: str, **labels: str) -> float:
    """A counter's total over the settlement service's series that carry these labels."""
    text = httpx.get(f"{procs.url_for('settlement')}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def grows(before: float, name: str, timeout: float = 60, **labels: str) -> bool:
    """True once the settlement counter is past `before` (read before the cause was sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if settlement_counter(name, **labels) > before:
            return True
        await asyncio.sleep(0.3)
    return False


async def outage_and_redelivery(infra: engine.ContainerInfra) -> tuple[bool, bool]:
    """An operator command arrives while PostgreSQL is down (settlement retries until it is back),
    then is delivered again (at least once: the copy is skipped as a duplicate)."""
    funding = FundWallet(
        funding_id=f"fund-{uuid.uuid4().hex[:8]}",
        principal_id=f"p-{uuid.uuid4().hex[:8]}",
        amount_cents=1_000,
        auto_approve_limit_cents=0,
    )
    envelope = operator_envelope(funding, f"t-{uuid.uuid4().hex[:8]}")
    retries = ("haggle_handler_retries_total", {"topic": SETTLEMENT_COMMANDS.name, "kind": "infrastructure"})
    duplicates = ("haggle_duplicates_total", {"topic": SETTLEMENT_COMMANDS.name})
    async with Publisher(infra.kafka_bootstrap) as pub:
        before = settlement_counter(retries[0], **retries[1])
        infra.stop_postgres()
        try:
            await pub.send(SETTLEMENT_COMMANDS.name, funding.principal_id, envelope)
            retried = await grows(before, retries[0], **retries[1])
        finally:
            infra.start_postgres()
        before = settlement_counter(duplicates[0], **duplicates[1])
        await pub.send(SETTLEMENT_COMMANDS.name, funding.principal_id, envelope)
        return retried, await grows(before, duplicates[0], **duplicates[1])


async def hostile_inputs(
    infra: engine.ContainerInfra,
) -> tuple[list[tuple[Attack, AttackResult]], bool, bool]:
    ctx = RedTeamContext(infra.kafka_bootstrap, infra.database_url)
    attacks = [by_name(name) for name in ATTACKS]
    results = await asyncio.gather(*(attack.run(ctx) for attack in attacks))
    retried, skipped = await outage_and_redelivery(infra)
    return list(zip(attacks, results, strict=True)), retried, skipped


@pytest.fixture(scope="module")
def market(
    container_endpoints: engine.ContainerInfra,
    service_ports: dict[str, str],
    prometheus: Prometheus,
) -> MarketRun:
    started = time.time()
    report = run_small_market(container_endpoints, VARIANTS)
    browse(report.market_id)
    attacks, retried, skipped = asyncio.run(hostile_inputs(container_endpoints))
    return MarketRun(report, started, attacks, retried, skipped)


def browse(market_id: str) -> None:
    """People look at the market's public pages for a few scrapes (the web panels read that)."""
    web = procs.url_for("web")
    for n in range(6):
        for path in ("/", f"/market/{market_id}"):
            assert httpx.get(f"{web}{path}", timeout=10).status_code == 200, path
        if n < 5:
            time.sleep(1)


def test_a_market_runs_through_the_image_services_with_every_invariant_true(
    market: MarketRun, image_services: ImageServices
) -> None:
    report = market.report
    body = json.loads(report.to_json())
    assert body["deals_agreed"] > 0, body
    assert body["invariants"] and all(body["invariants"].values()), body["invariants"]
    assert report.ok
    for name in procs.SERVICES:
        assert "Read-only file system" not in image_services.logs(name), name
    assert broken(market.attacks) == [], [(a.name, r) for a, r in market.attacks]
    assert market.retried_through_outage, "settlement did not retry a command through the outage"
    assert market.duplicate_skipped, "the second delivery of one command was not skipped as a duplicate"


def queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every dashboard target and every alert rule's measured side."""
    found = [(f"panel {title}", expr) for title, expr in dashboard_exprs(json.loads(DASHBOARD.read_text()))]
    for name, expr in rule_exprs(yaml.safe_load(RULES.read_text())):
        measured = _COMPARISON.sub("", " ".join(expr.split()))
        assert measured != expr.strip(), f"{name}: no threshold comparison at the end of {expr!r}"
        found.append((f"alert {name}", measured))
    return found


def _has_data(result: list[dict[str, Any]]) -> bool:
    return any(not math.isnan(float(series["value"][1])) for series in result)


def test_every_dashboard_query_and_alert_rule_returns_data_from_the_market(
    market: MarketRun, prometheus: Prometheus
) -> None:
    started = market.started
    time.sleep(3)  # a last scrape after the market's final events
    window = f"{math.ceil(time.time() - started) + 10}s"
    macros = {"$__rate_interval": window, "$__interval": window, "$__range": window}
    empty = []
    for where, expr in queries():
        for macro, value in macros.items():
            expr = expr.replace(macro, value)
        if not _has_data(prometheus.query(expr)):
            empty.append(f"{where}: {expr}")
    assert not empty, "no data from a real market for:\n" + "\n".join(empty)
    firing = prometheus.query('ALERTS{alertstate="firing"}')
    assert firing == [], f"a healthy market fired {firing}"
