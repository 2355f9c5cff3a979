"""A real single-node Apache Kafka broker for development and tests, assembled from Maven.

Why this shape: there is no Docker engine and no Apache download site here, but Maven Central
and OpenJDK 17 are available. The official tarball's libs/ is the runtime classpath of the
`kafka_2.13` artifact plus a logging binding, so `mvn dependency:copy-dependencies` on
pom.xml (next to this file) builds the same classpath into the state folder.

Why Kafka 3.9.1: aiokafka 0.14 and FastStream 0.7 still speak old protocol versions,
including v0 of the transaction APIs, which Kafka 3.9 still accepts (4.x removed many old
versions); 3.9 runs KRaft (combined broker+controller, no ZooKeeper) and runs on Java 17.
Never reuse a data dir across Kafka major versions.

`up(brokers=3)` runs a KRaft cluster instead: three combined broker+controller nodes, node i on
HAGGLE_KAFKA_PORT (and _CONTROLLER_PORT) + (i-1) × BROKER_PORT_STEP, each with its own folder
under `kafka/cluster/`, internal topics replicated three times with `min.insync.replicas=2`.
The size of the cluster is written to `kafka/brokers` on `up`, so `down`, `status` and a
restart by the chaos monkey know it; a single broker keeps the one-node layout in `kafka/`.

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
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.metadata import MetadataRequest

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
READY_TIMEOUT_S = 180.0
"""A JVM start on a shared, loaded 2-core machine took 86 s (load average 40)."""
STOP_TIMEOUT_S = 30.0
JAVA_HINT = "OpenJDK 17 (e.g. apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "Maven (e.g. apt-get install maven)"
REQUIRED_JARS = (f"kafka_2.13-{KAFKA_VERSION}.jar", "slf4j-reload4j-1.7.36.jar")


@dataclass(frozen=True)
class Launch:
    """The broker processes we started or found running, and when we began waiting for them."""

    pids: tuple[int, ...]
    started_at: float
    reused: bool

    @property
    def pid(self) -> int:
        return self.pids[0]


# --- paths and config --------------------------------------------------------------------

BROKER_PORT_STEP = 100
"""Node i of a cluster listens on the configured ports + (i-1) × this."""
MAX_BROKERS = 5
_SIZE_FILE = "brokers"


@dataclass(frozen=True)
class Node:
    """One broker+controller process: its id, ports and folder (config, data, log, pid)."""

    node_id: int
    port: int
    controller_port: int
    dir: Path

    @property
    def config_path(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.dir / "kafka.log"

    @property
    def pid_file(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def markers(self) -> list[str]:
        return ["kafka.Kafka", str(self.config_path)]


def cluster_size(settings: Settings) -> int:
    """Brokers of the local cluster: HAGGLE_KAFKA_BROKERS, else what the last `up` wrote, else 1."""
    raw = str(settings.kafka_brokers or _read_size(settings))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_BROKERS:
        raise InfraError(f"HAGGLE_KAFKA_BROKERS={raw!r}: want a number of brokers from 1 to {MAX_BROKERS}")
    return int(raw)


def _read_size(settings: Settings) -> str:
    path = settings.kafka_dir / _SIZE_FILE
    return path.read_text().strip() if path.exists() else "1"


def set_cluster_size(settings: Settings, brokers: int) -> None:
    """Record the size `launch` starts; refused while a cluster of another size runs."""
    if not 1 <= brokers <= MAX_BROKERS:
        raise InfraError(f"--brokers must be 1..{MAX_BROKERS}, not {brokers}")
    running = [n.node_id for n in _every_node(settings) if running_pid(n.pid_file, n.markers)]
    current = cluster_size(settings)
    if running and current != brokers:
        raise InfraError(
            f"Kafka runs with {current} broker(s); run `haggle infra down` first to start {brokers}"
        )
    settings.kafka_dir.mkdir(parents=True, exist_ok=True)
    (settings.kafka_dir / _SIZE_FILE).write_text(f"{brokers}\n")


def forget_cluster_size(settings: Settings) -> None:
    (settings.kafka_dir / _SIZE_FILE).unlink(missing_ok=True)


def nodes(settings: Settings, count: int | None = None) -> list[Node]:
    count = cluster_size(settings) if count is None else count
    if count == 1:
        return [Node(1, settings.kafka_port, settings.kafka_controller_port, settings.kafka_dir)]
    return [
        Node(
            i,
            settings.kafka_port + (i - 1) * BROKER_PORT_STEP,
            settings.kafka_controller_port + (i - 1) * BROKER_PORT_STEP,
            settings.kafka_dir / "cluster" / f"node-{i}",
        )
        for i in range(1, count + 1)
    ]


def node(settings: Settings, node_id: int) -> Node:
    for found in nodes(settings):
        if found.node_id == node_id:
            return found
    raise InfraError(f"no Kafka node {node_id} in a cluster of {cluster_size(settings)}")


def _every_node(settings: Settings) -> list[Node]:
    """The single-broker node and every cluster node that has a folder: what `stop` looks for."""
    found = nodes(settings, 1)
    cluster = settings.kafka_dir / "cluster"
    if cluster.exists():
        ids = sorted(int(p.name.split("-")[1]) for p in cluster.glob("node-*") if p.name[5:].isdigit())
        found += [n for n in nodes(settings, max(ids, default=1)) if n.node_id in ids] if ids else []
    return found


def bootstrap_address(settings: Settings) -> str:
    if settings.external_kafka:
        return settings.external_kafka
    return ",".join(f"127.0.0.1:{n.port}" for n in nodes(settings))


def server_properties(settings: Settings, node: Node | None = None, count: int = 1) -> str:
    node = node or nodes(settings, 1)[0]
    port, ctrl = node.port, node.controller_port
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in nodes(settings, count))
    replicas, min_isr = min(count, MAX_REPLICAS), (2 if count >= 3 else 1)
    return f"""# Written by haggle/infra/kafka.py on every start; edits are lost.
