"""services.agents.domain.budget: reserve, commit, release, refund; never more promised than the budget."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.agents.domain import Budget, BudgetRefusal, BudgetRefused


def test_a_hold_takes_free_money_and_a_deal_turns_it_into_a_commitment() -> None:
    b = Budget(10_000).reserve("a", 6_000)
    assert (b.free_cents, b.held_cents) == (4_000, 6_000)
    b = b.commit("a", 5_500)
    assert (b.committed_cents, b.held_cents, b.free_cents) == (5_500, 0, 4_500)


def test_a_hold_larger_than_free_is_refused() -> None:
    b = Budget(10_000, committed_cents=3_000).reserve("a", 6_000)
    with pytest.raises(BudgetRefused) as refused:
        b.reserve("b", 1_001)
    assert refused.value.reason is BudgetRefusal.OVER_FREE
    assert b.reserve("b", 1_000).free_cents == 0


def test_a_thread_may_grow_its_own_hold_into_free_money() -> None:
    b = Budget(10_000).reserve("a", 6_000).reserve("a", 10_000)
    assert b.held_by("a") == 10_000


def test_a_commitment_beyond_held_and_free_is_refused() -> None:
    b = Budget(10_000).reserve("a", 6_000).reserve("b", 3_000)
    with pytest.raises(BudgetRefused) as refused:
        b.commit("a", 7_001)
    assert refused.value.reason is BudgetRefusal.OVER_HELD_AND_FREE
    assert b.commit("a", 7_000).free_cents == 0


def test_release_and_refund_give_money_back() -> None:
    b = Budget(10_000).reserve("a", 6_000).release("a")
    assert b.free_cents == 10_000
    b = b.commit("x", 4_000).refund(4_000)
    assert b.committed_cents == 0
    with pytest.raises(BudgetRefused) as refused:
        b.refund(1)
    assert refused.value.reason is BudgetRefusal.OVER_COMMITTED


def test_negative_amounts_are_refused() -> None:
    for operation in (
        lambda: Budget(100).reserve("a", -1),
        lambda: Budget(100).commit("a", -1),
        lambda: Budget(100).refund(-1),
    ):
        with pytest.raises(BudgetRefused):
            operation()


def test_an_overdrawn_deal_is_recorded_not_lost() -> None:
    b = Budget(1_000).reserve("a", 1_000).overdrawn("a", 1_200)
    assert (b.committed_cents, b.free_cents) == (1_200, 0)


NEG_IDS = st.sampled_from(["a", "b", "c", "d"])
OPERATIONS = st.one_of(
    st.tuples(st.just("reserve"), NEG_IDS, st.integers(-100, 20_000)),
    st.tuples(st.just("commit"), NEG_IDS, st.integers(-100, 20_000)),
    st.tuples(st.just("release"), NEG_IDS, st.just(0)),
    st.tuples(st.just("refund"), NEG_IDS, st.integers(-100, 20_000)),
)


@settings(max_examples=300)
@given(total=st.integers(0, 15_000), operations=st.lists(OPERATIONS, max_size=40))
def test_never_more_promised_than_the_budget(total: int, operations: list[tuple[str, str, int]]) -> None:
    """Any sequence, with amounts the test does not clamp: an operation either is refused (and
    changes nothing) or keeps held plus committed within the budget and every figure at least zero."""
    budget = Budget(total)
    for name, neg_id, cents in operations:
        before = budget
        try:
            if name == "release":
                budget = budget.release(neg_id)
            elif name == "refund":
                budget = budget.refund(cents)
            else:
                budget = getattr(budget, name)(neg_id, cents)
        except BudgetRefused:
            assert budget == before
            continue
        assert budget.committed_cents >= 0 and all(v > 0 for v in budget.holds.values())
        assert budget.committed_cents + budget.held_cents <= total
        assert budget.free_cents == total - budget.committed_cents - budget.held_cents
        if name == "commit":
            assert budget.committed_cents == before.committed_cents + cents
            assert budget.held_by(neg_id) == 0
