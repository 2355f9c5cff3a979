"""`haggle chaos run`: a market while the monkey breaks things, then every invariant checked.

The market is started the way `haggle market run` starts one; once its rules
are applied the monkey begins its seeded schedule. The run waits for the
monkey to finish and then for the market to finish (a generous deadline:
faults slow it down), and only then reads the ledger and checks the market
report's invariants plus those of `haggle_lab.chaos.invariants`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka.errors import KafkaError

from haggle import procs
from haggle.client import Observer, Publisher
from haggle.contracts import Envelope
from haggle.market import checks, runner
from haggle.market.approvals import ApprovalPolicy
from haggle.market.collect import Scope
from haggle.market.population import Population
from haggle.market.runner import MarketStatus, RunConfig, Watch
from haggle_lab.chaos import acknowledged, invariants, monkey, work
from haggle_lab.chaos.monkey import Fault, FaultResult

ESCROW_ONCE = "every escrow hold is posted or voided at most once"
Say = Callable[[str], None]


@dataclass(frozen=True)
class ChaosConfig:
    seed: int
    window_seconds: float = 30.0
    kills_per_service: int = 1
    infrastructure: bool = True
    market: RunConfig = field(default_factory=lambda: RunConfig(deadline_seconds=420))
    instances: int = 1
    """Instances of each service already running: each round kills every one of them."""
    services: tuple[str, ...] = procs.SERVICES
    """The services whose instances are killed."""
    faults: tuple[Fault, ...] | None = None
    """An explicit fault list (say, leader kills) instead of the seeded schedule."""


@dataclass
class ChaosReport:
    seed: int
    market_id: str
    faults: list[FaultResult]
    invariants: dict[str, bool]
    problems: list[str]
    commands: dict[str, int]
    seconds: float
    status: MarketStatus
    acked: acknowledged.Acknowledged = field(default_factory=acknowledged.Acknowledged)
    work: dict[str, dict[int, float]] = field(default_factory=dict)
    """Records each service instance handled (haggle_messages_in_total, summed over its restarts)."""
    moves_at: list[datetime] = field(default_factory=list)
    """When each command on negotiation.commands was made: the market's trading window."""

    @property
    def faults_survived(self) -> int:
        return sum(r.survived for r in self.faults)

    @property
    def ok(self) -> bool:
        every_fault = all(r.injected and r.survived for r in self.faults)
        return every_fault and all(self.invariants.values())


class PatientPublisher(Publisher):
    """Approvals sent while the broker restarts are retried, not lost."""

    async def send(self, topic: str, key: str, envelope: Envelope) -> None:
        for attempt in range(60):
            try:
                await super().send(topic, key, envelope)
                return
            except KafkaError:
                await asyncio.sleep(min(2.0, 0.2 * (attempt + 1)))
        await super().send(topic, key, envelope)


async def _market_and_monkey(
    population: Population, config: ChaosConfig, faults: list[Fault], bootstrap: str, scope: Scope, say: Say
) -> tuple[list[tuple[str, Envelope]], list[FaultResult], MarketStatus, dict[str, bool]]:
    status = MarketStatus(scope.market_id, "chaos", len(population.principals), len(population.listings()))
    topics = (*runner.TOPICS, *invariants.COMMAND_TOPICS)
    async with (
        PatientPublisher(bootstrap, "haggle-chaos") as pub,
        Observer(bootstrap, *topics, market_id=scope.market_id) as obs,
    ):
        await runner._start(pub, population, scope, runner.rules_for(config.market, population.seed))
        policy = ApprovalPolicy.parse(config.market.approval_policy, population.seed)
        watch = Watch(obs, pub, status, policy)
        say(f"market {scope.market_id} started; monkey on ({len(faults)} faults)")
        view, results = await runner.drive(
            watch, pub, config.market, _ticker(say), alongside=monkey.run(faults, say)
        )
        seen = list(obs.seen)
        return seen, results or [], status, checks.market_closed(seen, view)


def _ticker(say: Say, every: float = 5.0) -> runner.Progress:
    last = [0.0]

    def tick(s: MarketStatus) -> None:
        if time.monotonic() - last[0] >= every or s.done:
            last[0] = time.monotonic()
            say(
                f"{s.elapsed:6.1f}s agents {s.registered}/{s.principals} listings "
                f"{s.listings}/{s.listings_expected} open {s.threads_open} ended {s.threads_ended} "
                f"deals {s.deals} settled {s.settled}"
            )

    return tick


async def chaos_run(
    population: Population, config: ChaosConfig, bootstrap: str, database_url: str, say: Say
) -> ChaosReport:
    started, began = time.monotonic(), datetime.now(UTC)
    scope = Scope(f"chaos{config.seed}-{uuid.uuid4().hex[:6]}")
    faults = (
        list(config.faults)
        if config.faults is not None
        else monkey.schedule(
            config.seed,
            config.window_seconds,
            config.kills_per_service,
            config.services,
            config.infrastructure,
            config.instances,
        )
    )
    async with work.Sampler() as sampler:
        seen, results, status, closed = await _market_and_monkey(
            population, config, faults, bootstrap, scope, say
        )
    acked = await acknowledged.check(database_url, bootstrap, began)
    problems: list[str] = list(status.problems)
    facts = await runner.facts_of(seen, population, scope, problems, closed)
    found = invariants.check_all(seen)
    found["no_acknowledged_event_lost"] = acked.problems()
    escrow_twice = [p for p in problems if p.startswith(ESCROW_ONCE)]
    found["no_deal_funded_twice"] += escrow_twice
    verdicts = {**facts.invariants, **{name: not broken for name, broken in found.items()}}
    problems += [p for broken in found.values() for p in broken if p not in escrow_twice]
    return ChaosReport(
        seed=config.seed,
        market_id=scope.market_id,
        faults=results,
        invariants=verdicts,
        problems=problems,
        commands=invariants.commands_seen(seen),
        seconds=time.monotonic() - started,
        status=status,
        acked=acked,
        work=sampler.totals(),
        moves_at=[env.occurred_at for topic, env in seen if topic == "negotiation.commands"],
    )
