"""The chaos monkey: a seeded schedule of faults, then each fault injected and watched until survived.

A fault is a kill -9 of one service instance (restarted after a short pause), a
Kafka restart (every broker), a kill -9 of the broker leading the busiest
partitions of a cluster (restarted after a pause), or a PostgreSQL restart. The schedule comes from
`random.Random(seed)` only, so a failing run is replayed by its seed. Faults
run one after another: overlapping outages would hide which one broke what.
A fault is survived when the broken piece is back and every service answers
/readyz again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from haggle import procs
from haggle.infra import kafka, postgres
from haggle.infra.state import InfraError, Settings, state_lock

KILL, KAFKA, POSTGRES = "kill -9", "kafka restart", "postgres restart"
LEADER = "leader kill"
Say = Callable[[str], None]
BACK_WITHIN_SECONDS = 240.0
"""How long a broken piece may take to come back. On the shared two-core machine at load average
30, a broker restart took 80 s (it reloads every partition's log before it answers) and a service
started while the broker was still down took 90 s to answer /readyz (seed 1 of the long run):
limits of 60 and 90 s failed runs whose every invariant held."""


@dataclass(frozen=True)
class Fault:
    at: float
    """Seconds after the monkey starts."""
    kind: str
    target: str
    pause: float
    """Seconds the target stays down."""
    instance: int = 0
    """Which instance of a service a kill -9 hits."""

    def describe(self) -> str:
        target = procs.label(self.target, self.instance) if self.kind == KILL else self.target
        return f"{self.kind} {target} at +{self.at:.1f}s (down {self.pause:.1f}s)"


@dataclass(frozen=True)
class FaultResult:
    fault: Fault
    injected: bool
    survived: bool
    recovery_seconds: float
    detail: str = ""


def schedule(
    seed: int,
    window: float,
    kills_per_service: int = 1,
    services: Sequence[str] = procs.SERVICES,
    infrastructure: bool = True,
    instances: int = 1,
) -> list[Fault]:
    """Faults at random moments over `window` seconds, in time order. With several instances
    each round kills every instance of every service once (at its own moment)."""
    rng = random.Random(seed)
    faults = [
        Fault(rng.uniform(0, window), KILL, name, rng.uniform(0.2, 2.0), instance)
        for name in services
        for _ in range(kills_per_service)
        for instance in range(instances)
    ]
    if infrastructure:
        faults.append(Fault(rng.uniform(0, window), KAFKA, "kafka", rng.uniform(0.5, 3.0)))
        faults.append(Fault(rng.uniform(0, window), POSTGRES, "postgres", rng.uniform(0.5, 3.0)))
    return sorted(faults, key=lambda f: f.at)


def _kill_service(fault: Fault) -> None:
    procs.crash_and_restart(fault.target, down_for=fault.pause, instance=fault.instance)


def _restart_kafka(fault: Fault) -> None:
    settings = Settings.from_env()
    if settings.external_kafka:
        raise InfraError("Kafka is external (KAFKA_BOOTSTRAP_SERVERS): the monkey restarts only its own")
    with state_lock(settings):
        kafka.stop(settings, _quiet)
        time.sleep(fault.pause)
        kafka.launch(settings, _quiet)
        _wait_for_broker(kafka.bootstrap_address(settings))


def _wait_for_broker(address: str) -> None:
    deadline = time.monotonic() + BACK_WITHIN_SECONDS
    while (problem := kafka.probe(address, 2.0)) is not None:
        if time.monotonic() > deadline:
            raise InfraError(f"Kafka not back within {BACK_WITHIN_SECONDS:.0f} s: {problem}")
        time.sleep(0.5)


def _restart_postgres(fault: Fault) -> None:
    settings = Settings.from_env()
    if settings.external_database:
        raise InfraError("PostgreSQL is external (DATABASE_URL): the monkey restarts only its own")
    with state_lock(settings):
        postgres.stop(settings, _quiet)
        time.sleep(fault.pause)
        postgres.up(settings, _quiet)


def _kill_leader(fault: Fault) -> str:
    """kill -9 the broker leading the busiest partition of the command and event topics."""
    from haggle.contracts.topics import TOPICS
    from haggle_lab.chaos.leaders import kill_busiest_leader_sync

    done = kill_busiest_leader_sync([t.name for t in TOPICS], fault.pause)
    return (
        f"node {done.node_id} led {done.topic}[{done.partition}]; failover {done.failover_seconds:.1f}s,"
        f" in sync again {done.replicated_seconds:.1f}s"
    )


def _quiet(_message: str) -> None:
    return None


INJECT: dict[str, Callable[[Fault], str | None]] = {
    KILL: _kill_service,
    KAFKA: _restart_kafka,
    LEADER: _kill_leader,
    POSTGRES: _restart_postgres,
}


def _all_ready(timeout: float) -> str:
    """'' when every service answers /readyz within `timeout`, else who did not."""
    deadline = time.monotonic() + timeout
    waiting = list(procs.SERVICES)
    while waiting and time.monotonic() < deadline:
        waiting = [name for name in waiting if not procs.all_ready(name)]
        if waiting:
            time.sleep(0.25)
    return f"not ready after {timeout:.0f}s: {', '.join(waiting)}" if waiting else ""


def inject(fault: Fault, recovery_timeout: float = BACK_WITHIN_SECONDS) -> FaultResult:
    """Blocking: break one thing, wait until everything is back, time it."""
    started = time.monotonic()
    try:
        detail = INJECT[fault.kind](fault) or ""
    except (InfraError, OSError) as exc:
        return FaultResult(fault, False, False, time.monotonic() - started, f"not injected: {exc}")
    problem = _all_ready(recovery_timeout)
    return FaultResult(fault, True, not problem, time.monotonic() - started, problem or detail)


async def run(faults: Sequence[Fault], say: Say | None = None) -> list[FaultResult]:
    """Inject each fault at its moment (later if the one before is still recovering)."""
    started = time.monotonic()
    results = []
    for fault in faults:
        await asyncio.sleep(max(0.0, started + fault.at - time.monotonic()))
        if say:
            say(f"injecting {fault.describe()}")
        result = await asyncio.to_thread(inject, fault)
        results.append(result)
        if say:
            verdict = "survived" if result.survived else f"NOT survived: {result.detail}"
            say(f"{fault.describe()}: {verdict} ({result.recovery_seconds:.1f}s)")
    return results
