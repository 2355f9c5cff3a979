"""The Grafana dashboard and the alert rules as files: generated, laid out, well formed."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.deploy.promql import metric_names, rule_exprs

DASHBOARD = DEPLOY / "grafana" / "dashboards" / "haggle.json"
RULES = DEPLOY / "prometheus" / "rules.yaml"


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_file_is_what_the_generator_writes() -> None:
    done = subprocess.run(
        [sys.executable, str(DEPLOY / "grafana" / "dashboard.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_panels_have_unique_ids_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        area = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area


def test_every_panel_reads_the_selectable_prometheus(dashboard: dict[str, Any]) -> None:
    [variable] = dashboard["templating"]["list"]
    assert variable["type"] == "datasource" and variable["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": f"${{{variable['name']}}}"}, panel[
            "title"
        ]
        assert panel["targets"], panel["title"]


def test_dashboard_has_the_six_sections(dashboard: dict[str, Any]) -> None:
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Market overview", "Settlement", "Health", "Agents", "People", "Gateway"]


def test_alert_rules_are_well_formed() -> None:
    rules = yaml.safe_load(RULES.read_text())
    alerts = {name: expr for name, expr in rule_exprs(rules)}
    assert set(alerts) >= {
        "HaggleServiceDown",
        "HaggleDeadLettersGrowing",
        "HaggleConsumerLagHigh",
        "HaggleHandlerLatencyHigh",
    }
    for group in rules["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]
            assert rule["for"].endswith("m"), rule["alert"]
    assert metric_names(alerts["HaggleDeadLettersGrowing"]) == {"haggle_dlq_total"}
    assert metric_names(alerts["HaggleConsumerLagHigh"]) == {"haggle_consumer_lag"}
    assert metric_names(alerts["HaggleHandlerLatencyHigh"]) == {"haggle_handler_seconds_bucket"}


def test_an_unparsable_query_is_reported() -> None:
    with pytest.raises(ValueError):
        metric_names("sum(rate(haggle_dlq_total[5m])")