process.roles=broker,controller
node.id={node.node_id}
controller.quorum.voters={voters}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctrl}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs={node.dir / "data"}
num.partitions=1
default.replication.factor={replicas}
min.insync.replicas={min_isr}
unclean.leader.election.enable=false
auto.create.topics.enable=false
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions=1
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_isr}
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
log.retention.hours=24
# After an unclean stop the old registration must expire before the broker may re-register
# (DUPLICATE_BROKER_REGISTRATION); the 9 s default made such restarts take ~14 s.
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=1000
# A node of a cluster waits for a quorum of the others' JVMs; on a loaded machine they took
# over the 60 s default to start, and the waiting node gave up and exited.
initial.broker.registration.timeout.ms=300000
# After a kill -9 every partition's log is recovered before the broker rejoins (one thread by
# default); two threads, one per core, took a cluster node's ~170 logs from 4.4 s to ~3 s here.
num.recovery.threads.per.data.dir=2
log.retention.bytes=268435456
log.segment.bytes=67108864
"""


def log4j_properties(settings: Settings, node: Node | None = None) -> str:
    node = node or nodes(settings, 1)[0]
    return f"""# Written by haggle/infra/kafka.py: INFO and above to kafka.log (reload4j syntax).
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.RollingFileAppender
log4j.appender.file.File={node.log_path}
log4j.appender.file.Append=true
log4j.appender.file.MaxFileSize=50MB
log4j.appender.file.MaxBackupIndex=2
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.org.apache.kafka.clients=WARN
"""


def _write_configs(settings: Settings, node: Node, count: int) -> None:
    node.dir.mkdir(parents=True, exist_ok=True)
    node.config_path.write_text(server_properties(settings, node, count))
    (node.dir / "log4j.properties").write_text(log4j_properties(settings, node))


def _java_argv(settings: Settings, node: Node, heap: list[str], main: list[str]) -> list[str]:
    log4j = node.dir / "log4j.properties"
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
    for node in nodes(settings):
        pid = running_pid(node.pid_file, node.markers)
        if pid is not None:
            _require_same_ports(node, pid)
            continue
        step = f" + {(node.node_id - 1) * BROKER_PORT_STEP} (node {node.node_id})" if node.node_id > 1 else ""
        require_free_port(node.port, "HAGGLE_KAFKA_PORT" + step)
        require_free_port(node.controller_port, "HAGGLE_KAFKA_CONTROLLER_PORT" + step)
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


def _cluster_id(settings: Settings, node: Node) -> str:
    """One id per layout: `kafka/cluster_id` for a single broker, `kafka/cluster/cluster_id` for all nodes."""
    home = node.dir if node.dir == settings.kafka_dir else node.dir.parent
    path = home / "cluster_id"
    if path.exists():
        return path.read_text().strip()
    meta = node.dir / "data" / "meta.properties"
    found = re.search(r"^cluster\.id=(\S+)", meta.read_text(), re.M) if meta.exists() else None
    cid = found.group(1) if found else new_cluster_id()
    path.write_text(cid + "\n")
    return cid


def ensure_formatted(settings: Settings, progress: Progress, node: Node | None = None) -> None:
    """Format the KRaft storage once (idempotent thanks to --ignore-formatted)."""
    node = node or nodes(settings, 1)[0]
    if (node.dir / "data" / "meta.properties").exists():
        return
    progress(f"formatting storage of node {node.node_id}…")
    main = ["kafka.tools.StorageTool", "format", "-t", _cluster_id(settings, node)]
    main += ["-c", str(node.config_path), "--ignore-formatted"]
    argv = _java_argv(settings, node, ["-Xmx256m"], main)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"formatting Kafka storage failed:\n{done.stdout}{done.stderr}")


# --- start, readiness, stop --------------------------------------------------------------


def launch(settings: Settings, progress: Progress) -> Launch | None:
    """Start every node that is not running yet; returns None when Kafka is external."""
    if settings.external_kafka:
        return None
    ensure_jars(settings, progress)
    count = cluster_size(settings)
    found = [(n, running_pid(n.pid_file, n.markers)) for n in nodes(settings, count)]
    for each, pid in found:  # format every node first: a started node waits for the others' quorum
        if pid is None:
            _write_configs(settings, each, count)
            ensure_formatted(settings, progress, each)
    pids = tuple(pid if pid is not None else start_node(settings, n, progress, count) for n, pid in found)
    reused = all(pid is not None for _, pid in found)
    return Launch(pids=pids, started_at=time.monotonic(), reused=reused)


def start_node(settings: Settings, node: Node, progress: Progress, count: int | None = None) -> int:
    """Start one node (configs written, storage formatted); returns its pid."""
    count = cluster_size(settings) if count is None else count
    _write_configs(settings, node, count)
    ensure_formatted(settings, progress, node)
    progress("starting Kafka…" if count == 1 else f"starting Kafka node {node.node_id} of {count}…")
    big = ["-Xms256m", "-Xmx1g"] if count == 1 else ["-Xms128m", "-Xmx512m", *CLUSTER_JIT]
    heap = [*big, "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
    argv = _java_argv(settings, node, heap, ["kafka.Kafka", str(node.config_path)])
    pid = spawn(argv, node.log_path, cwd=node.dir)
    write_pid(node.pid_file, pid)
    return pid


CLUSTER_JIT = ["-XX:TieredStopAtLevel=1"]
"""A cluster node compiles with C1 only. A node killed -9 and restarted spent ~9.5 s of CPU
until it was back in every in-sync set; with C1 only (no C2 compiler threads warming up),
~5 s (measured 2026-12-07 at load average 10). At load average 40 on the two shared cores a
restart's wall time is many times its CPU time: such restarts took 3 to 4.5 minutes. A single
broker keeps C2 (its raw throughput is the baseline of `bench kafka_ceiling`)."""


def kill_node(settings: Settings, node_id: int) -> int | None:
    """kill -9 one node (a crashed broker: no controlled shutdown); returns the pid it had."""
    target = node(settings, node_id)
    pid = running_pid(target.pid_file, target.markers)
    if pid is not None:
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
    return pid


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


def _require_same_ports(node: Node, pid: int) -> None:
    """A running broker keeps the ports it was started with (server.properties is per launch)."""
    wanted = f"listeners=PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}"
    if wanted not in node.config_path.read_text().splitlines():
        raise InfraError(
            f"Kafka (pid {pid}) already runs with other ports (see {node.config_path}); "
            "run `haggle infra down` first to apply the new HAGGLE_KAFKA_*PORT"
        )


async def probe_async(bootstrap: str, timeout_s: float = 3.0, brokers: int = 1) -> str | None:
    """None if a metadata request lists at least `brokers` brokers, else what went wrong."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    with _aiokafka_muted():
        try:
            await admin.start()
            cluster = await admin.describe_cluster()
        except (KafkaError, OSError, TimeoutError) as exc:
            return describe_error(exc)
        finally:
            await admin.close()
    listed = len(cluster.get("brokers") or [])
    if listed < brokers:
        return f"metadata lists {listed} of {brokers} brokers"
    if brokers > 1 and await cluster_view(bootstrap, [], timeout_s) is None:
        return "the brokers do not list the same brokers yet"  # a lagging one would say fewer
    return None


