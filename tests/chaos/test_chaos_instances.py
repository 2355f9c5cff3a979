"""Two instances of every service in their consumer groups; instances of negotiation, settlement
and agents are killed (-9) and restarted mid-market, so their groups rebalance. Every invariant
of the chaos run still holds (nothing lost, nothing done twice) and both instances of each
service handled records (read from each instance's own /metrics)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from haggle import procs
from haggle.infra import InfraEndpoints
from haggle.market.population import build_population
from haggle.market.runner import RunConfig
from haggle_lab.chaos.monkey import KILL
from haggle_lab.chaos.run import ChaosConfig, chaos_run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("running_services")]

SEED = 12
KILLED = ("negotiation", "settlement", "agents")


@pytest.fixture
def two_instances(running_services: tuple[str, ...]) -> Iterator[None]:
    procs.start_all(count=2)
    yield
    procs.start_all(count=1)  # the session's other tests expect one instance of each


@pytest.fixture(autouse=True)
def quiet_aiokafka() -> Iterator[None]:
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


async def test_two_instances_share_the_work_and_survive_kills(
    endpoints: InfraEndpoints, two_instances: None
) -> None:
    population = build_population(SEED, 12, 30, 10_000, 0.1, ["boulware", "conceder"], False)
    config = ChaosConfig(
        seed=SEED,
        window_seconds=20,
        infrastructure=False,
        instances=2,
        services=KILLED,
        market=RunConfig(approval_policy="grant-up-to:7500", deadline_seconds=300),
    )
    report = await chaos_run(population, config, endpoints.kafka_bootstrap, endpoints.database_url, print)

    killed = sorted((r.fault.target, r.fault.instance) for r in report.faults if r.fault.kind == KILL)
    assert killed == [(name, i) for name in sorted(KILLED) for i in (0, 1)]
    not_survived = [(r.fault.describe(), r.detail) for r in report.faults if not (r.injected and r.survived)]
    assert not not_survived, f"seed {SEED}: {not_survived}"
    assert report.invariants == dict.fromkeys(report.invariants, True), f"seed {SEED}: {report.problems[:20]}"
    assert "no_acknowledged_event_lost" in report.invariants and report.acked.acknowledged > 0
    assert report.status.deals > 0 and all(count > 0 for count in report.commands.values())
    for name in ("listing", "negotiation", "settlement", "agents"):
        shares = report.work.get(name, {})
        assert sorted(shares) == [0, 1] and all(n > 0 for n in shares.values()), (name, report.work)
