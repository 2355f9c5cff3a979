"""One against two instances per service: the same market's throughput, side by side, one run.

Runs the same population (same seed) as a market twice: first with one process of each
service, then with `--instances` (default 2) in each consumer group. No faults: this
measures the cost (or gain) of coordination. Printed per run: negotiation commands per
second over the trading window (first to last command on `negotiation.commands`), deals,
wall seconds, every chaos invariant, and how the records were shared between instances;
then the ratio of the two throughputs. On two shared cores expect no gain.

    haggle bench instances --participants 20 --listings 60
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

from haggle import infra, procs
from haggle.market.population import build_population
from haggle.market.runner import RunConfig
from haggle_lab.chaos.run import ChaosConfig, ChaosReport, chaos_run


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="haggle bench instances", description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=2)
    parser.add_argument("--participants", type=int, default=20)
    parser.add_argument("--listings", type=int, default=60)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--deadline", type=float, default=600)
    return parser.parse_args(argv)


def moves_per_second(report: ChaosReport) -> tuple[int, float]:
    """Negotiation commands and the seconds from the first to the last one."""
    moves = report.moves_at
    if len(moves) < 2:
        return len(moves), 0.0
    return len(moves), (max(moves) - min(moves)).total_seconds()


async def market(args: argparse.Namespace, count: int) -> ChaosReport:
    procs.start_all(count=count)
    endpoints = infra.up()
    population = build_population(
        args.seed, args.participants, args.listings, 10_000, 0.1, ["boulware", "conceder"], False
    )
    config = ChaosConfig(
        seed=args.seed,
        faults=(),
        instances=count,
        market=RunConfig(approval_policy="grant-up-to:7500", deadline_seconds=args.deadline),
    )
    return await chaos_run(population, config, endpoints.kafka_bootstrap, endpoints.database_url, _quiet)


def row(count: int, report: ChaosReport) -> str:
    moves, seconds = moves_per_second(report)
    rate = moves / seconds if seconds else 0.0
    held = sum(report.invariants.values())
    shares = "; ".join(
        f"{name} " + "/".join(f"{n:.0f}" for _, n in sorted(by.items()))
        for name, by in sorted(report.work.items())
    )
    return (
        f"{count:>9} {moves:>6} {seconds:>8.1f} {rate:>8.1f} {report.status.deals:>6} "
        f"{report.seconds:>7.0f} {held}/{len(report.invariants):<5} {shares}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = parse(argv)
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    infra.ensure_all_topics(infra.up().kafka_bootstrap)
    reports = {}
    for count in (1, args.instances):
        print(f"market with {count} instance(s) of each service…", flush=True)
        reports[count] = asyncio.run(market(args, count))
    procs.start_all(count=1)
    head = f"{'instances':>9} {'moves':>6} {'window':>8} {'moves/s':>8} {'deals':>6} {'wall':>7}"
    print(f"{head} invariants  records per instance")
    for count, report in reports.items():
        print(row(count, report))
    one, many = (moves_per_second(reports[c]) for c in (1, args.instances))
    if one[1] and many[1]:
        ratio = (many[0] / many[1]) / (one[0] / one[1])
        print(f"throughput ratio {args.instances} instances / 1 instance: {ratio:.2f}")
    if not all(r.ok for r in reports.values()):
        raise SystemExit(1)


def _quiet(_message: str) -> None:
    return None


if __name__ == "__main__":
    main()
