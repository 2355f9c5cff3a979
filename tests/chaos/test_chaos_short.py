"""The short chaos run CI runs: one kill -9 of each service, one Kafka and one PostgreSQL restart
during a market, then every invariant. The long version is in haggle_lab/chaos/README.md."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from haggle import procs
from haggle.infra import InfraEndpoints
from haggle.market.population import build_population
from haggle.market.runner import RunConfig
from haggle_lab.chaos.monkey import KAFKA, KILL, POSTGRES
from haggle_lab.chaos.run import ChaosConfig, chaos_run

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("running_services")]

SEED = 8


@pytest.fixture(autouse=True)
def quiet_aiokafka() -> Iterator[None]:
    """The run's observer reconnects through the broker restart; aiokafka logs every refusal."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


async def test_a_market_survives_every_fault_and_keeps_every_invariant(endpoints: InfraEndpoints) -> None:
    population = build_population(SEED, 12, 30, 10_000, 0.1, ["boulware", "conceder"], False)
    config = ChaosConfig(
        seed=SEED,
        window_seconds=20,
        market=RunConfig(approval_policy="grant-up-to:7500", deadline_seconds=240),
    )
    report = await chaos_run(population, config, endpoints.kafka_bootstrap, endpoints.database_url, print)

    kinds = sorted((r.fault.kind, r.fault.target) for r in report.faults)
    assert kinds == sorted(
        [(KILL, name) for name in procs.SERVICES] + [(KAFKA, "kafka"), (POSTGRES, "postgres")]
    )
    not_survived = [(r.fault.describe(), r.detail) for r in report.faults if not (r.injected and r.survived)]
    assert not not_survived, f"seed {SEED}: {not_survived}"
    assert report.invariants == dict.fromkeys(report.invariants, True), f"seed {SEED}: {report.problems[:20]}"
    assert set(report.invariants) == {
        "ledger_balanced",
        "no_listing_sold_twice",
        "no_mandate_broken",
        "no_deal_funded_twice",
        "every_negotiation_ended",
        "every_deal_settled_or_refunded",
        "no_event_lost",
        "no_relay_storm",
        "market_closed",
        "no_negotiation_after_close",
        "no_acknowledged_event_lost",
    }
    # The market really traded through the faults: commands flowed and deals were struck.
    assert report.status.deals > 0 and report.status.listings == 30
    assert all(count > 0 for count in report.commands.values()), report.commands
