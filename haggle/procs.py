"""Background service processes for local use: `haggle services up|down|status`.

Each service runs as `python -m haggle run <name>` in its own session, with a
pid file and a JSON log in the state folder. The tests use the same functions,
so what `make demo` runs is what the tests kill and restart.

A service may run as several instances in its consumer group (`--instances N`).
Instance 0 keeps the service's own port, pid file and log; instance i > 0 is
`<name>-<i>` on the service's port + i × INSTANCE_PORT_STEP. The pid files on
disk are the record of which instances run, so `status` and `down` find them all.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from haggle.infra.state import (
    REPO_ROOT,
    InfraEndpoints,
    InfraError,
    Settings,
    running_pid,
    spawn,
    stop_process,
    write_pid,
)
from haggle.runtime.settings import SERVICE_PORTS, current

SERVICES = ("listing", "negotiation", "settlement", "agents", "web", "gateway")
"""Services in start order. Each issue that adds a service adds it here."""

INSTANCE_PORT_STEP = 100
"""Instance i of a service listens on its port + i × this (ports stay apart from other services')."""
MAX_INSTANCES = 9


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    ready: bool
    url: str
    detail: str
    instance: int = 0

    @property
    def label(self) -> str:
        return label(self.name, self.instance)


def label(name: str, instance: int = 0) -> str:
    """`negotiation` for instance 0, `negotiation-1` for the next: its pid file, log and argv tag."""
    return name if instance == 0 else f"{name}-{instance}"


def _dir() -> Path:
    path = Settings.from_env().state_dir / "services"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tag(instance: int = 0) -> str:
    """Names the state folder (and instance) in the argv: another checkout's services are never adopted."""
    suffix = "" if instance == 0 else f"#{instance}"
    return f"--tag={Settings.from_env().state_dir}{suffix}"


def _markers(name: str, instance: int = 0) -> list[str]:
    return ["haggle", "run", name, _tag(instance)]


def _pid_file(name: str, instance: int = 0) -> Path:
    return _dir() / f"{label(name, instance)}.pid"


def url_for(name: str, instance: int = 0) -> str:
    port = current().service_port(name)
    return f"http://127.0.0.1:{port + instance * INSTANCE_PORT_STEP}"


def log_path(name: str, instance: int = 0) -> Path:
    return _dir() / f"{label(name, instance)}.log"


def pid_of(name: str, instance: int = 0) -> int | None:
    return running_pid(_pid_file(name, instance), _markers(name, instance))


def instances(name: str) -> list[int]:
    """The instances of `name` with a pid file, in order (0 first)."""
    pattern = re.compile(rf"^{re.escape(name)}(?:-(\d+))?\.pid$")
    found = {int(m.group(1) or 0) for p in _dir().iterdir() if (m := pattern.match(p.name))}
    return sorted(found)


def start(name: str, extra_env: dict[str, str] | None = None, instance: int = 0) -> int:
    """Start one instance of a service unless it already runs; returns its pid."""
    if name not in SERVICE_PORTS:
        raise InfraError(f"unknown service {name!r}; known: {', '.join(SERVICE_PORTS)}")
    if not 0 <= instance < MAX_INSTANCES:
        raise InfraError(f"instance {instance} out of range 0..{MAX_INSTANCES - 1}")
    if (pid := pid_of(name, instance)) is not None:
        return pid
    port = url_for(name, instance).rsplit(":", 1)[1]
    env = {**os.environ, **_kafka_env(), "HAGGLE_HTTP_PORT": port, "HAGGLE_INSTANCE": str(instance)}
    env |= extra_env or {}
    argv = [sys.executable, "-m", "haggle", "run", name, _tag(instance)]
    pid = spawn(argv, log_path(name, instance), REPO_ROOT, env=env)
    write_pid(_pid_file(name, instance), pid)
    return pid


def _kafka_env() -> dict[str, str]:
    """Every broker of a local cluster as bootstrap, so a service starts while one broker is down."""
    from haggle.infra import kafka

    settings = Settings.from_env()
    if "kafka_bootstrap_servers" in current().model_fields_set:  # set outright: kept as it is
        return {}
    return {"HAGGLE_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_address(settings)}


def ready(name: str, instance: int = 0) -> tuple[bool, str]:
    try:
        response = httpx.get(f"{url_for(name, instance)}/readyz", timeout=2.0)
    except httpx.HTTPError as exc:
        return False, f"not answering: {type(exc).__name__}"
    return response.status_code == 200, response.text[:200]


def all_ready(name: str) -> bool:
    """Every instance of `name` that has a pid file answers /readyz (instance 0 at least)."""
    return all(ready(name, i)[0] for i in instances(name) or [0])


def wait_ready(name: str, timeout: float = 60.0, instance: int = 0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_of(name, instance) is None:
            raise InfraError(f"{label(name, instance)} exited; see {log_path(name, instance)}")
        if ready(name, instance)[0]:
            return
        time.sleep(0.2)
    raise InfraError(
        f"{label(name, instance)} not ready after {timeout:.0f}s; see {log_path(name, instance)}"
    )


def kill(name: str, sig: signal.Signals = signal.SIGKILL, instance: int = 0) -> None:
    """Send a signal without waiting (kill -9 in the fault tests)."""
    if (pid := pid_of(name, instance)) is not None:
        os.kill(pid, sig)


def crash_and_restart(name: str, down_for: float = 0.5, instance: int = 0) -> int:
    """kill -9, wait until the process is gone, start it again: the fault tests' move."""
    pid = pid_of(name, instance)
    kill(name, instance=instance)
    deadline = time.monotonic() + 10
    while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            break
        time.sleep(0.05)
    time.sleep(down_for)
    return start(name, instance=instance)


def stop(name: str, timeout: float = 15.0, instance: int | None = None) -> None:
    """Stop one instance, or (by default) every instance of the service."""
    for i in instances(name) if instance is None else [instance]:
        if (pid := pid_of(name, i)) is not None:
            stop_process(pid, signal.SIGTERM, timeout)
        _pid_file(name, i).unlink(missing_ok=True)


def status(name: str, instance: int = 0) -> ServiceStatus:
    pid = pid_of(name, instance)
    ok, detail = ready(name, instance) if pid else (False, "not running")
    return ServiceStatus(name, pid, ok, url_for(name, instance), detail, instance)


def statuses() -> list[ServiceStatus]:
    """One row per instance of every service (instance 0 even when it is not running)."""
    return [status(name, i) for name in SERVICES for i in instances(name) or [0]]


def start_all(restart: bool = False, count: int = 1) -> None:
    """`count` instances of every service, ready. `restart` first stops any left over from an
    earlier run (old code); instances beyond `count` are stopped either way."""
    if not 1 <= count <= MAX_INSTANCES:
        raise InfraError(f"--instances must be 1..{MAX_INSTANCES}, not {count}")
    for name in SERVICES:
        for extra in (i for i in instances(name) if i >= count):
            stop(name, instance=extra)
        for i in range(count):
            if restart:
                stop(name, instance=i)
            start(name, instance=i)
    for name in SERVICES:
        for i in range(count):
            wait_ready(name, instance=i)


def up(
    progress: Callable[[str], None] | None = None, restart: bool = False, count: int = 1
) -> InfraEndpoints:
    """Kafka, PostgreSQL, every topic with its config, and every service: what a run needs."""
    from haggle import infra

    endpoints = infra.up(progress=progress)
    infra.ensure_all_topics(endpoints.kafka_bootstrap)
    start_all(restart, count)
    return endpoints
