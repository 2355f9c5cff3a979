"""Structured logs: JSON lines with the market and correlation ids; third-party floods thinned."""

from __future__ import annotations

import io
import json
import logging

from haggle.runtime.logs import JsonFormatter, RepeatFilter, correlation_id_var, market_id_var


def capture(name: str, *messages: str) -> list[dict[str, object]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    handler.addFilter(RepeatFilter(interval=60))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        for message in messages:
            logger.error(message, extra={"topic": "t"})
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().split("\n") if line]


def test_a_log_line_is_json_with_context() -> None:
    market_id_var.set("m1")
    correlation_id_var.set("deal-9")
    [entry] = capture("haggle.test", "escrow funded")
    assert entry["msg"] == "escrow funded" and entry["service"] == "test" and entry["topic"] == "t"
    assert (entry["market_id"], entry["correlation_id"]) == ("m1", "deal-9")


def test_a_third_party_flood_is_thinned_but_our_own_lines_are_not() -> None:
    assert len(capture("aiokafka.cluster", *["Unable to connect"] * 500)) == 1
    assert len(capture("aiokafka.cluster", "Unable to connect", "another problem")) == 2
    assert len(capture("haggle.runtime.consumer", *["dead-lettered"] * 50)) == 50
