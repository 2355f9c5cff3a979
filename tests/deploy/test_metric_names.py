"""Every metric the Grafana dashboard and the Prometheus rules query is exported by a
running service.

The names come from parsing each PromQL expression; the exported ones from the `# TYPE`
lines and samples of every running service's /metrics. A name that a service not written
yet is meant to export (PLANNED) makes the test xfail only while `services.<name>.app`
cannot be imported; once the service exists, a missing name fails the test.
"""

from __future__ import annotations

import importlib.util
import json

import httpx
import pytest
import yaml

from haggle import procs
from tests.deploy.conftest import DEPLOY
from tests.deploy.promql import dashboard_exprs, exported_names, metric_names, rule_exprs

pytestmark = pytest.mark.timeout(180)

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "haggle.json"
RULES = DEPLOY / "prometheus" / "rules.yaml"

# Series Prometheus adds itself for every target; no service exports them.
SCRAPE_SERIES = {"up"}

# The names each service not yet in the tree was asked to export, as queried (with suffixes).
PLANNED = {
    "negotiation": {
        "haggle_threads_opened_total",
        "haggle_moves_total",
        "haggle_refusals_total",
        "haggle_rounds_to_agreement_bucket",
        "haggle_deals_total",
    },
    "settlement": {
        "haggle_escrow_funded_total",
        "haggle_escrow_failed_total",
        "haggle_funds_released_total",
        "haggle_refunds_total",
        "haggle_disputes_total",
        "haggle_approvals_total",
        "haggle_gmv_cents_total",
        "haggle_escrow_balance_cents",
    },
    "agents": {
        "haggle_guard_refusals_total",
        "haggle_llm_calls_total",
        "haggle_llm_tokens_total",
        "haggle_agent_moves_total",
    },
}


def queried() -> dict[str, set[str]]:
    """Metric name → where it is queried (panel or alert)."""
    sources = [
        *(("dashboard", title, expr) for title, expr in dashboard_exprs(json.loads(DASHBOARD.read_text()))),
        *(("rules", name, expr) for name, expr in rule_exprs(yaml.safe_load(RULES.read_text()))),
    ]
    found: dict[str, set[str]] = {}
    for origin, title, expr in sources:
        for name in metric_names(expr):
            found.setdefault(name, set()).add(f"{origin}: {title}")
    return found


def service_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(f"services.{name}.app") is not None
    except ModuleNotFoundError:
        return False


def test_every_query_parses_and_names_haggle_metrics() -> None:
    names = queried()
    assert len(names) >= 25, sorted(names)
    assert all(n.startswith("haggle_") or n in SCRAPE_SERIES for n in names), sorted(names)
    planned = set().union(*PLANNED.values())
    assert planned <= set(names), f"planned names missing from the dashboard: {planned - set(names)}"


def test_exported_names_follow_the_exposition_format() -> None:
    page = "\n".join(
        [
            "# TYPE haggle_x_total counter",
            "# TYPE haggle_h histogram",
            'haggle_h_bucket{le="1.0"} 0.0',
            "# TYPE haggle_g gauge",
        ]
    )
    names = exported_names(page)
    assert {"haggle_x_total", "haggle_h_bucket", "haggle_h_count", "haggle_h_sum", "haggle_g"} <= names
    assert "haggle_x" not in names and "haggle_g_total" not in names


def test_every_queried_metric_is_exported_by_a_running_service(running_services: tuple[str, ...]) -> None:
    exported: set[str] = set()
    for name in running_services:
        response = httpx.get(f"{procs.url_for(name)}/metrics", timeout=10)
        assert response.status_code == 200, name
        exported |= exported_names(response.text)
    wanted = queried()
    missing = sorted(set(wanted) - exported - SCRAPE_SERIES)
    owner = {metric: service for service, names in PLANNED.items() for metric in names}
    pending = {m for m in missing if m in owner and not service_exists(owner[m])}
    strict = [m for m in missing if m not in pending]

    def explain(metric: str) -> str:
        hint = ""
        if metric in owner:
            service = owner[metric]
            running = service in running_services
            hint = f" [{service}: {'running' if running else 'exists but is not in procs.SERVICES'}]"
        return f"{metric}{hint} <- {', '.join(sorted(wanted[metric]))}"

    assert not strict, "queried but exported by no running service:\n" + "\n".join(map(explain, strict))
    if pending:
        services = sorted({owner[m] for m in pending})
        pytest.xfail(f"services not written yet ({', '.join(services)}): {', '.join(sorted(pending))}")
