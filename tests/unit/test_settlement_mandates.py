"""Settlement's rule for a mandate on mandate.commands: an allowed amendment moves the limit."""

from __future__ import annotations

from haggle_lab.testing import mandates
from services.settlement.domain.mandates import on_assigned

FIRST = mandates.buyer("p-1", [mandates.want("w1", 40_000)], 200_000, auto_approve=5_000)


def test_the_first_mandate_is_remembered_and_leaves_the_funded_limit() -> None:
    decided = on_assigned(None, FIRST)
    assert decided.keep == FIRST and decided.limit_cents is None


def test_an_allowed_amendment_sets_its_limit() -> None:
    raised = FIRST.model_copy(update={"auto_approve_limit_cents": 30_000})
    decided = on_assigned(FIRST, raised)
    assert decided.keep == raised and decided.limit_cents == 30_000


def test_an_amendment_of_the_max_only_keeps_the_limit() -> None:
    want = FIRST.wants[0].model_copy(update={"max_price_cents": 60_000})
    amended = FIRST.model_copy(update={"wants": (want,)})
    decided = on_assigned(FIRST, amended)
    assert decided.keep == amended and decided.limit_cents is None


def test_a_refused_amendment_changes_nothing() -> None:
    refused = FIRST.model_copy(update={"auto_approve_limit_cents": 0, "budget_cents": 100_000})
    decided = on_assigned(FIRST, refused)
    assert decided.keep is None and decided.limit_cents is None
    assert any(p.startswith("budget_cents") for p in decided.problems)


def test_a_repeat_changes_nothing() -> None:
    decided = on_assigned(FIRST, FIRST)
    assert decided.keep is None and decided.limit_cents is None and not decided.problems
