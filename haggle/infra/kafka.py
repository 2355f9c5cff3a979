"""A real single-node Apache Kafka broker for development and tests, assembled from Maven.

Why this shape: there is no Docker engine and no Apache download site here, but Maven Central
and OpenJDK 17 are available. The official tarball's libs/ is the runtime classpath of the
`kafka_2.13` artifact plus a logging binding, so `mvn dependency:copy-dependencies` on
pom.xml (next to this file) builds the same classpath into the state folder.

Why Kafka 3.9.1: aiokafka 0.14 and FastStream 0.7 still speak old protocol versions,
including v0 of the transaction APIs, which Kafka 3.9 still accepts (4.x removed many old
versions); 3.9 runs KRaft (combined broker+controller, no ZooKeeper) and runs on Java 17.
Never reuse a data dir across Kafka major versions.

Topics are never auto-created (`auto.create.topics.enable=false`): they come from the topic
registry through `ensure_topics`. One partition for the internal offsets/transaction topics
and no initial rebalance delay keep the first consumer-group join fast on small machines.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from haggle.infra.state import (
    ComponentStatus,
    InfraError,
    Progress,
    Settings,
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

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).with_name("pom.xml")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
JAVA_HINT = "OpenJDK 17 (e.g. apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "Maven (e.g. apt-get install maven)"
REQUIRED_JARS = (f"kafka_2.13-{KAFKA_VERSION}.jar", "slf4j-reload4j-1.7.36.jar")


@dataclass(frozen=True)
class Launch:
    """A broker process we started or found running, and when we began waiting for it."""

    pid: int
    started_at: float
    reused: bool


# --- paths and config --------------------------------------------------------------------


def bootstrap_address(settings: Settings) -> str:
    return settings.external_kafka or f"127.0.0.1:{settings.kafka_port}"


def _config_path(settings: Settings) -> Path:
    return settings.kafka_dir / "server.properties"


def _log_path(settings: Settings) -> Path:
    return settings.kafka_dir / "kafka.log"


def _pid_file(settings: Settings) -> Path:
    return settings.kafka_dir / "kafka.pid"


def _markers(settings: Settings) -> list[str]:
    return ["kafka.Kafka", str(_config_path(settings))]


def server_properties(settings: Settings) -> str:
    port, ctrl = settings.kafka_port, settings.kafka_controller_port
    return f"""# Written by haggle/infra/kafka.py on every start; edits are lost.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{ctrl}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={settings.kafka_dir / "data"}
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
# After an unclean stop the old registration must expire before the broker may re-register
# (DUPLICATE_BROKER_REGISTRATION); the 9 s default made such restarts take ~14 s.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
log.retention.bytes=268435456
log.segment.bytes=67108864
"""


def log4j_properties(settings: Settings) -> str:
    return f"""# Written by haggle/infra/kafka.py: INFO and above to kafka.log (reload4j syntax).
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={_log_path(settings)}
log4j.appender.file.Append=true
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


def _write_configs(settings: Settings) -> None:
    settings.kafka_dir.mkdir(parents=True, exist_ok=True)
    _config_path(settings).write_text(server_properties(settings))
    (settings.kafka_dir / "log4j.properties").write_text(log4j_properties(settings))


def _java_argv(settings: Settings, heap: list[str], main: list[str]) -> list[str]:
    log4j = settings.kafka_dir / "log4j.properties"
    return [
        require_tool("java", JAVA_HINT),
        *heap,
        "-Djava.awt.headless=true",
        f"-Dlog4j.configuration=file:{log4j}",
        "-cp",
        f"{settings.kafka_libs_dir}/*",  # expanded by the JVM, not a shell
        *main,
    ]


# --- preflight, jars, storage ------------------------------------------------------------


def _check_java() -> None:
    java = require_tool("java", JAVA_HINT)
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    major = int(match.group(1)) if match else 0
    major = int(match.group(2) or 0) if match and major == 1 else major
    if major < 11:
        raise InfraError(f"java {major or '?'} is too old for Kafka {KAFKA_VERSION}: install {JAVA_HINT}")


def _jars_present(settings: Settings) -> bool:
    return all((settings.kafka_libs_dir / jar).exists() for jar in REQUIRED_JARS)


def preflight(settings: Settings) -> None:
    """Fail fast, before anything starts: ports free, java and (if needed) mvn present."""
    if settings.external_kafka:
        return
    pid = running_pid(_pid_file(settings), _markers(settings))
    if pid is not None:
        _require_same_ports(settings, pid)
        return
    require_free_port(settings.kafka_port, "HAGGLE_KAFKA_PORT")
    require_free_port(settings.kafka_controller_port, "HAGGLE_KAFKA_CONTROLLER_PORT")
    _check_java()
    if not _jars_present(settings):
        require_tool("mvn", MAVEN_HINT)


