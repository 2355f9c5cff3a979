"""Leader kills on a three-broker cluster under a market's load: is any acknowledged event lost?

Needs the cluster: `haggle infra up --brokers 3 && haggle topics ensure` (replication 3,
`min.insync.replicas=2`; every producer has acks=all and idempotence). The bench starts the
services if they are not running, runs a market, and meanwhile kills (-9) the broker leading
the busiest partition of the command and event topics `--kills` times, restarting it each
time after `--pause` seconds. Then it checks `no_acknowledged_event_lost` (every outbox row
marked sent is read back from its topic by event id) and every other chaos invariant, and
prints kills, acknowledged events, found, lost and the recovery times:

- failover: from the kill until another broker leads that partition;
- in sync: from the kill until the restarted broker is back in every partition's ISR;
- services: from the kill until every service answers /readyz again (they recover alone).

    haggle bench leader_kills --kills 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import statistics
from collections.abc import Sequence

from haggle import infra, procs
from haggle.market.population import build_population
from haggle.market.runner import RunConfig
from haggle_lab.chaos.monkey import LEADER, Fault
from haggle_lab.chaos.run import ChaosConfig, ChaosReport, chaos_run

TIMING = re.compile(r"failover ([\d.]+)s, in sync again ([\d.]+)s")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="haggle bench leader_kills", description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument(
        "--every", type=float, default=4.0, help="seconds between one recovery and the next kill"
    )
    parser.add_argument("--pause", type=float, default=3.0, help="seconds a killed broker stays down")
    parser.add_argument("--participants", type=int, default=30)
    parser.add_argument("--listings", type=int, default=90)
    parser.add_argument("--seed", type=int, default=41)
    parser.add_argument("--deadline", type=float, default=900)
    parser.add_argument("--instances", type=int, default=1, help="processes of each service")
    return parser.parse_args(argv)


def schedule(kills: int, every: float, pause: float) -> tuple[Fault, ...]:
    """A kill every `every` seconds (later when the one before is still recovering)."""
    return tuple(Fault(2.0 + i * every, LEADER, "kafka", pause) for i in range(kills))


async def run(args: argparse.Namespace) -> ChaosReport:
    endpoints = infra.up(brokers=3)
    replicas = infra.ensure_all_topics(endpoints.kafka_bootstrap)
    if replicas < 3:
        raise SystemExit(f"topics get {replicas} replica(s): run `haggle infra up --brokers 3` first")
    procs.start_all(count=args.instances)
    population = build_population(
        args.seed, args.participants, args.listings, 10_000, 0.1, ["boulware", "conceder"], False
    )
    config = ChaosConfig(
        seed=args.seed,
        faults=schedule(args.kills, args.every, args.pause),
        market=RunConfig(approval_policy="grant-up-to:7500", deadline_seconds=args.deadline),
    )
    return await chaos_run(population, config, endpoints.kafka_bootstrap, endpoints.database_url, print)


def summary(report: ChaosReport) -> list[str]:
    kills = [r for r in report.faults if r.fault.kind == LEADER]
    timings = [TIMING.search(r.detail) for r in kills]
    failover = [float(m.group(1)) for m in timings if m]
    in_sync = [float(m.group(2)) for m in timings if m]
    services = [r.recovery_seconds for r in kills if r.survived]
    acked = report.acked
    lost = sum(map(len, acked.lost.values()))

    def spread(values: list[float]) -> str:
        if not values:
            return "-"
        return f"median {statistics.median(values):.1f}s, max {max(values):.1f}s"

    lines = [
        f"leader kills          {sum(r.injected for r in kills)} of {len(kills)} injected, "
        f"{sum(r.survived for r in kills)} recovered",
        f"acknowledged events   {acked.acknowledged}",
        f"found on their topic  {acked.acknowledged - lost}",
        f"lost                  {lost}",
        f"failover              {spread(failover)}",
        f"broker in sync again  {spread(in_sync)}",
        f"services ready again  {spread(services)}",
        f"market                {report.status.deals} deals, {report.commands}",
    ]
    lines += [f"{name:<32}{'true' if held else 'FALSE'}" for name, held in report.invariants.items()]
    lines += [f"  {r.fault.describe()}: {r.detail}" for r in kills]
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    report = asyncio.run(run(args))
    print("\n".join(summary(report)))
    for problem in report.problems[:20]:
        print(f"invariant broken: {problem}")
    if not report.ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
