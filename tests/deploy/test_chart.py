"""The Helm chart, rendered offline: every manifest valid against the Kubernetes schemas,
every workload hardened, and the pieces pointing at each other correctly."""

from __future__ import annotations

import copy
import json
import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from haggle import procs
from tests.deploy.conftest import CHART, DEPLOY
from tests.deploy.policies import workload_problems
from tests.deploy.promql import metric_names, rule_exprs

pytestmark = pytest.mark.timeout(900)

# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas.
KUBE_VERSIONS = ("1.29.0", "1.37.0")
SERVICES = procs.SERVICES
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule"}
Doc = dict[str, Any]

MINIMAL = {"database.url": "postgresql://haggle:secret@db.example:5432/haggle"}
FULL = {
    "kafka.bootstrapServers": "market-kafka-bootstrap.kafka:9092",
    "database.existingSecret": "market-db-app",
    "database.existingSecretKey": "uri",
    "anthropic.existingSecret": "anthropic",
    "stripe.existingSecret": "stripe",
    "metrics.serviceMonitor.enabled": "true",
    "metrics.prometheusRule.enabled": "true",
    "grafanaDashboard.enabled": "true",
}
TRIMMED = {
    **MINIMAL,
    "services.agents.enabled": "false",
    "services.negotiation.autoscaling.enabled": "false",
    "podDisruptionBudget.enabled": "false",
    "migrations.enabled": "false",
}
VARIANTS = {"minimal": MINIMAL, "full": FULL, "trimmed": TRIMMED}