def ensure_jars(settings: Settings, progress: Progress) -> None:
    """Fetch the broker classpath once; a partial download never masquerades as complete."""
    if _jars_present(settings):
        return
    progress(f"fetching Kafka {KAFKA_VERSION} jars…")
    libs = settings.kafka_libs_dir
    partial = libs.with_name(libs.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _run_maven(partial)
    libs.mkdir(parents=True, exist_ok=True)
    for jar in partial.iterdir():
        os.replace(jar, libs / jar.name)
    partial.rmdir()


def _run_maven(output_dir: Path) -> None:
    argv = [
        require_tool("mvn", MAVEN_HINT),
        "-B",
        "-q",
        "-f",
        str(POM),
        "org.apache.maven.plugins:maven-dependency-plugin:3.6.1:copy-dependencies",
        f"-Dkafka.version={KAFKA_VERSION}",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise InfraError(f"mvn could not fetch the Kafka jars (exit {done.returncode}):\n{tail}")


def new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, never starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _cluster_id(settings: Settings) -> str:
    path = settings.kafka_dir / "cluster_id"
    if path.exists():
        return path.read_text().strip()
    meta = settings.kafka_dir / "data" / "meta.properties"
    found = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.M) if meta.exists() else None
    cid = found.group(1) if found else new_cluster_id()
    path.write_text(cid + "\n")
    return cid


def ensure_formatted(settings: Settings, progress: Progress) -> None:
    """Format the KRaft storage once (idempotent thanks to --ignore-formatted)."""
    if (settings.kafka_dir / "data" / "meta.properties").exists():
        return
    progress("formatting storage…")
    main = ["kafka.tools.StorageTool", "format", "-t", _cluster_id(settings)]
    main += ["-c", str(_config_path(settings)), "--ignore-formatted"]
    argv = _java_argv(settings, ["-Xmx256m"], main)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")


# --- start, readiness, stop --------------------------------------------------------------


def launch(settings: Settings, progress: Progress) -> Launch | None:
    """Start the broker unless it runs already; returns None when Kafka is external."""
    if settings.external_kafka:
        return None
    pid = running_pid(_pid_file(settings), _markers(settings))
    if pid is not None:
        return Launch(pid=pid, started_at=time.monotonic(), reused=True)
    ensure_jars(settings, progress)
    _write_configs(settings)
    ensure_formatted(settings, progress)
    progress("starting Kafka…")
    heap = ["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
    argv = _java_argv(settings, heap, ["kafka.Kafka", str(_config_path(settings))])
    pid = spawn(argv, _log_path(settings), cwd=settings.kafka_dir)
    write_pid(_pid_file(settings), pid)
    return Launch(pid=pid, started_at=time.monotonic(), reused=False)


@contextmanager
def _aiokafka_muted() -> Iterator[None]:
    """aiokafka logs every refused connection at ERROR; a probe expects some."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _require_same_ports(settings: Settings, pid: int) -> None:
    """A running broker keeps the ports it was started with (server.properties is per launch)."""
    port, ctrl = settings.kafka_port, settings.kafka_controller_port
    wanted = f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}"
    if wanted not in _config_path(settings).read_text().splitlines():
        raise InfraError(
            f"Kafka (pid {pid}) already runs with other ports (see {_config_path(settings)}); "
            "run `haggle infra down` first to apply the new HAGGLE_KAFKA_*PORT"
        )


async def probe_async(bootstrap: str, timeout_s: float = 3.0) -> str | None:
    """None if a metadata request lists at least one broker, else what went wrong."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    with _aiokafka_muted():
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
        except (KafkaError, OSError, TimeoutError) as exc:
            return describe_error(exc)
        finally:
            await admin.close()
    return None if cluster.get("brokers") else "metadata lists no broker yet"


def probe(bootstrap: str, timeout_s: float = 3.0) -> str | None:
    return run_sync(lambda: probe_async(bootstrap, timeout_s))


def wait_ready(settings: Settings, launched: Launch | None, progress: Progress) -> str:
    """Block until the broker answers metadata requests; returns the bootstrap address."""
    address = bootstrap_address(settings)
    if launched is None:
        problem = probe(address)
        if problem:
            raise InfraError(f"KAFKA_BOOTSTRAP_SERVERS={address} is not reachable: {problem}")
        return address
    deadline = launched.started_at + READY_TIMEOUT_S
    while (problem := probe(address, 2.0)) is not None:
        _check_still_starting(settings, launched.pid, deadline, problem)
        time.sleep(0.25)
    took = time.monotonic() - launched.started_at
    verb = f"already running (pid {launched.pid})" if launched.reused else f"ready ({took:.1f} s)"
    progress(f"Kafka {verb} at {address}")
    return address


def _check_still_starting(settings: Settings, pid: int, deadline: float, problem: str) -> None:
    log = _log_path(settings)
    if not is_alive(pid):
        _pid_file(settings).unlink(missing_ok=True)
        raise InfraError(f"Kafka exited during startup; see {log}:\n{log_tail(log)}")
    if time.monotonic() > deadline:
        raise InfraError(
            f"Kafka did not become ready within {READY_TIMEOUT_S:.0f} s ({problem}); "
            f"`haggle infra down` resets it; see {log}:\n{log_tail(log)}"
        )


def stop(settings: Settings, progress: Progress) -> None:
    """SIGTERM (controlled shutdown), SIGKILL after STOP_TIMEOUT_S; removes the pid file."""
    pid = running_pid(_pid_file(settings), _markers(settings))
    if pid is not None:
        progress(f"stopping Kafka (pid {pid})…")
        stop_process(pid, signal.SIGTERM, STOP_TIMEOUT_S)
    _pid_file(settings).unlink(missing_ok=True)


def status(settings: Settings) -> ComponentStatus:
    address = bootstrap_address(settings)
    external = settings.external_kafka is not None
    pid = None if external else running_pid(_pid_file(settings), _markers(settings))
    if not external and pid is None:
        return ComponentStatus("kafka", None, False, address, "not running")
    problem = probe(address)
    detail = problem or ("reachable" if external else f"Kafka {KAFKA_VERSION}")
    return ComponentStatus("kafka", pid, problem is None, address, detail, external)


# --- topics ------------------------------------------------------------------------------


async def ensure_topics_async(
    bootstrap: str,
    topics: dict[str, int],
    timeout_s: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication: int = 1,
) -> None:
    """Create the missing topics and wait until every partition has a leader.

    Existing topics keep their partition count. With `configs`, new topics are created with
    their config and an existing topic whose config differs is altered to match.
    """
    configs = configs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, n, replication, topic_configs=dict(configs.get(name, {})))
            for name, n in topics.items()
            if name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            _raise_topic_errors(response.topic_errors)
        present = {name: dict(configs[name]) for name in topics if name in existing and configs.get(name)}
        if present:
            await _align_configs(admin, present)
        await _wait_for_leaders(admin, list(topics), time.monotonic() + timeout_s)
    except KafkaError as exc:
        raise InfraError(f"could not create topics on {bootstrap}: {exc!r}") from exc
    finally:
        await admin.close()


_DYNAMIC_TOPIC_CONFIG = 1
"""DescribeConfigs v1+ `config_source` of a per-topic override."""


async def _align_configs(admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]]) -> None:
    """AlterConfigs replaces a topic's whole override set, so overrides we do not manage are kept."""
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted])
    changes = []
    for response in described:
        for code, message, _type, name, entries in response.resources:
            if code:
                raise InfraError(f"describing topic {name} failed: {for_code(code).__name__} {message}")
            current = {entry[0]: entry[1] for entry in entries}
            if response.API_VERSION == 0:
                overrides = {entry[0]: entry[1] for entry in entries if not entry[3]}
            else:
                overrides = {entry[0]: entry[1] for entry in entries if entry[3] == _DYNAMIC_TOPIC_CONFIG}
            if any(current.get(key) != value for key, value in wanted[name].items()):
                changes.append(ConfigResource(ConfigResourceType.TOPIC, name, overrides | wanted[name]))
    for response in await admin.alter_configs(changes) if changes else []:
        for code, message, _type, name in response.resources:
            if code:
                raise InfraError(f"altering topic {name} failed: {for_code(code).__name__} {message}")


def _raise_topic_errors(topic_errors: list[tuple[str, int, str | None]]) -> None:
    """Response rows are (topic, error_code[, error_message]); 'already exists' is fine."""
    for topic, code, *message in topic_errors:
        error = for_code(code)
        if code and error is not TopicAlreadyExistsError:
            raise InfraError(f"creating topic {topic} failed: {error.__name__} {message}")


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], deadline: float) -> None:
    while True:
        described = await admin.describe_topics(names) if names else []
        pending = [t["topic"] for t in described if not _has_leaders(t)]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise InfraError(f"topics without partition leaders: {', '.join(pending)}")
        await asyncio.sleep(0.1)


def _has_leaders(topic: dict[str, object]) -> bool:
    partitions = topic.get("partitions")
    if topic.get("error_code") or not isinstance(partitions, list) or not partitions:
        return False
    return all(p.get("leader", -1) >= 0 and not p.get("error_code") for p in partitions)


def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication: int = 1,
) -> None:
    """Sync wrapper around `ensure_topics_async`."""
    run_sync(lambda: ensure_topics_async(bootstrap, topics, configs=configs, replication=replication))
