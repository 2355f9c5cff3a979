"""Shared plumbing for the local infrastructure: settings, paths, pid files and processes.

Why it exists: `haggle infra up|down|status`, the pytest fixtures and any developer shell
must agree on where the broker and the database live (one state folder, fixed ports) and on
which processes are "ours", without a supervisor daemon. Pid files alone are not trusted:
a pid is only ours while /proc/<pid>/cmdline still names our config, so a recycled pid is
never signalled. Only the standard library is used here so that `status` stays cheap.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from haggle.runtime import settings as runtime_settings
from haggle.runtime.settings import REPO_ROOT as REPO_ROOT

T = TypeVar("T")
Progress = Callable[[str], None]

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_PG_PORT = 15432

# Children started by this interpreter, kept so they can be reaped (no zombies, no
# "subprocess still running" ResourceWarnings when up() and down() share a process).
_children: dict[int, subprocess.Popen[bytes]] = {}


class InfraError(RuntimeError):
    """A local infrastructure problem with a message meant for a human."""


@dataclass(frozen=True)
class InfraEndpoints:
    """Where clients connect; what `up()` returns."""

    kafka_bootstrap: str
    database_url: str


@dataclass(frozen=True)
class ComponentStatus:
    """One row of `status()`: `external` means named by an env var, not managed here."""

    name: str
    pid: int | None
    healthy: bool
    endpoint: str
    detail: str
    external: bool = False


@dataclass(frozen=True)
class Settings:
    """Everything configurable through the environment, read once per call."""

    state_dir: Path
    kafka_port: int
    kafka_controller_port: int
    pg_port: int
    kafka_libs_dir: Path
    external_kafka: str | None
    external_database: str | None

    kafka_brokers: int | None = None
    """Brokers asked for in the environment (None: what the last `up` wrote)."""
    pg_shared_buffers_mb: int = runtime_settings.PG_SHARED_BUFFERS_MB

    @classmethod
    def from_env(cls) -> Settings:
        """From the one settings object (`haggle.runtime.settings`), read afresh for each command."""
        try:
            read = runtime_settings.load()
        except runtime_settings.BadSettings as exc:
            raise InfraError(str(exc)) from None
        given = read.model_fields_set
        return cls(
            state_dir=read.state_dir,
            kafka_port=read.kafka_port,
            kafka_controller_port=read.kafka_controller_port,
            pg_port=read.pg_port,
            kafka_libs_dir=(read.kafka_libs_dir or read.state_dir / "kafka" / "libs").expanduser().resolve(),
            external_kafka=read.kafka_bootstrap_servers if "kafka_bootstrap_servers" in given else None,
            external_database=read.database_url if "database_url" in given else None,
            kafka_brokers=read.kafka_brokers,
            pg_shared_buffers_mb=read.pg_shared_buffers_mb,
        )

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def pg_dir(self) -> Path:
        return self.state_dir / "postgres"


@contextmanager
def state_lock(settings: Settings) -> Iterator[None]:
    """Serialise up/down across processes (e.g. parallel pytest workers)."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "infra.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def require_tool(name: str, package: str) -> str:
    """Absolute path of `name`, or an InfraError telling how to install it."""
    path = shutil.which(name)
    if path is None:
        raise InfraError(f"{name} not found on PATH: install {package}")
    return path


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (SO_REUSEADDR ignores TIME_WAIT leftovers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, env_name: str) -> None:
    if not port_is_free(port):
        raise InfraError(
            f"port {port} is in use by another process; set {env_name} to a free port or stop that process"
        )


def describe_error(exc: BaseException) -> str:
    """`Type: message`, without repeating the type when the message already starts with it."""
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}".rstrip(": ")


def log_tail(path: Path, lines: int = 15) -> str:
    """Last lines of a log, for error messages."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log yet)"
    return "\n".join(text.splitlines()[-lines:])


# --- processes ---------------------------------------------------------------------------


def as_user(user: str | None) -> dict[str, Any]:
    """Popen kwargs to run as `user` with only its own group.

    Popen(user=...) alone keeps root's gid 0, so a root-owned 0701 folder (pytest's tmp dirs)
    would be judged by its group bits and stay closed.
    """
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def spawn(
    argv: list[str], log: Path, cwd: Path, user: str | None = None, env: dict[str, str] | None = None
) -> int:
    """Start a detached process (own session) whose stdout/stderr append to `log`."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
            **as_user(user),
        )
    _children[proc.pid] = proc
    return proc.pid


def is_alive(pid: int) -> bool:
    """True if the process exists and is not a zombie (reaping our own children)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        del _children[pid]
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_ours(pid: int, markers: list[str]) -> bool:
    """A live process whose argv contains every marker as a whole argument."""
    return is_alive(pid) and set(markers) <= set(cmdline(pid))


def find_ours(markers: list[str]) -> int | None:
    """Scan /proc for our process when the pid file is missing or stale."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and is_ours(int(entry.name), markers):
            return int(entry.name)
    return None


def read_pid(pid_file: Path) -> int | None:
    try:
        text = pid_file.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(pid_file: Path, pid: int) -> None:
    pid_file.write_text(f"{pid}\n")


def running_pid(pid_file: Path, markers: list[str]) -> int | None:
    """Our running process: trust the pid file if it checks out, else adopt by argv.

    A stale pid file (process gone or pid recycled) is removed.
    """
    pid = read_pid(pid_file)
    if pid is not None and is_ours(pid, markers):
        return pid
    pid_file.unlink(missing_ok=True)
    found = find_ours(markers)
    if found is not None:
        write_pid(pid_file, found)
    return found


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, process group) for every live, non-zombie process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X"):
            table[int(entry.name)] = (int(fields[1]), int(fields[2]))
    return table


def _family(pid: int) -> set[int]:
    """`pid`, its descendants and its process-group members.

    PostgreSQL children call setsid(), so the process group alone misses them.
    """
    table = _process_table()
    family = {pid} | {p for p, (_, pgid) in table.items() if pgid == pid}
    grew = True
    while grew:
        more = {p for p, (ppid, _) in table.items() if ppid in family} - family
        family |= more
        grew = bool(more)
    return family


def _wait_gone(pids: set[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(is_alive(p) for p in pids):
            return True
        time.sleep(0.1)
    return False


def stop_process(pid: int, first_signal: signal.Signals, timeout: float) -> None:
    """Send `first_signal`; after `timeout` SIGKILL the process and all its descendants."""
    family = _family(pid)
    with suppress(ProcessLookupError):
        os.kill(pid, first_signal)
    if _wait_gone(family, timeout):
        return
    family |= _family(pid)
    for member in family:
        with suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    if not _wait_gone(family, 10):
        raise InfraError(f"process {pid} or its children survived SIGKILL")


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from sync code, even when called inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()
