"""CPU per negotiation move, every process together (issue 19: target ≤ 0.8 ms).

Runs `kafka_ceiling`'s phase 1 (N scripted negotiations through the running services, unpaced)
and reads utime + stime (`/proc/<pid>/stat`) of every process before and after: each service,
the broker, every PostgreSQL backend (mapped to its service by `application_name`, the others
counted as `postgres`) and this client. Before the run it measures the same processes idle for
`--idle` seconds (what polling costs when nothing happens), reported per second.

    .venv/bin/python -m bench.cpu_per_move --pairs 300
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import asyncpg

from bench.kafka_ceiling import negotiate
from bench.negotiation_throughput import ensure_services
from haggle import infra
from haggle.contracts.topics import all_topic_partitions
from haggle.runtime.settings import Settings

TARGET_MS = 0.8
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    for task in Path("/proc").iterdir():
        if not task.name.isdigit():
            continue
        try:
            stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(stat[1]) == pid:
            found.append(int(task.name))
    return found


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


async def processes(settings: Settings) -> dict[int, str]:
    """pid → name of every process that works for a move (except this one)."""
    named: dict[int, str] = {}
    for pid_file in sorted((settings.state_dir / "services").glob("*.pid")):
        pid = _pid(pid_file)
        if pid is not None:
            named[pid] = pid_file.stem
    broker = _pid(settings.state_dir / "kafka" / "kafka.pid")
    if broker is not None:
        named[broker] = "kafka"
    postmaster = _pid(settings.state_dir / "postgres" / "postgres.pid")
    if postmaster is not None:
        named[postmaster] = "postgres"
        conn = await asyncpg.connect(settings.database_url)
        try:
            rows = await conn.fetch("SELECT pid, application_name FROM pg_stat_activity")
        finally:
            await conn.close()
        apps = {r["pid"]: r["application_name"] for r in rows}
        for child in _children(postmaster):
            app = apps.get(child) or ""
            named[child] = f"pg {app.removeprefix('haggle-')}" if app.startswith("haggle-") else "postgres"
    return named


def sample(named: dict[int, str]) -> dict[int, float]:
    return {pid: cpu for pid in named if (cpu := _cpu_seconds(pid)) is not None}


def spent(named: dict[int, str], before: dict[int, float], after: dict[int, float]) -> dict[str, float]:
    by_name: dict[str, float] = defaultdict(float)
    for pid, cpu in after.items():
        by_name[named[pid]] += cpu - before.get(pid, 0.0)
    return dict(by_name)


async def measure(pairs: int, idle: float) -> None:
    settings = Settings()
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    await negotiate(settings.kafka_bootstrap_servers, 20, rate=0)  # warm up: pools, JITs, topics
    named = await processes(settings)
    before = sample(named)
    await asyncio.sleep(idle)
    idle_cpu = spent(named, before, sample(named))
    named = await processes(settings)
    before, client = sample(named), time.process_time()
    run = await negotiate(settings.kafka_bootstrap_servers, pairs, rate=0)
    client = time.process_time() - client
    after = sample({**named, **(await processes(settings))})
    busy = spent({**named, **(await processes(settings))}, before, after)
    busy["bench client"] = client
    total = sum(busy.values())
    print(f"\n{run.moves:,} moves in {run.seconds:.2f} s ({run.per_second:,.0f} moves/s)")
    print(f"{'process':<22}{'cpu-s':>8}{'ms/move':>10}{'idle ms/s':>11}")
    for name in sorted(busy, key=lambda n: -busy[n]):
        idle_rate = 1000 * idle_cpu.get(name, 0.0) / idle if idle > 0 else 0.0
        print(f"{name:<22}{busy[name]:>8.2f}{1000 * busy[name] / run.moves:>10.2f}{idle_rate:>11.1f}")
    per_move = 1000 * total / run.moves
    verdict = "met" if per_move <= TARGET_MS else "MISSED"
    idle_all = 1000 * sum(idle_cpu.values()) / idle if idle > 0 else 0.0
    print(f"{'all':<22}{total:>8.2f}{per_move:>10.2f}{idle_all:>11.1f}")
    services = sum(v for k, v in busy.items() if k not in ("kafka", "postgres", "bench client"))
    print(f"services and their backends: {1000 * services / run.moves:.2f} ms/move")
    print(f"CPU per move, every process: {per_move:.2f} ms (target ≤ {TARGET_MS} ms: {verdict})")
    print(f"load average {os.getloadavg()[0]:.2f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cpu_per_move", description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300, help="negotiations in the measured run")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of idle measured before it")
    args = parser.parse_args(argv)
    ensure_services()
    infra.ensure_topics(Settings().kafka_bootstrap_servers, all_topic_partitions())
    asyncio.run(measure(args.pairs, args.idle))


if __name__ == "__main__":
    main()
