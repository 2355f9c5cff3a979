"""deploy/compose.yaml against the Compose Specification's JSON schema, and what it must hold.

The schema is the compose-spec.json that check-jsonschema vendors (SchemaStore's copy of
github.com/compose-spec/compose-spec/schema/compose-spec.json), so no network is needed.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import jsonschema
import pytest
import yaml

from haggle import procs
from tests.deploy.conftest import DEPLOY

COMPOSE = DEPLOY / "compose.yaml"
HAGGLE_SERVICES = procs.SERVICES
ONE_SHOTS = ("topics", "migrate")
REQUIRED = (*HAGGLE_SERVICES, *ONE_SHOTS, "kafka", "postgres", "prometheus", "grafana")
Doc = dict[str, Any]


def compose_schema() -> Doc:
    vendored = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(vendored.read_text())


def schema_errors(doc: Doc) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def missing_services(doc: Doc) -> list[str]:
    return [name for name in REQUIRED if name not in doc.get("services", {})]


@pytest.fixture(scope="module")
def compose() -> Doc:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_follows_the_compose_specification(compose: Doc) -> None:
    assert schema_errors(compose) == []


def test_the_schema_check_rejects_an_invalid_file(compose: Doc) -> None:
    broken = {**compose, "services": {**compose["services"], "kafka": {"image": 3, "restart": ["always"]}}}
    broken["services"]["listing"] = {**broken["services"]["listing"], "helthcheck": {}}
    errors = schema_errors(broken)
    assert any(e.startswith("services/kafka/image") for e in errors), errors
    assert any("helthcheck" in e for e in errors), errors


def test_compose_names_every_service(compose: Doc) -> None:
    assert missing_services(compose) == []
    assert missing_services({"services": {"kafka": {}}}) == [n for n in REQUIRED if n != "kafka"]


def test_haggle_containers_share_one_image_and_run_hardened(compose: Doc) -> None:
    services = compose["services"]
    images = {services[n]["image"] for n in (*HAGGLE_SERVICES, *ONE_SHOTS)}
    assert len(images) == 1
    assert (
        DEPLOY / services["listing"]["build"]["context"] / services["listing"]["build"]["dockerfile"]
    ).is_file()
    for name in (*HAGGLE_SERVICES, *ONE_SHOTS):
        service = services[name]
        assert service["user"] == "10001:10001", name
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "/tmp" in service["tmpfs"], name
        assert service["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092", name
        assert service["environment"]["DATABASE_URL"].startswith("postgresql://"), name
    for name in HAGGLE_SERVICES:
        assert services[name]["command"] == ["run", name]
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["topics"]["command"] == ["topics", "ensure"]
    assert services["migrate"]["command"][0] == "migrate"
    assert "ANTHROPIC_API_KEY" in services["agents"]["environment"]
    holders = {
        name for name, service in services.items() if "HAGGLE_SHIPPING_KEY" in service.get("environment", {})
    }
    assert holders == {"web", "settlement"}, "only the web app and settlement hold the shipping key"


def test_mounted_files_exist_and_prometheus_scrapes_every_service(compose: Doc) -> None:
    mounts: dict[str, str] = {}
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{source} is mounted but missing"
                mounts[target] = source
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    assert all(path in mounts for path in config["rule_files"])
    haggle_job = next(job for job in config["scrape_configs"] if job["job_name"] == "haggle")
    targets = {t for static in haggle_job["static_configs"] for t in static["targets"]}
    assert targets == {f"{name}:8080" for name in HAGGLE_SERVICES}


def test_grafana_is_provisioned_with_the_dashboard(compose: Doc) -> None:
    mounts = dict(v.split(":")[1::-1] for v in compose["services"]["grafana"]["volumes"])
    provisioning = DEPLOY / mounts["/etc/grafana/provisioning"]
    providers = yaml.safe_load((provisioning / "dashboards" / "haggle.yaml").read_text())["providers"]
    folder = providers[0]["options"]["path"]
    assert (DEPLOY / mounts[folder] / "haggle.json").is_file()
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())[
        "datasources"
    ]
    assert datasources[0]["type"] == "prometheus"
    assert datasources[0]["url"] == "http://prometheus:9090"
