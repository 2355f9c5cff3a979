"""Negotiation moves handled per second end to end, and command → recipient-inbox latency.

Runs N scripted negotiations through the real listing and negotiation
services (they must be running: `haggle services up`), from the first
opening offer to the last thread's end, and prints moves/s and the p50/p99
time from a signed command being sent to its event arriving in the
counterparty's inbox.

    python -m bench.negotiation_throughput --pairs 300
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence

from haggle import procs
from haggle.client import Publisher
from haggle.runtime.settings import Settings
from haggle_lab.testing.autoplay import AutoMarket
from haggle_lab.testing.observe import Observer


def ensure_services() -> None:
    """The infrastructure and every service, started if they are not running."""
    procs.up()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def hop_latencies(auto: AutoMarket, obs: Observer) -> list[float]:
    """Seconds from sending a command to its first copy in another agent's inbox."""
    first: dict[str, float] = {}
    for (topic, env), arrived in zip(obs.seen, obs.arrived, strict=True):
        cause = env.causation_id
        if topic != "agent.inbox" or cause not in auto.sent_at or cause in first:
            continue
        if env.agent_id != auto.sent[cause].agent_id:
            first[cause] = arrived - auto.sent_at[cause]
    return list(first.values())


async def run(pairs: int) -> dict[str, float]:
    bootstrap = Settings().kafka_bootstrap_servers
    market_id = f"bench-{uuid.uuid4().hex[:6]}"
    topics = ("agent.inbox", "negotiation.events", "listing.events")
    async with Publisher(bootstrap) as pub, Observer(bootstrap, *topics, market_id=market_id) as obs:
        auto = AutoMarket(market_id, pub, obs, pairs=pairs, sellers=max(1, pairs // 10))
        print(f"setting up {pairs} buyer/seller pairs…", flush=True)
        await auto.setup()
        print("negotiating…", flush=True)
        started = time.perf_counter()
        await auto.open_all()
        await auto.play(until_ended=pairs, timeout=600)
        elapsed = time.perf_counter() - started
    latencies = hop_latencies(auto, obs)
    moves = len(auto.sent)
    return {
        "negotiations": pairs,
        "moves": moves,
        "seconds": elapsed,
        "moves_per_s": moves / elapsed,
        "negotiations_per_s": pairs / elapsed,
        "hop_p50_ms": 1000 * percentile(latencies, 0.50),
        "hop_p99_ms": 1000 * percentile(latencies, 0.99),
        "hop_mean_ms": 1000 * statistics.fmean(latencies) if latencies else float("nan"),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args(argv)
    ensure_services()
    result = asyncio.run(run(args.pairs))
    for key, value in result.items():
        print(f"{key:>20}: {value:,.2f}" if isinstance(value, float) else f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
