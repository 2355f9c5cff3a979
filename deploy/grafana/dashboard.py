"""Writes deploy/grafana/dashboards/haggle.json, the Grafana dashboard over haggle's metrics.

Generated rather than hand-edited so that the layout stays consistent and the queries are
plain to review here. `python deploy/grafana/dashboard.py` rewrites the file; `--check`
exits 1 when the file is stale (tests/deploy runs that). Every metric name queried here
must be exported by a running service: tests/deploy/test_metric_names.py checks it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OUTPUT = Path(__file__).parent / "dashboards" / "haggle.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
RANGE = "$__range"

Panel = dict[str, Any]


def _targets(queries: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
        for i, (legend, expr) in enumerate(queries.items())
    ]


def stat(title: str, expr: str, unit: str = "short", decimals: int | None = None) -> Panel:
    defaults: dict[str, Any] = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    return {
        "type": "stat",
        "title": title,
        "datasource": DATASOURCE,
        "targets": _targets({"": expr}),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}},
        "size": (6, 4),
    }


def graph(title: str, queries: dict[str, str], unit: str = "short", description: str = "") -> Panel:
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets(queries),
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "size": (12, 8),
    }


def market() -> list[Panel]:
    deals = f"sum(increase(haggle_deals_total[{RANGE}]))"
    opened = f"sum(increase(haggle_threads_opened_total[{RANGE}]))"
    return [
        stat("Deals agreed", deals),
        stat("GMV released", f"sum(increase(haggle_gmv_cents_total[{RANGE}])) / 100", decimals=2),
        stat("Negotiations completed", f"{deals} / clamp_min({opened}, 1)", unit="percentunit"),
        stat("Listings published", f"sum(increase(haggle_listings_published_total[{RANGE}]))"),
        graph(
            "Offers and moves /s",
            {"{{type}}": f"sum by (type) (rate(haggle_moves_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "Negotiations and deals /min",
            {
                "opened": f"sum(rate(haggle_threads_opened_total[{RATE}])) * 60",
                "deals": f"sum(rate(haggle_deals_total[{RATE}])) * 60",
            },
        ),
        graph(
            "Rounds to agreement",
            {
                f"p{q}": f"histogram_quantile(0.{q}, sum by (le) "
                f"(rate(haggle_rounds_to_agreement_bucket[{RATE}])))"
                for q in (50, 90)
            },
        ),
        graph(
            "Refused moves /s by reason",
            {"{{service}} {{reason}}": f"sum by (service, reason) (rate(haggle_refusals_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "Listing changes /s",
            {"{{event}}": f"sum by (event) (rate(haggle_listing_transitions_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "Listing commands refused /s",
            {"{{reason}}": f"sum by (reason) (rate(haggle_listing_refusals_total[{RATE}]))"},
            unit="ops",
        ),
    ]


def settlement() -> list[Panel]:
    return [
        stat("Held in escrow", "max(haggle_escrow_balance_cents) / 100", decimals=2),
        stat("Escrows funded", f"sum(increase(haggle_escrow_funded_total[{RANGE}]))"),
        stat("Disputes", f"sum(increase(haggle_disputes_total[{RANGE}]))"),
        stat("Approvals", f"sum(increase(haggle_approvals_total[{RANGE}]))"),
        graph(
            "Escrow funded and failed /s",
            {
                "funded": f"sum(rate(haggle_escrow_funded_total[{RATE}]))",
                "failed {{reason}}": f"sum by (reason) (rate(haggle_escrow_failed_total[{RATE}]))",
            },
            unit="ops",
        ),
        graph(
            "Released and refunded /s",
            {
                "released": f"sum(rate(haggle_funds_released_total[{RATE}]))",
                "refunded {{reason}}": f"sum by (reason) (rate(haggle_refunds_total[{RATE}]))",
            },
            unit="ops",
        ),
        graph(
            "GMV released /min",
            {"gmv": f"sum(rate(haggle_gmv_cents_total[{RATE}])) * 60 / 100"},
        ),
        graph(
            "Held in escrow",
            {"escrow": "max(haggle_escrow_balance_cents) / 100"},
            description="Every settlement instance reports the same ledger balance, hence max.",
        ),
        graph(
            "Disputes by reason and outcome",
            {
                "{{reason}} → {{outcome}}": "sum by (reason, outcome) "
                f"(increase(haggle_disputes_total[{RATE}]))"
            },
        ),
        graph(
            "Human approvals by decision",
            {"{{decision}}": f"sum by (decision) (increase(haggle_approvals_total[{RATE}]))"},
        ),
    ]


def health() -> list[Panel]:
    return [
        stat("Services up", 'sum(up{job="haggle"})'),
        stat("Dead letters", f"sum(increase(haggle_dlq_total[{RANGE}]))"),
        stat("Max consumer lag", "max(haggle_consumer_lag)"),
        stat(
            "Handler p99",
            f"histogram_quantile(0.99, sum by (le) (rate(haggle_handler_seconds_bucket[{RATE}])))",
            unit="s",
        ),
        graph(
            "Consumer lag",
            {"{{service}} {{topic}}": "max by (service, topic) (haggle_consumer_lag)"},
            description="Messages each consumer group has not committed yet.",
        ),
        graph(
            "Handler latency p99",
            {
                "{{service}} {{topic}}": "histogram_quantile(0.99, sum by (le, service, topic) "
                f"(rate(haggle_handler_seconds_bucket[{RATE}])))"
            },
            unit="s",
        ),
        graph(
            "Record age p99 when read and when handled",
            {
                "{{service}} {{topic}} {{stage}}": "histogram_quantile(0.99, sum by (le, service, topic,"
                f" stage) (rate(haggle_record_age_seconds_bucket[{RATE}])))"
            },
            unit="s",
            description="From a record's timestamp to its batch coming back from the broker (read)"
            " and to its handler starting (started): where a move waits before it is handled.",
        ),
        graph(
            "Dead letters /s",
            {
                "{{service}} {{topic}} {{reason}}": "sum by (service, topic, reason) "
                f"(rate(haggle_dlq_total[{RATE}]))"
            },
            unit="ops",
        ),
        graph(
            "Messages /s",
            {
                "in {{service}}": f"sum by (service) (rate(haggle_messages_in_total[{RATE}]))",
                "out {{service}}": f"sum by (service) (rate(haggle_messages_out_total[{RATE}]))",
            },
            unit="ops",
        ),
        graph(
            "Outbox rows waiting",
            {"{{service}}": "max by (service) (haggle_outbox_pending)"},
        ),
        graph(
            "Retries and duplicates /s",
            {
                "retry {{service}} {{kind}}": "sum by (service, kind) "
                f"(rate(haggle_handler_retries_total[{RATE}]))",
                "duplicate {{service}}": f"sum by (service) (rate(haggle_duplicates_total[{RATE}]))",
            },
            unit="ops",
        ),
        graph(
            "Relay batch size p90",
            {
                "{{service}}": "histogram_quantile(0.9, sum by (le, service) "
                f"(rate(haggle_relay_batch_size_bucket[{RATE}])))"
            },
        ),
    ]


def agents() -> list[Panel]:
    return [
        stat("Guard refusals", f"sum(increase(haggle_guard_refusals_total[{RANGE}]))"),
        stat("LLM calls", f"sum(increase(haggle_llm_calls_total[{RANGE}]))"),
        stat("LLM tokens", f"sum(increase(haggle_llm_tokens_total[{RANGE}]))"),
        stat("Agent moves", f"sum(increase(haggle_agent_moves_total[{RANGE}]))"),
        graph(
            "Guard refusals /s by reason",
            {"{{reason}}": f"sum by (reason) (rate(haggle_guard_refusals_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "Agent moves /s by brain",
            {"{{brain}} {{type}}": f"sum by (brain, type) (rate(haggle_agent_moves_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "LLM calls /min by model",
            {"{{model}}": f"sum by (model) (rate(haggle_llm_calls_total[{RATE}])) * 60"},
        ),
        graph(
            "LLM tokens /min",
            {"{{model}} {{kind}}": f"sum by (model, kind) (rate(haggle_llm_tokens_total[{RATE}])) * 60"},
        ),
    ]


def people() -> list[Panel]:
    """The web app: pages people load and the live streams they hold open."""
    return [
        stat("Open live streams", "sum(haggle_web_sse_streams)"),
        stat("Pages served", f'sum(increase(haggle_web_requests_total{{method="GET"}}[{RANGE}]))'),
        graph(
            "Web requests /s by status",
            {"{{status}}": f"sum by (status) (rate(haggle_web_requests_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "Web page p99 by route",
            {
                "{{route}}": "histogram_quantile(0.99, sum by (le, route) "
                f"(rate(haggle_web_request_seconds_bucket[{RATE}])))"
            },
            unit="s",
        ),
    ]


def gateway() -> list[Panel]:
    """Agents we do not run, trading through the gateway (MCP and HTTP)."""
    return [
        stat("Gateway moves", f"sum(increase(haggle_gateway_moves_total[{RANGE}]))"),
        stat("Gateway refusals", f"sum(increase(haggle_gateway_refusals_total[{RANGE}]))"),
        graph(
            "Gateway moves /s by command",
            {"{{type}}": f"sum by (type) (rate(haggle_gateway_moves_total[{RATE}]))"},
            unit="ops",
        ),
        graph(
            "Gateway refusals /s by reason",
            {"{{reason}}": f"sum by (reason) (rate(haggle_gateway_refusals_total[{RATE}]))"},
            unit="ops",
        ),
    ]


ROWS = {
    "Market overview": market,
    "Settlement": settlement,
    "Health": health,
    "Agents": agents,
    "People": people,
    "Gateway": gateway,
}


def layout() -> list[Panel]:
    """Rows of panels, each placed left to right and wrapped at Grafana's 24 columns."""
    panels: list[Panel] = []
    y = 0
    for title, build in ROWS.items():
        panels.append(
            {"type": "row", "title": title, "collapsed": False, "panels": [], "gridPos": _grid(0, y, 24, 1)}
        )
        y += 1
        x, row_height = 0, 0
        for panel in build():
            w, h = panel.pop("size")
            if x + w > 24:
                x, y, row_height = 0, y + row_height, 0
            panel["gridPos"] = _grid(x, y, w, h)
            panels.append(panel)
            x, row_height = x + w, max(row_height, h)
        y += row_height
    for number, panel in enumerate(panels, start=1):
        panel["id"] = number
    return panels


def _grid(x: int, y: int, w: int, h: int) -> dict[str, int]:
    return {"x": x, "y": y, "w": w, "h": h}


def dashboard() -> dict[str, Any]:
    return {
        "uid": "haggle-overview",
        "title": "haggle",
        "description": "Market, settlement, service health and agents of a haggle deployment.",
        "tags": ["haggle"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                }
            ]
        },
        "annotations": {"list": []},
        "panels": layout(),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUTPUT.exists() or OUTPUT.read_text() != text:
            print(f"{OUTPUT} is stale: run python {Path(__file__).as_posix()}", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
