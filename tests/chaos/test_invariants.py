"""The chaos invariants and the fault schedule, on hand-built event lists (no I/O)."""

from __future__ import annotations

import uuid

from haggle import procs
from haggle.contracts import Envelope
from haggle_lab.chaos import invariants
from haggle_lab.chaos.acknowledged import Acknowledged
from haggle_lab.chaos.monkey import KAFKA, KILL, POSTGRES, schedule


def env(kind: str, causation: str | None = None, **payload: object) -> Envelope:
    return Envelope(
        type=kind, market_id="m1", producer="test", causation_id=causation, payload={"type": kind, **payload}
    )


def test_the_schedule_is_a_function_of_the_seed() -> None:
    first, again, other = schedule(7, 30), schedule(7, 30), schedule(8, 30)
    assert first == again and first != other
    assert [f.at for f in first] == sorted(f.at for f in first)
    assert all(0 <= f.at <= 30 for f in first)
    assert sorted(f.kind for f in first) == sorted([KILL] * len(procs.SERVICES) + [KAFKA, POSTGRES])
    assert len(schedule(7, 30, kills_per_service=3, infrastructure=False)) == 3 * len(procs.SERVICES)


def test_a_deal_funded_by_two_distinct_events_is_caught_but_a_redelivery_is_not() -> None:
    funded = env("EscrowFunded", deal_id="d1")
    assert invariants.no_deal_funded_twice([("settlement.events", funded)] * 2) == []
    twice = [("settlement.events", funded), ("settlement.events", env("EscrowFunded", deal_id="d1"))]
    assert invariants.no_deal_funded_twice(twice) == ["deal d1 funded 2 times"]


def test_a_relay_storm_is_caught_but_a_republish_after_a_crash_is_not() -> None:
    released, sold = env("FundsReleased", deal_id="d1"), env("ListingSold", listing_id="l1")
    after_crashes = [("settlement.events", released)] * invariants.STORM_COPIES
    assert invariants.no_relay_storm([*after_crashes, ("listing.events", sold)]) == []
    storm = [*after_crashes, ("settlement.events", released), ("listing.events", sold)]
    assert invariants.no_relay_storm(storm) == [
        f"settlement.events: event {released.event_id} published {invariants.STORM_COPIES + 1} times"
    ]
    assert invariants.check_all(storm)["no_relay_storm"], "check_all leaves the storm out"


def test_open_negotiations_and_unsettled_deals_are_named() -> None:
    seen = [
        ("negotiation.events", env("ThreadOpened", thread_id="t1")),
        ("negotiation.events", env("ThreadOpened", thread_id="t2")),
        ("negotiation.events", env("NegotiationEnded", thread_id="t1")),
        ("negotiation.events", env("DealAgreed", deal_id="d1")),
        ("negotiation.events", env("DealAgreed", deal_id="d2")),
        ("settlement.events", env("Refunded", deal_id="d2")),
    ]
    assert invariants.every_negotiation_ended(seen) == ["negotiation t2 never ended"]
    assert invariants.every_deal_settled(seen) == ["deal d1 neither settled nor refunded"]


def test_a_command_without_an_outcome_on_its_own_events_topic_is_lost() -> None:
    answered, lost = env("OpenNegotiation"), env("CounterOffer")
    wrong_topic = env("AcceptGoods")
    seen = [
        ("negotiation.commands", answered),
        ("negotiation.commands", lost),
        ("settlement.commands", wrong_topic),
        ("negotiation.events", env("ThreadOpened", causation=str(answered.event_id))),
        ("negotiation.events", env("ActionRefused", causation=str(wrong_topic.event_id))),
    ]
    missing = invariants.unanswered_commands(seen)
    assert missing == {"negotiation.commands": [lost], "settlement.commands": [wrong_topic]}
    assert invariants.commands_seen(seen) == {
        "listing.commands": 0,
        "negotiation.commands": 2,
        "settlement.commands": 1,
    }
    assert len(invariants.no_event_lost(seen)) == 2
    assert str(uuid.UUID(str(lost.event_id))) in invariants.no_event_lost(seen)[0]


def test_with_two_instances_each_round_kills_every_instance() -> None:
    faults = schedule(7, 30, services=("negotiation", "agents"), infrastructure=False, instances=2)
    assert sorted((f.target, f.instance) for f in faults) == [
        ("agents", 0),
        ("agents", 1),
        ("negotiation", 0),
        ("negotiation", 1),
    ]
    assert sorted(f.describe().split(" at ")[0] for f in faults if f.instance == 1) == [
        "kill -9 agents-1",
        "kill -9 negotiation-1",
    ]
    assert schedule(7, 30) == schedule(7, 30, instances=1)


def test_an_acknowledged_event_missing_from_its_topic_is_lost() -> None:
    kept, gone = uuid.uuid4(), uuid.uuid4()
    acked = Acknowledged(sent={"t": {kept, gone}, "u": {kept}}, found={"t": {kept}, "u": {kept}})
    assert acked.acknowledged == 3
    assert acked.lost == {"t": {gone}}
    assert acked.problems() == [f"t: event {gone} was acknowledged (outbox sent) but is not on the topic"]
    assert Acknowledged(sent={"t": {kept}}, found={"t": {kept}}).problems() == []