def render(helm: str, values: dict[str, str], kube_version: str = KUBE_VERSIONS[-1]) -> list[Doc]:
    argv = [helm, "template", "market", str(CHART), "--namespace", "market", "--kube-version", kube_version]
    for key, value in values.items():
        argv += ["--set", f"{key}={value}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


@pytest.fixture(scope="module")
def rendered(helm: str) -> dict[str, list[Doc]]:
    return {name: render(helm, values) for name, values in VARIANTS.items()}


def test_helm_lint_is_clean(helm: str) -> None:
    done = subprocess.run(
        [helm, "lint", str(CHART), "--strict", "--set", f"database.url={MINIMAL['database.url']}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("variant", sorted(VARIANTS))
@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
def test_every_manifest_is_valid_for_kubernetes(helm: str, variant: str, kube_version: str) -> None:
    docs = render(helm, VARIANTS[variant], kube_version)
    invalid = []
    for doc in docs:
        if doc["kind"] in OPERATOR_KINDS:
            continue  # CRDs, not in the Kubernetes schemas: checked below
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            invalid.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not invalid, "\n".join(invalid)
    assert {d["kind"] for d in docs} >= {"Deployment", "Service", "ConfigMap", "ServiceAccount"}


def test_the_schema_check_rejects_a_broken_manifest(rendered: dict[str, list[Doc]]) -> None:
    deployment = copy.deepcopy(next(iter(by_kind(rendered["minimal"], "Deployment").values())))
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGett"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBE_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_workload_is_hardened_with_probes_and_limits(
    rendered: dict[str, list[Doc]], variant: str
) -> None:
    workloads = [d for d in rendered[variant] if d["kind"] in ("Deployment", "Job")]
    assert workloads
    problems = [p for doc in workloads for p in workload_problems(doc)]
    assert not problems, "\n".join(problems)


def test_the_policy_check_finds_a_weak_deployment(rendered: dict[str, list[Doc]]) -> None:
    deployment = copy.deepcopy(by_kind(rendered["minimal"], "Deployment")["market-haggle-listing"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["resources"]["limits"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    container["readinessProbe"]["httpGet"]["path"] = "/healthz"
    problems = workload_problems(deployment)
    assert any("no limits" in p for p in problems)
    assert any("root filesystem is writable" in p for p in problems)
    assert any("readinessProbe is not an HTTP GET on /readyz" in p for p in problems)


def test_one_deployment_service_and_budget_per_service(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["minimal"]
    names = {f"market-haggle-{s}" for s in SERVICES}
    assert set(by_kind(docs, "Deployment")) == names
    assert set(by_kind(docs, "Service")) == names
    assert set(by_kind(docs, "PodDisruptionBudget")) == names
    for name, deployment in by_kind(docs, "Deployment").items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= pod_labels.items()
        for kind in ("Service", "PodDisruptionBudget"):
            other = by_kind(docs, kind)[name]
            chosen = other["spec"]["selector"].get("matchLabels", other["spec"]["selector"])
            assert chosen == selector, f"{kind}/{name} selects {chosen}, pods carry {selector}"
        service = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        assert deployment["spec"]["template"]["spec"]["containers"][0]["args"] == ["run", service]


def test_autoscalers_only_for_agents_and_negotiation(rendered: dict[str, list[Doc]]) -> None:
    docs = rendered["minimal"]
    deployments = by_kind(docs, "Deployment")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"market-haggle-agents", "market-haggle-negotiation"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert "replicas" not in deployments[name]["spec"], "the HPA, not the Deployment, owns replicas"
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"] <= 12
    assert deployments["market-haggle-listing"]["spec"]["replicas"] >= 2
    trimmed = rendered["trimmed"]
    assert "market-haggle-agents" not in by_kind(trimmed, "Deployment")
    assert not by_kind(trimmed, "HorizontalPodAutoscaler")
    assert not by_kind(trimmed, "PodDisruptionBudget")
    assert not by_kind(trimmed, "Job")


def test_config_and_secrets_are_wired(rendered: dict[str, list[Doc]]) -> None:
    full = rendered["full"]
    config = by_kind(full, "ConfigMap")["market-haggle-config"]["data"]
    assert config["KAFKA_BOOTSTRAP_SERVERS"] == "market-kafka-bootstrap.kafka:9092"
    assert config["HAGGLE_HTTP_HOST"] == "0.0.0.0"
    assert not by_kind(full, "Secret"), "existing secrets are referenced, not created"
    for name, deployment in by_kind(full, "Deployment").items():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"configMapRef": {"name": "market-haggle-config"}}]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert env["DATABASE_URL"] == {"name": "market-db-app", "key": "uri"}
        if name.endswith("agents"):
            assert env["ANTHROPIC_API_KEY"] == {"name": "anthropic", "key": "ANTHROPIC_API_KEY"}
        else:
            assert "ANTHROPIC_API_KEY" not in env
        if name.endswith("settlement"):
            assert env["HAGGLE_STRIPE_API_KEY"] == {"name": "stripe", "key": "HAGGLE_STRIPE_API_KEY"}
            assert env["HAGGLE_STRIPE_WEBHOOK_SECRET"]["name"] == "stripe"
        else:
            assert "HAGGLE_STRIPE_API_KEY" not in env, "only settlement holds the Stripe keys"
        if name.endswith("web"):
            for key in ("HAGGLE_OPERATOR_KEY", "HAGGLE_WEB_DATA_KEY", "HAGGLE_SHIPPING_KEY"):
                assert env[key] == {"name": "market-haggle-web", "key": key}
        else:
            assert "HAGGLE_OPERATOR_KEY" not in env, "only the web app holds the operator's private key"
            assert "HAGGLE_WEB_DATA_KEY" not in env, "only the web app opens addresses at rest"
        if name.endswith("settlement"):
            shipping = {"name": "market-haggle-web", "key": "HAGGLE_SHIPPING_KEY", "optional": True}
            assert env["HAGGLE_SHIPPING_KEY"] == shipping, "settlement prints labels when it has the key"
        elif not name.endswith("web"):
            assert "HAGGLE_SHIPPING_KEY" not in env, "only the web app and settlement hold the shipping key"
    minimal = rendered["minimal"]
    secret = by_kind(minimal, "Secret")["market-haggle-database"]
    assert secret["stringData"]["DATABASE_URL"] == MINIMAL["database.url"]
    assert "pre-install" in secret["metadata"]["annotations"]["helm.sh/hook"], "must exist before the Job"


def test_rendering_without_a_database_fails_with_a_clear_message(helm: str) -> None:
    done = subprocess.run(
        [helm, "template", "market", str(CHART)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode != 0
    assert "set database.existingSecret" in done.stderr


def test_migration_job_runs_topics_then_migrations_before_install_and_upgrade(
    rendered: dict[str, list[Doc]],
) -> None:
    job = by_kind(rendered["minimal"], "Job")["market-haggle-migrate"]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["args"] for c in pod["initContainers"]] == [["topics", "ensure"]]
    assert pod["containers"][0]["args"] == ["migrate", *SERVICES]
    env = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["HAGGLE_TOPIC_REPLICATION_FACTOR"] == "3"
    assert "serviceAccountName" not in pod, "a pre-install hook cannot use the release's account"


def test_pods_carry_scrape_annotations(rendered: dict[str, list[Doc]]) -> None:
    for deployment in by_kind(rendered["minimal"], "Deployment").values():
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        port = deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"


def test_operator_resources_match_the_services_and_the_shared_files(rendered: dict[str, list[Doc]]) -> None:
    full = rendered["full"]
    monitor = by_kind(full, "ServiceMonitor")["market-haggle"]["spec"]
    for service in by_kind(full, "Service").values():
        assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["endpoints"][0]["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert service["metadata"]["labels"][monitor["jobLabel"]] == "haggle", 'rules expect job="haggle"'
    rule = by_kind(full, "PrometheusRule")["market-haggle"]
    shipped = yaml.safe_load((DEPLOY / "prometheus" / "rules.yaml").read_text())
    assert rule["spec"] == shipped
    for name, expr in rule_exprs(rule["spec"]):
        assert metric_names(expr), name
    dashboard = by_kind(full, "ConfigMap")["market-haggle-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped_dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "haggle.json").read_text())
    assert json.loads(dashboard["data"]["haggle.json"]) == shipped_dashboard
    assert not by_kind(rendered["minimal"], "ServiceMonitor"), "off by default: needs the operator's CRDs"
