"""Metric names: the ones PromQL expressions query, and the ones a /metrics page exports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import promql_parser

# Grafana substitutes these before a query reaches Prometheus.
GRAFANA_MACROS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}

# The sample names each metric type adds to its family name in the text exposition format.
SUFFIXES = {
    "counter": ("", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("",),
    "untyped": ("",),
}
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]")


def metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects; raises ValueError if it does not parse."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            if node.name is None:
                raise ValueError(f"selector without a metric name in {expr!r}")
            names.add(node.name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def dashboard_exprs(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(panel title, expression) of every query in a Grafana dashboard, rows included."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]


def rule_exprs(rules: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(rule name, expression) of every rule in a Prometheus rule file."""
    for group in rules["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], str(rule["expr"])


def exported_names(exposition: str) -> set[str]:
    """The sample names a /metrics page can carry: from # TYPE lines and from its samples.

    A labelled metric that has not been touched yet shows only HELP and TYPE, so the type
    line is what proves that it is exported.
    """
    names: set[str] = set()
    for line in exposition.splitlines():
        if typed := _TYPE_LINE.match(line):
            family, kind = typed.groups()
            base = family.removesuffix("_total") if kind == "counter" else family
            suffixes = SUFFIXES.get(kind, ("",))
            names.update(f"{base}{suffix}" for suffix in suffixes if suffix)
            names.add(family if kind != "counter" or family.endswith("_total") else f"{family}_total")
        elif sample := _SAMPLE.match(line):
            names.add(sample.group(1))
    return names
