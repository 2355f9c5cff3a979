"""Fixtures for the container tests: the images, Kafka and PostgreSQL as containers
(testcontainers), every service started from the image as the Helm chart runs it, a market
through them, and Debian's Prometheus scraping them.

These tests carry the `containers` marker (`make test-containers` runs them alone). All but the
images are module-scoped, so nothing they start outlives the module that uses it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from haggle import procs
from haggle.contracts.topics import all_topic_partitions, topic_configs
from haggle.infra import InfraEndpoints, ensure_topics
from haggle.market.report import MarketReport
from haggle.runtime import operators
from haggle_lab.testing.fake_anthropic import FakeAnthropic
from tests.containers import engine
from tests.containers.chart_pods import Run, chart_runs
from tests.deploy.conftest import helm  # noqa: F401  (the pinned helm, a fixture)

READY_TARGET_SECONDS = 30


@pytest.fixture(scope="session")
def image_refs() -> dict[str, str]:
    """Every image, built by deploy/images.sh (cached layers, base imported once)."""
    return engine.images("all")


@pytest.fixture(scope="module")
def container_endpoints(
    image_refs: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InfraEndpoints]:
    """Kafka and PostgreSQL as containers from our images, started through testcontainers."""
    with engine.container_infra(tmp_path_factory.mktemp("podman")) as found:
        ensure_topics(found.kafka_bootstrap, all_topic_partitions(), topic_configs())
        yield found


@pytest.fixture(scope="module")
def fake_model() -> Iterator[FakeAnthropic]:
    """The Messages API the agents container's Claude brains talk to (no model API from here)."""
    server = FakeAnthropic().start()
    yield server
    server.stop()


@dataclass
class ImageServices:
    urls: dict[str, str]
    runs: dict[str, Run]
    ready_seconds: float
    containers: dict[str, Any]

    def logs(self, name: str) -> str:
        out, err = self.containers[name].get_logs()
        return (out + err).decode(errors="replace")


def run_to_completion(image: str, run: Run, timeout: float = 120) -> None:
    job = engine.container(image, command=run.args, env=run.env, **run.kwargs()).start()
    try:
        code = job.get_wrapped_container().wait(timeout=timeout)["StatusCode"]
        out, err = job.get_logs()
        assert code == 0, f"{run.name} exited {code}:\n{(out + err).decode(errors='replace')[-3000:]}"
    finally:
        job.stop()


@pytest.fixture(scope="module")
def image_services(
    image_refs: dict[str, str],
    container_endpoints: InfraEndpoints,
    helm: str,  # noqa: F811
    fake_model: FakeAnthropic,
) -> Iterator[ImageServices]:
    """The chart's migration Job, then every service of procs.SERVICES from the image, ready."""
    repository, tag = image_refs["HAGGLE"].rsplit(":", 1)
    values = {
        "image.repository": repository,
        "image.tag": tag,
        "kafka.bootstrapServers": container_endpoints.kafka_bootstrap,
        "kafka.topicReplicationFactor": "1",
        "database.url": container_endpoints.database_url,
        "anthropic.apiKey": "sk-ant-container-test",
        "operator.publicKeys": "{" + operators.private_key().public + "}",
    }
    # The web app's Secret is one an operator creates (the chart only names it): its signing key
    # is the operator's, its data key fresh.
    web_keys = {
        "HAGGLE_OPERATOR_KEY": base64.urlsafe_b64encode(operators.private_key().private_bytes()).decode(),
        "HAGGLE_WEB_DATA_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "HAGGLE_SHIPPING_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
    }
    steps, runs = chart_runs(helm, values, web_keys)
    assert set(runs) == set(procs.SERVICES), "the chart and procs.SERVICES disagree on the services"
    for step in steps:
        run_to_completion(image_refs["HAGGLE"], step)
    ports = {name: engine.free_port() for name in procs.SERVICES}
    started: dict[str, Any] = {}
    begin = time.monotonic()
    try:
        for name in procs.SERVICES:
            env = {**runs[name].env, "HAGGLE_HTTP_PORT": str(ports[name])}
            if name == "agents":
                env["ANTHROPIC_BASE_URL"] = fake_model.base_url  # the one addition: no model API here
            box = engine.container(
                image_refs["HAGGLE"], command=runs[name].args, env=env, **runs[name].kwargs()
            )
            started[name] = box.start()
        urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
        for name, url in urls.items():
            engine.wait_until(
                f"{name} from the image", lambda url=url: engine.not_ready(url), 90, started[name]
            )
        yield ImageServices(urls, runs, time.monotonic() - begin, started)
    finally:
        for box in started.values():
            box.stop()


@pytest.fixture(scope="module")
def service_ports(image_services: ImageServices) -> Iterator[dict[str, str]]:
    """Point haggle's clients (procs.url_for) at the containers' ports."""
    with pytest.MonkeyPatch.context() as patch:
        for name, url in image_services.urls.items():
            patch.setenv(f"HAGGLE_{name.upper()}_PORT", url.rsplit(":", 1)[1])
        yield image_services.urls


def run_small_market(endpoints: InfraEndpoints, variants: list[str], seed: int = 3) -> MarketReport:
    """A few principals trading through whatever services procs.url_for names."""
    from haggle.market.population import build_population
    from haggle.market.runner import RunConfig, check_policy, run_all

    budget = 10_000
    population = build_population(seed, 8, 12, budget, 0.25, variants, False)
    config = RunConfig(
        approval_policy=check_policy(f"grant-up-to:{budget // 4}"),
        deadline_seconds=150,
        negotiation_ttl_seconds=20,
        max_rounds=8,
    )
    [report] = asyncio.run(run_all(population, config, endpoints.kafka_bootstrap))
    return report


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen[bytes]

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert body["status"] == "success", f"{expr}: {body}"
        return list(body["data"]["result"])


@pytest.fixture(scope="module")
def prometheus(
    image_services: ImageServices, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    """Debian's prometheus on the host, scraping every service from the image once a second,
    with deploy/prometheus/rules.yaml loaded."""
    import yaml

    folder = tmp_path_factory.mktemp("prometheus")
    config = yaml.safe_load((engine.DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(engine.DEPLOY / "prometheus" / "rules.yaml")]
    [haggle_job] = [job for job in config["scrape_configs"] if job["job_name"] == "haggle"]
    haggle_job["static_configs"] = [
        {"targets": [url.removeprefix("http://") for url in image_services.urls.values()]}
    ]
    config["scrape_configs"] = [haggle_job]
    (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = engine.free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={folder / 'prometheus.yml'}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Prometheus(f"http://127.0.0.1:{port}", process)

    def scraping() -> str | None:
        if process.poll() is not None:
            return f"exited {process.returncode}: {(folder / 'prometheus.log').read_text()[-2000:]}"
        try:
            up = server.query('up{job="haggle"} == 1')
        except (httpx.HTTPError, ValueError) as exc:
            return type(exc).__name__
        return None if len(up) == len(image_services.urls) else f"{len(up)} targets up"

    try:
        engine.wait_until("prometheus", scraping, 60)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