def probe(bootstrap: str, timeout_s: float = 3.0, brokers: int = 1) -> str | None:
    return run_sync(lambda: probe_async(bootstrap, timeout_s, brokers))


def wait_ready(settings: Settings, launched: Launch | None, progress: Progress) -> str:
    """Block until every broker is in the metadata; returns the bootstrap address."""
    address = bootstrap_address(settings)
    if launched is None:
        problem = probe(address)
        if problem:
            raise InfraError(f"KAFKA_BOOTSTRAP_SERVERS={address} is not reachable: {problem}")
        return address
    deadline = launched.started_at + READY_TIMEOUT_S
    count = cluster_size(settings)
    while (problem := probe(address, 2.0, count)) is not None:
        for each in nodes(settings, count):
            _check_still_starting(each, deadline, problem)
        time.sleep(0.25)
    took = time.monotonic() - launched.started_at
    pids = ", ".join(map(str, launched.pids))
    verb = f"already running (pid {pids})" if launched.reused else f"ready ({took:.1f} s)"
    progress(f"Kafka {verb} at {address}")
    return address


def _check_still_starting(node: Node, deadline: float, problem: str) -> None:
    log = node.log_path
    if running_pid(node.pid_file, node.markers) is None:
        raise InfraError(f"Kafka node {node.node_id} exited during startup; see {log}:\n{log_tail(log)}")
    if time.monotonic() > deadline:
        raise InfraError(
            f"Kafka did not become ready within {READY_TIMEOUT_S:.0f} s ({problem}); "
            f"`haggle infra down` resets it; see {log}:\n{log_tail(log)}"
        )


