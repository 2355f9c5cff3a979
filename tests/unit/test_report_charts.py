"""The market report as a self-contained HTML page of SVG charts, drawn from the report's JSON."""

from __future__ import annotations

import json
import re
from typing import Any

from haggle.market import charts
from haggle.market.report import build_report
from tests.unit.test_report import _facts


def report_json() -> dict[str, Any]:
    return dict(json.loads(build_report(_facts()).to_json()))


def test_a_report_becomes_one_offline_page_of_svg_charts_and_every_number() -> None:
    report = {**report_json(), "something_new": {"count": 3, "label": "x"}, "more": [1, 2]}
    page = charts.render_html([report, {"market_id": "m-empty"}])
    assert page.count("<section>") == 2 and "m-empty" in page
    assert page.count("<svg") >= 4
    assert "<script" not in page and not re.search(r"(src|href)=\"https?://", page)
    assert report["market_id"] in page and "something_new: count" in page
    assert "surplus: optimum_cents" in page and "$" in page


def test_the_waterfall_draws_each_cause_of_lost_surplus_when_the_report_has_them() -> None:
    surplus = {k: v for k, v in report_json()["surplus"].items() if k != "lost_cents"}
    plain = charts.waterfall(surplus)
    assert plain is not None and "no deal" not in plain and "buyers" in plain
    drawn = charts.waterfall({**surplus, "lost_cents": {"no_deal": 1_500, "approval_denied": 700}})
    assert drawn is not None and "no deal" in drawn and "approval denied" in drawn
    assert charts.waterfall({}) is None


def test_optional_series_are_drawn_only_when_present() -> None:
    deals = [
        {"price_cents": 20_000, "reference_cents": 25_000, "agreed_at": "2026-12-01T09:00:00+00:00"},
        {"price_cents": 9_000, "agreed_at": "2026-12-01T09:05:00+00:00"},
    ]
    offers = [
        {"series": "buyer", "round": 1, "price_cents": 10_000},
        {"series": "seller", "round": 2, "price_cents": 15_000},
        {"series": "seller", "round": "x", "price_cents": 15_000},
    ]
    assert charts.price_against_reference(deals) is not None
    assert charts.over_time(deals) is not None
    curves = charts.concessions(offers)
    assert curves is not None and "buyer" in curves and "seller" in curves
    assert charts.price_against_reference([{"price_cents": 1}]) is None
    assert charts.concessions([]) is None and charts.bars("t", {"a": 0}) is None
