"""The alert rules through Debian's promtool: they load, and their unit tests
(deploy/prometheus/rules_test.yaml) pass: a consumer lag fires, dead letters fire, a service
down fires, a healthy market fires nothing."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml

from tests.deploy.conftest import DEPLOY
from tests.deploy.promql import rule_exprs

PROMETHEUS = DEPLOY / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: apt-get install prometheus (.ci/run installs it)")
    return found


def run(promtool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules(promtool: str) -> None:
    done = run(promtool, "check", "rules", "rules.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_unit_tests_of_the_alerts_pass(promtool: str) -> None:
    done = run(promtool, "test", "rules", "rules_test.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_healthy_market_case_covers_every_alert() -> None:
    alerts = {name for name, _ in rule_exprs(yaml.safe_load((PROMETHEUS / "rules.yaml").read_text()))}
    cases = yaml.safe_load((PROMETHEUS / "rules_test.yaml").read_text())["tests"]
    [healthy] = [case for case in cases if case["name"] == "a healthy market fires nothing"]
    quiet = {check["alertname"] for check in healthy["alert_rule_test"] if check["exp_alerts"] == []}
    assert quiet == alerts, f"alerts the healthy case does not check: {sorted(alerts - quiet)}"
    fired = {c["alertname"] for case in cases for c in case["alert_rule_test"] if c["exp_alerts"]}
    assert {"HaggleConsumerLagHigh", "HaggleDeadLettersGrowing"} <= fired