def stop(settings: Settings, progress: Progress) -> None:
    """SIGTERM (controlled shutdown) to every node at once, SIGKILL after STOP_TIMEOUT_S."""
    running = [(n, pid) for n in _every_node(settings) if (pid := running_pid(n.pid_file, n.markers))]
    for _, pid in running:
        os.kill(pid, signal.SIGTERM)
    for each, pid in running:
        progress(f"stopping Kafka node {each.node_id} (pid {pid})…")
        stop_process(pid, signal.SIGTERM, STOP_TIMEOUT_S)
    for each in _every_node(settings):
        each.pid_file.unlink(missing_ok=True)


def status(settings: Settings) -> ComponentStatus:
    address = bootstrap_address(settings)
    external = settings.external_kafka is not None
    if external:
        problem = probe(address)
        return ComponentStatus("kafka", None, problem is None, address, problem or "reachable", True)
    count = cluster_size(settings)
    pids = [pid for n in nodes(settings, count) if (pid := running_pid(n.pid_file, n.markers))]
    if not pids:
        return ComponentStatus("kafka", None, False, address, "not running")
    problem = probe(address, brokers=count)
    size = "" if count == 1 else f", {len(pids)} of {count} brokers running"
    return ComponentStatus(
        "kafka", pids[0], problem is None, address, problem or f"Kafka {KAFKA_VERSION}{size}"
    )


# --- topics ------------------------------------------------------------------------------


async def ensure_topics_async(
    bootstrap: str,
    topics: dict[str, int],
    timeout_s: float = 30.0,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication: int | None = None,
) -> None:
    """Create the missing topics and wait until every partition has a leader.

    Existing topics keep their partition count. With `configs`, new topics are created with
    their config and an existing topic whose config differs is altered to match. Without
    `replication`, new topics get one replica per broker, up to three.
    """
    configs = configs or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
        replication = replication or await _replicas_for(admin)
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
        await _wait_for_leaders(bootstrap, list(topics), time.monotonic() + timeout_s)
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


async def _wait_for_leaders(bootstrap: str, names: list[str], deadline: float) -> None:
    """Until every broker reports a leader for every partition of `names` (not only the one asked)."""
    while True:
        answers = await _every_broker(bootstrap, names) if names else []
        if answers is not None and all(
            answer is not None and all(leader >= 0 for leader, _isr in answer.partitions.values())
            for answer in answers
        ):
            return
        if time.monotonic() > deadline:
            raise InfraError(f"topics without a leader on every broker: {', '.join(names)}")
        await asyncio.sleep(0.1)


