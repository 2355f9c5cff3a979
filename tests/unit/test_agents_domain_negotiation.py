"""services.agents.domain.negotiation: the status transition table, positive and negative space."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from haggle.contracts.goods import ShippingMethod
from haggle.contracts.negotiation import EndReason, NegotiationRefusal, OfferMade, Party
from services.agents.domain import (
    TRANSITIONS,
    EndedBecause,
    IllegalTransition,
    Negotiation,
    Role,
    Status,
)
from services.agents.domain.negotiation import MAX_OPEN_ATTEMPTS, MAX_REOPENS, Received

NOW = datetime(2026, 12, 7, tzinfo=UTC)
ALLOWED = [(a, b) for a in Status for b in TRANSITIONS[a]]
FORBIDDEN = [(a, b) for a in Status for b in Status if b not in TRANSITIONS[a]]


def neg(status: Status = Status.OPENING, **kw: object) -> Negotiation:
    return Negotiation("b|p|l", "p", "l", Role.BUYER, want_id="w", status=status, **kw)  # type: ignore[arg-type]


def test_the_table_covers_every_status_and_forbids_what_must_never_happen() -> None:
    assert set(TRANSITIONS) == set(Status)
    assert set(FORBIDDEN) == {
        (Status.OPENING, Status.DEAL),
        (Status.OPEN, Status.OPENING),
        (Status.DEAL, Status.OPENING),
        (Status.DEAL, Status.OPEN),
        (Status.DEAL, Status.ENDED),
        (Status.ENDED, Status.DEAL),
    }


@pytest.mark.parametrize(("before", "after"), ALLOWED)
def test_an_allowed_transition_moves(before: Status, after: Status) -> None:
    n = neg(before)
    n.move_to(after)
    assert n.status is after


@pytest.mark.parametrize(("before", "after"), FORBIDDEN)
def test_an_impossible_transition_raises_and_changes_nothing(before: Status, after: Status) -> None:
    n = neg(before)
    with pytest.raises(IllegalTransition) as raised:
        n.move_to(after)
    assert (raised.value.before, raised.value.after) == (before, after)
    assert n.status is before


def test_a_deal_is_final_whatever_arrives_after_it() -> None:
    n = neg(Status.OPEN, thread_id="t", reserved_cents=500)
    n.deal_agreed()
    assert (n.status, n.reserved_cents) == (Status.DEAL, 0)
    with pytest.raises(IllegalTransition):
        n.thread_ended(EndReason.WITHDRAWN)
    with pytest.raises(IllegalTransition):
        n.revive()


def test_ending_gives_the_hold_back_and_clears_what_was_due() -> None:
    n = neg(Status.OPEN, thread_id="t", reserved_cents=900, retry_at=NOW)
    n.thread_ended(EndReason.EXPIRED_DEADLINE)
    assert (n.status, n.end_reason, n.reserved_cents, n.retry_at) == (
        Status.ENDED,
        "expired_deadline",
        0,
        None,
    )


def test_a_thread_ended_in_a_deal_keeps_its_hold_for_the_deal() -> None:
    n = neg(Status.OPEN, thread_id="t", reserved_cents=900)
    n.thread_ended(EndReason.DEAL)
    assert (n.status, n.reserved_cents) == (Status.DEAL, 900)


def test_a_retryable_refused_opening_waits_then_gives_up() -> None:
    n = neg()
    for attempt in range(1, MAX_OPEN_ATTEMPTS + 1):
        n.opening_refused(NegotiationRefusal.RATE_LIMITED, NOW)
        assert n.status is Status.OPENING and n.attempts == attempt and n.retry_at is not None
        assert n.retry_at > NOW
    n.opening_refused(NegotiationRefusal.RATE_LIMITED, NOW)
    assert (n.status, n.end_reason) == (Status.ENDED, "rate_limited")


def test_a_final_refusal_ends_the_opening_at_once() -> None:
    n = neg(reserved_cents=300)
    n.opening_refused(NegotiationRefusal.LISTING_SOLD, NOW)
    assert (n.status, n.end_reason, n.reserved_cents) == (Status.ENDED, "listing_sold", 0)


@pytest.mark.parametrize("reason", list(EndedBecause))
def test_only_untried_candidates_are_revived(reason: EndedBecause) -> None:
    n = neg()
    n.end(reason)
    assert n.revivable(set()) is (reason is not EndedBecause.MARKET_CLOSING)
    assert not n.revivable({"w"})  # its want was bought meanwhile


def test_a_candidate_is_revived_a_bounded_number_of_times() -> None:
    n = neg()
    for _ in range(MAX_REOPENS):
        n.end(EndedBecause.OUTRANKED)
        assert n.revivable(set())
        n.revive()
        assert (n.status, n.end_reason) == (Status.OPENING, None)
    n.end(EndedBecause.OUTRANKED)
    assert not n.revivable(set())


def test_a_seller_negotiation_is_never_revived() -> None:
    n = Negotiation("s|p|t", "p", "l", Role.SELLER, thread_id="t")
    n.end(EndedBecause.DECLINED_TO_OPEN)
    assert not n.revivable(set())


def test_a_received_event_is_the_same_once_saved_and_loaded_and_parsed_only_when_read() -> None:
    offer = OfferMade(
        thread_id="t1",
        listing_id="l",
        offer_id="t1.1",
        by=Party.BUYER,
        agent_id="p.agent",
        round=1,
        price_cents=12_345,
        shipping_method=ShippingMethod.LOCAL_PICKUP,
        shipping_cost_cents=0,
        shipping_paid_by=Party.BUYER,
    )
    n = neg(Status.OPEN, thread_id="t1")
    n.record(offer, NOW)
    saved = json.loads(json.dumps([entry.saved() for entry in n.events]))
    loaded = neg(Status.OPEN, thread_id="t1", events=[Received.loaded(entry) for entry in saved])
    assert loaded == n and loaded.events[0].event == offer and loaded.events[0].at == NOW
    later = Received.loaded({**saved[0], "at": "2026-12-07T00:00:01+00:00"})
    assert later != n.events[0], "the time it came is part of what was received"
    broken = Received.loaded({**saved[0], "payload": {"price_cents": "lots"}})
    assert broken.at == NOW  # loading does not parse the event...
    with pytest.raises(ValidationError):
        _ = broken.event  # ...reading it does, and a broken one is refused
