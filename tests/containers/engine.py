"""A container engine for the tests: podman's Docker API, the locally built images, and Kafka
and PostgreSQL as containers through testcontainers.

Everything runs on the host network (ports picked free), so the services, the market runner
and Prometheus on the host reach each other at 127.0.0.1 as with the embedded infrastructure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from haggle.infra import InfraEndpoints, InfraError, kafka
from haggle.infra.state import REPO_ROOT, Settings
from haggle_lab.testing.ports import free_port

DEPLOY = REPO_ROOT / "deploy"
CONTAINERS_CONF = DEPLOY / "podman" / "containers.conf"
# The same settings for every podman started from here (the CLI and the API service).
os.environ.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
# Ryuk, testcontainers' reaper, is an image from Docker Hub; our fixtures stop what they start.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

# On every container started here: after a killed run, `podman rm -f $(podman ps -aq --filter
# label=org.haggle.test)` removes what is left.
LABEL = "org.haggle.test"
USE_CONTAINERS = "HAGGLE_TEST_INFRA"  # =containers: the tests' Kafka and PostgreSQL as containers


def images(*targets: str) -> dict[str, str]:
    """Build (cached) and name the images: BASE, HAGGLE, KAFKA, POSTGRES, PROMETHEUS → reference."""
    if shutil.which("podman") is None:
        raise InfraError("podman is not installed: apt-get install podman runc debootstrap (see .ci/run)")
    done = subprocess.run(
        ["bash", str(DEPLOY / "images.sh"), *(targets or ("all",))],
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    if done.returncode != 0:
        raise InfraError(f"deploy/images.sh failed:\n{done.stderr[-4000:]}")
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def podman(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise InfraError(f"podman {' '.join(args[:3])} failed: {done.stderr[-2000:]}")
    return done.stdout


@contextmanager
def docker_api(state: Path) -> Iterator[str]:
    """`podman system service` on a socket of our own: the Docker API testcontainers talks to."""
    state.mkdir(parents=True, exist_ok=True)
    sock = state / f"podman-{uuid.uuid4().hex[:8]}.sock"
    log = (state / "podman-service.log").open("ab")
    process = subprocess.Popen(
        ["podman", "system", "service", "--time=0", f"unix://{sock}"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise InfraError(f"podman system service did not start; see {state / 'podman-service.log'}")
            time.sleep(0.1)
        previous = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = f"unix://{sock}"
        try:
            yield os.environ["DOCKER_HOST"]
        finally:
            if previous is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = previous
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        sock.unlink(missing_ok=True)


def container(image: str, **run: Any) -> Any:
    """A testcontainers DockerContainer on the host network, labelled as ours."""
    from testcontainers.core.container import DockerContainer

    labels = {LABEL: "1", **run.pop("labels", {})}
    return DockerContainer(image, **run).with_kwargs(network_mode="host", labels=labels)


def not_ready(url: str) -> str | None:
    """None once a service's /readyz answers 200, else what it says."""
    try:
        response = httpx.get(f"{url}/readyz", timeout=2)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else response.text[:200]


def wait_until(what: str, check: Any, timeout: float, logs: Any = None) -> None:
    deadline = time.monotonic() + timeout
    problem = "not checked yet"
    while time.monotonic() < deadline:
        problem = check()
        if problem is None:
            return
        time.sleep(0.3)
    tail = ""
    if logs is not None:
        out, err = logs.get_logs()
        tail = (out + err).decode(errors="replace")[-3000:]
    raise InfraError(f"{what} not ready after {timeout:.0f} s: {problem}\n{tail}")


@dataclass(frozen=True)
class ContainerInfra(InfraEndpoints):
    """Where clients connect, and the containers themselves (to restart PostgreSQL, read logs)."""

    kafka_container: Any = None
    postgres_container: Any = None

    def stop_postgres(self) -> None:
        """PostgreSQL gone at once (kill, no shutdown), its data kept for `start_postgres`."""
        self.postgres_container.get_wrapped_container().stop(timeout=0)

    def start_postgres(self, timeout: float = 60) -> None:
        self.postgres_container.get_wrapped_container().start()
        wait_until("PostgreSQL after its outage", self._pg_answers, timeout, self.postgres_container)

    def _pg_answers(self) -> str | None:
        port = self.database_url.rsplit(":", 1)[1].split("/")[0]
        done = self.postgres_container.exec(
            ["pg_isready", "-h", "127.0.0.1", "-p", port, "-U", "haggle", "-d", "haggle"]
        )
        return None if done.exit_code == 0 else done.output.decode(errors="replace").strip()


def start_kafka(stack: ExitStack, image: str) -> tuple[str, Any]:
    port, controller = free_port(), free_port()
    broker = container(
        image,
        env={
            "CLUSTER_ID": kafka.new_cluster_id(),
            "KAFKA_NODE_ID": "1",
            "KAFKA_PROCESS_ROLES": "broker,controller",
            "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller}",
            "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}",
            "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{port}",
            "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
            "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
            "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS": "1",
            "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
        },
    )
    stack.enter_context(broker)
    bootstrap = f"127.0.0.1:{port}"
    wait_until("Kafka container", lambda: kafka.probe(bootstrap), 90, broker)
    return bootstrap, broker


def start_postgres(stack: ExitStack, image: str) -> ContainerInfra:
    port = free_port()
    server = container(
        image,
        env={"POSTGRES_USER": "haggle", "POSTGRES_PASSWORD": "haggle", "POSTGRES_DB": "haggle"},
        command=["-c", f"port={port}", "-c", "fsync=off", "-c", "max_connections=300"],
    )
    stack.enter_context(server)
    url = f"postgresql://haggle:haggle@127.0.0.1:{port}/haggle"
    found = ContainerInfra("", url, postgres_container=server)
    wait_until("PostgreSQL container", found._pg_answers, 60, server)
    return found


@contextmanager
def container_infra(state: Path | None = None) -> Iterator[ContainerInfra]:
    """Kafka and PostgreSQL from the locally built images, through testcontainers; then removed."""
    refs = images("kafka", "postgres")
    with ExitStack() as stack:
        stack.enter_context(docker_api(state or Settings.from_env().state_dir / "containers"))
        bootstrap, broker = start_kafka(stack, refs["KAFKA"])
        postgres = start_postgres(stack, refs["POSTGRES"])
        yield ContainerInfra(bootstrap, postgres.database_url, broker, postgres.postgres_container)