Partition = tuple[str, int]
PartitionStates = dict[Partition, tuple[int, tuple[int, ...]]]
"""(topic, partition) → (leader node id or -1, in-sync replicas)."""


@dataclass(frozen=True)
class ClusterView:
    """What every live broker agrees on: the brokers the metadata lists, and each partition's state."""

    brokers: tuple[int, ...]
    partitions: PartitionStates


async def cluster_view(bootstrap: str, topics: list[str], timeout_s: float = 5.0) -> ClusterView | None:
    """The brokers and the partitions of `topics` as every broker the metadata lists reports
    them, or None while they disagree, one does not answer, or one does not know a topic yet.

    Each broker applies the controller's metadata log at its own pace, so right after a broker
    registers or is fenced, or a topic is created, one broker may not list that broker or know
    that topic, or still list an old in-sync set. The admin client asks one random broker: a
    wait on that answer can pass on a stale broker, or on an empty answer (`all()` of nothing is
    true), which is how the cluster test once read back nothing. A fenced broker is not listed,
    so after a kill the survivors must agree; before its fencing the dead broker is listed and
    does not answer.
    """
    answers = await _every_broker(bootstrap, topics, timeout_s)
    first = answers[0] if answers else None
    if first is None or any(answer != first for answer in answers or ()):
        return None
    return first


async def _every_broker(
    bootstrap: str, topics: list[str], timeout_s: float = 5.0
) -> list[ClusterView | None] | None:
    """Each listed broker's own view (None for one that fails), or None when the listed brokers
    and those a broker lists differ or the cluster does not answer at all. The in-sync sets may
    differ between answers: a leader wait does not need them to agree, `cluster_view` does."""
    client = AIOKafkaClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
    with _aiokafka_muted():
        try:
            await client.bootstrap()
            brokers = tuple(sorted(b.nodeId for b in client.cluster.brokers()))
            answers = [await _broker_answer(client, broker, topics) for broker in brokers]
        except (KafkaError, OSError, TimeoutError):
            return None
        finally:
            await client.close()
    if any(answer is not None and answer.brokers != brokers for answer in answers):
        return None
    return answers


async def _broker_answer(client: AIOKafkaClient, broker: int, topics: list[str]) -> ClusterView | None:
    """One broker's own view; None when it fails or reports an error for a topic."""
    try:
        response = (await client.send(broker, MetadataRequest(topics))).to_object()
    except (KafkaError, OSError, TimeoutError):
        return None
    listed = {t["topic"]: t for t in response["topics"]}
    if set(listed) != set(topics) or any(t["error_code"] or not t["partitions"] for t in listed.values()):
        return None
    partitions = {
        (name, p["partition"]): (p["leader"], tuple(sorted(p["isr"])))
        for name, t in listed.items()
        for p in t["partitions"]
    }
    return ClusterView(tuple(sorted(b["node_id"] for b in response["brokers"])), partitions)


def ensure_topics(
    bootstrap: str,
    topics: dict[str, int],
    configs: Mapping[str, Mapping[str, str]] | None = None,
    replication: int | None = None,
) -> None:
    """Sync wrapper around `ensure_topics_async`."""
    run_sync(lambda: ensure_topics_async(bootstrap, topics, configs=configs, replication=replication))


MAX_REPLICAS = 3


async def _replicas_for(admin: AIOKafkaAdminClient) -> int:
    cluster = await admin.describe_cluster()
    return max(1, min(MAX_REPLICAS, len(cluster.get("brokers") or [])))


def replicas_for(bootstrap: str) -> int:
    """One replica per broker, up to three: what a new topic gets on this cluster."""

    async def ask() -> int:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        try:
            await admin.start()
            return await _replicas_for(admin)
        finally:
            await admin.close()

    return run_sync(ask)


def ensure_all_topics(bootstrap: str, replication: int | None = None) -> int:
    """Every topic of the registry, replicated per the cluster (three copies, two in sync to
    acknowledge a write, on a cluster of three); returns the replication factor used."""
    from haggle.contracts.topics import all_topic_partitions, topic_configs

    replication = replication or replicas_for(bootstrap)
    ensure_topics(bootstrap, all_topic_partitions(), topic_configs(replication), replication)
    return replication
