"""The market lifecycle's transition table, and the buyer's rules that follow from it. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from haggle.contracts.market import MarketEventRefusal, MarketPhase, MarketRulesSet, next_phase, phase_at
from haggle.contracts.settlement import EscrowFailure
from services.agents import purchases, shopping

OPEN, CLOSING, CLOSED = MarketPhase.OPEN, MarketPhase.CLOSING, MarketPhase.CLOSED


@pytest.mark.parametrize(
    ("phase", "event", "after"),
    [
        (OPEN, "MarketRulesSet", OPEN),
        (OPEN, "MarketClosing", CLOSING),
        (CLOSING, "MarketClosed", CLOSED),
        (OPEN, "MarketClosed", MarketEventRefusal.NOT_CLOSING),
        (CLOSING, "MarketClosing", MarketEventRefusal.ALREADY_CLOSING),
        (CLOSING, "MarketRulesSet", MarketEventRefusal.ALREADY_CLOSING),
        (CLOSED, "MarketClosing", MarketEventRefusal.ALREADY_CLOSED),
        (CLOSED, "MarketClosed", MarketEventRefusal.ALREADY_CLOSED),
        (CLOSED, "MarketRulesSet", MarketEventRefusal.ALREADY_CLOSED),
    ],
)
def test_every_step_of_a_markets_life(phase: MarketPhase, event: str, after: object) -> None:
    assert next_phase(phase, event) == after


def test_a_market_past_its_close_time_is_closing() -> None:
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    rules = MarketRulesSet(closes_at=now)
    assert phase_at(OPEN, rules, now - timedelta(seconds=1)) is OPEN
    assert phase_at(OPEN, rules, now) is CLOSING
    assert phase_at(CLOSED, rules, now) is CLOSED
    assert phase_at(OPEN, MarketRulesSet(), now) is OPEN


def test_only_an_open_market_starts_anything() -> None:
    assert purchases.may_start(OPEN)
    assert not purchases.may_start(CLOSING) and not purchases.may_start(CLOSED)


def test_a_refused_purchase_caps_the_want_at_the_auto_approve_limit() -> None:
    assert purchases.consent_refused(EscrowFailure.APPROVAL_DENIED)
    assert purchases.consent_refused(EscrowFailure.APPROVAL_EXPIRED)
    assert not purchases.consent_refused(EscrowFailure.INSUFFICIENT_FUNDS)
    assert purchases.buying_cap(9_000, 5_000, consent_refused_before=False) == 9_000
    assert purchases.buying_cap(9_000, 5_000, consent_refused_before=True) == 5_000


def _c(neg_id: str, total: int, started: bool = False) -> shopping.Candidate:
    return shopping.Candidate(neg_id, total, started)


def test_a_want_opens_its_cheapest_candidate_and_keeps_a_shortlist() -> None:
    plan = shopping.plan([_c("a", 900), _c("b", 500), _c("c", 700), _c("d", 800)], parallel=1, shortlist=2)
    assert plan.open == ("b",) and plan.wait == ("c", "d") and plan.drop == ("a",)


def test_a_started_negotiation_holds_its_place() -> None:
    plan = shopping.plan([_c("a", 900, started=True), _c("b", 500)], parallel=1, shortlist=8)
    assert plan.open == () and plan.wait == ("b",)
    freed = shopping.plan([_c("b", 500), _c("c", 400)], parallel=1, shortlist=8)
    assert freed.open == ("c",) and freed.wait == ("b",)


def test_short_of_money_a_buyer_opens_only_with_enough_held() -> None:
    # Asking 10 000 with 1 000 shipping: 8 000 is enough (70% of 10 000 plus shipping), 7 999 is not,
    # unless it is all the want could ever hold.
    assert shopping.worth_opening(8_000, 11_000, 10_000, 1_000)
    assert not shopping.worth_opening(7_999, 11_000, 10_000, 1_000)
    assert shopping.worth_opening(6_000, 6_000, 10_000, 1_000)
    assert not shopping.worth_opening(0, 0, 10_000, 1_000)
