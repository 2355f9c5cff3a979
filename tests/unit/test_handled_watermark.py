"""The handled-through watermark: what a consumer group's offsets prove about the broker's times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from haggle.runtime.handled import MAX_NOTED, Watermark

T0 = datetime(2026, 12, 7, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_a_caught_up_partition_is_handled_through_the_sample_time() -> None:
    watermark = Watermark()
    watermark.observe(at(0), {0: (5, 5)})
    assert watermark.cutoff() == at(0)


def test_a_partition_behind_is_proven_only_once_its_group_reaches_an_end_noted_earlier() -> None:
    watermark = Watermark()
    watermark.observe(at(0), {0: (3, 5)})
    assert watermark.cutoff() is None
    watermark.observe(at(1), {0: (4, 8)})
    assert watermark.cutoff() is None
    watermark.observe(at(2), {0: (5, 9)})
    assert watermark.cutoff() == at(0)
    watermark.observe(at(3), {0: (9, 9)})
    assert watermark.cutoff() == at(3)


def test_the_cutoff_is_the_slowest_partition_and_waits_for_every_partition_seen() -> None:
    watermark = Watermark()
    watermark.observe(at(0), {0: (1, 1), 1: (0, 2)})
    assert watermark.cutoff() is None
    watermark.observe(at(1), {0: (1, 1), 1: (2, 3)})
    assert watermark.cutoff() == at(0)
    watermark.observe(at(2), {0: (1, 1), 1: (3, 3), 2: (0, 4)})
    assert watermark.cutoff() is None


def test_the_cutoff_never_goes_back() -> None:
    watermark = Watermark()
    watermark.observe(at(5), {0: (2, 2)})
    watermark.observe(at(1), {0: (2, 2)})
    assert watermark.cutoff() == at(5)


def test_a_long_stuck_partition_is_proven_once_caught_up_and_quiet_samples_prove_more() -> None:
    watermark = Watermark()
    for second in range(3 * MAX_NOTED):
        watermark.observe(at(second), {0: (0, 1 + second)})
    assert watermark.cutoff() is None
    watermark.observe(at(3 * MAX_NOTED), {0: (3 * MAX_NOTED, 3 * MAX_NOTED)})
    assert watermark.cutoff() == at(3 * MAX_NOTED)
    quiet = Watermark()
    quiet.observe(at(0), {0: (0, 7)})
    quiet.observe(at(1), {0: (0, 7)})
    quiet.observe(at(2), {0: (7, 7)})
    assert quiet.cutoff() == at(2)
