"""Background service processes for local use: `haggle services up|down|status`.

Each service runs as `python -m haggle run <name>` in its own session, with a
pid file and a JSON log in the state folder. The tests use the same functions,
so what `make demo` runs is what the tests kill and restart.
"""

from __future__ import annotations

import os
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
from haggle.runtime.settings import SERVICE_PORTS

SERVICES = ("listing", "negotiation", "settlement", "agents", "web", "gateway")
"""Services in start order. Each issue that adds a service adds it here."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    pid: int | None
    ready: bool
    url: str
    detail: str


def _dir() -> Path:
    path = Settings.from_env().state_dir / "services"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tag() -> str:
    """Names this state folder in the argv, so another checkout's services are never adopted."""
    return f"--tag={Settings.from_env().state_dir}"


def _markers(name: str) -> list[str]:
    return ["haggle", "run", name, _tag()]


def url_for(name: str) -> str:
    port = int(os.environ.get(f"HAGGLE_{name.upper()}_PORT", SERVICE_PORTS[name]))
    return f"http://127.0.0.1:{port}"


def log_path(name: str) -> Path:
    return _dir() / f"{name}.log"


def pid_of(name: str) -> int | None:
    return running_pid(_dir() / f"{name}.pid", _markers(name))


def start(name: str, extra_env: dict[str, str] | None = None) -> int:
    """Start one service unless it already runs; returns its pid."""
    if name not in SERVICE_PORTS:
        raise InfraError(f"unknown service {name!r}; known: {', '.join(SERVICE_PORTS)}")
    if (pid := pid_of(name)) is not None:
        return pid
    port = url_for(name).rsplit(":", 1)[1]
    env = {**os.environ, "HAGGLE_HTTP_PORT": port, **(extra_env or {})}
    argv = [sys.executable, "-m", "haggle", "run", name, _tag()]
    pid = spawn(argv, log_path(name), REPO_ROOT, env=env)
    write_pid(_dir() / f"{name}.pid", pid)
    return pid


def ready(name: str) -> tuple[bool, str]:
    try:
        response = httpx.get(f"{url_for(name)}/readyz", timeout=2.0)
    except httpx.HTTPError as exc:
        return False, f"not answering: {type(exc).__name__}"
    return response.status_code == 200, response.text[:200]


def wait_ready(name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid_of(name) is None:
            raise InfraError(f"{name} exited; see {log_path(name)}")
        if ready(name)[0]:
            return
        time.sleep(0.2)
    raise InfraError(f"{name} not ready after {timeout:.0f}s; see {log_path(name)}")


def kill(name: str, sig: signal.Signals = signal.SIGKILL) -> None:
    """Send a signal without waiting (kill -9 in the fault tests)."""
    if (pid := pid_of(name)) is not None:
        os.kill(pid, sig)


def crash_and_restart(name: str, down_for: float = 0.5) -> int:
    """kill -9, wait until the process is gone, start it again: the fault tests' move."""
    pid = pid_of(name)
    kill(name)
    deadline = time.monotonic() + 10
    while pid is not None and Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            break
        time.sleep(0.05)
    time.sleep(down_for)
    return start(name)


def stop(name: str, timeout: float = 15.0) -> None:
    if (pid := pid_of(name)) is not None:
        stop_process(pid, signal.SIGTERM, timeout)
    (_dir() / f"{name}.pid").unlink(missing_ok=True)


def status(name: str) -> ServiceStatus:
    pid = pid_of(name)
    ok, detail = ready(name) if pid else (False, "not running")
    return ServiceStatus(name, pid, ok, url_for(name), detail)


def start_all(restart: bool = False) -> None:
    """Every service, ready; `restart` first stops any left over from an earlier run (old code)."""
    for name in SERVICES:
        if restart:
            stop(name)
        start(name)
    for name in SERVICES:
        wait_ready(name)


def up(progress: Callable[[str], None] | None = None, restart: bool = False) -> InfraEndpoints:
    """Kafka, PostgreSQL, every topic with its config, and every service: what a run needs."""
    from haggle import infra
    from haggle.contracts.topics import all_topic_partitions, topic_configs

    endpoints = infra.up(progress=progress)
    infra.ensure_topics(endpoints.kafka_bootstrap, all_topic_partitions(), configs=topic_configs())
    start_all(restart)
    return endpoints
