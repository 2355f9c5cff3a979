"""The pure ledger: each rule by example, then any workload by property."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import event, given, settings

from services.settlement.domain.ledger import (
    Account,
    AccountKind,
    Ledger,
    Phase,
    Transfer,
    TransferResult,
    invariant_violations,
)
from tests.unit.ledger_ops import ACCOUNTS, WORKLOADS, Op, concrete, expected_totals, totals_of

R = TransferResult


def funded(amount: int = 1_000) -> Ledger:
    ledger = Ledger(ACCOUNTS)
    assert ledger.apply(Transfer("fund", Phase.SINGLE, "external", "wallet:a", amount)) is R.OK
    return ledger


def hold(amount: int = 600, transfer_id: str = "hold") -> Transfer:
    return Transfer(transfer_id, Phase.PENDING, "wallet:a", "escrow:1", amount)


def test_single_transfer_moves_posted_balances_and_the_source_may_go_negative() -> None:
    ledger = funded(1_000)
    assert ledger.accounts["wallet:a"].balance == 1_000
    assert ledger.accounts["external"].balance == -1_000
    assert invariant_violations(ledger.accounts.values(), ledger.transfers.values()) == []


def test_a_wallet_cannot_go_below_zero() -> None:
    ledger = funded(100)
    result = ledger.apply(Transfer("spend", Phase.SINGLE, "wallet:a", "wallet:b", 101))
    assert result is R.EXCEEDS_CREDITS
    assert ledger.accounts["wallet:a"].balance == 100
    assert "spend" not in ledger.transfers


def test_a_hold_reserves_funds_so_a_second_hold_cannot_spend_them_again() -> None:
    ledger = funded(1_000)
    assert ledger.apply(hold(600)) is R.OK
    wallet = ledger.accounts["wallet:a"]
    assert (wallet.balance, wallet.available, wallet.debits_pending) == (1_000, 400, 600)
    assert ledger.apply(hold(600, "hold-2")) is R.EXCEEDS_CREDITS


def test_post_moves_the_hold_into_the_escrow_account() -> None:
    ledger = funded(1_000)
    ledger.apply(hold(600))
    assert ledger.apply(Transfer("post", Phase.POST, pending_id="hold")) is R.OK
    assert ledger.accounts["wallet:a"].balance == 400
    assert ledger.accounts["wallet:a"].debits_pending == 0
    assert ledger.accounts["escrow:1"].balance == 600
    assert ledger.transfers["post"].amount == 600


def test_void_gives_the_hold_back() -> None:
    ledger = funded(1_000)
    ledger.apply(hold(600))
    assert ledger.apply(Transfer("void", Phase.VOID, pending_id="hold")) is R.OK
    wallet = ledger.accounts["wallet:a"]
    assert (wallet.balance, wallet.available) == (1_000, 1_000)
    assert ledger.accounts["escrow:1"].credits_pending == 0


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (Phase.POST, Phase.POST, R.PENDING_TRANSFER_ALREADY_POSTED),
        (Phase.POST, Phase.VOID, R.PENDING_TRANSFER_ALREADY_POSTED),
        (Phase.VOID, Phase.POST, R.PENDING_TRANSFER_ALREADY_VOIDED),
        (Phase.VOID, Phase.VOID, R.PENDING_TRANSFER_ALREADY_VOIDED),
    ],
)
def test_a_hold_is_resolved_at_most_once(first: Phase, second: Phase, expected: R) -> None:
    ledger = funded(1_000)
    ledger.apply(hold(600))
    assert ledger.apply(Transfer("r1", first, pending_id="hold")) is R.OK
    before = dict(ledger.accounts)
    assert ledger.apply(Transfer("r2", second, pending_id="hold")) is expected
    assert ledger.accounts == before


def test_same_id_same_body_is_the_same_result_and_changes_nothing() -> None:
    ledger = funded(1_000)
    request = hold(600)
    assert ledger.apply(request) is R.OK
    before = dict(ledger.accounts)
    assert ledger.apply(request) is R.EXISTS
    assert ledger.accounts == before
    post = Transfer("post", Phase.POST, pending_id="hold")
    assert ledger.apply(post) is R.OK
    assert ledger.apply(post) is R.EXISTS


def test_same_id_different_body_is_refused() -> None:
    ledger = funded(1_000)
    ledger.apply(hold(600))
    assert ledger.apply(hold(601)) is R.EXISTS_WITH_DIFFERENT_FIELDS
    assert ledger.apply(replace(hold(600), credit_account_id="escrow:2")) is R.EXISTS_WITH_DIFFERENT_FIELDS
    assert ledger.accounts["wallet:a"].debits_pending == 600


def test_a_failed_transfer_is_not_stored_so_its_id_may_succeed_later() -> None:
    ledger = funded(100)
    assert ledger.apply(hold(600)) is R.EXCEEDS_CREDITS
    ledger.apply(Transfer("top-up", Phase.SINGLE, "external", "wallet:a", 500))
    assert ledger.apply(hold(600)) is R.OK


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (Transfer("x", Phase.SINGLE, "wallet:a", "wallet:b", 0), R.AMOUNT_MUST_BE_POSITIVE),
        (Transfer("x", Phase.SINGLE, "wallet:a", "wallet:b", -5), R.AMOUNT_MUST_BE_POSITIVE),
        (Transfer("x", Phase.SINGLE, "wallet:a", "wallet:a", 5), R.ACCOUNTS_MUST_BE_DIFFERENT),
        (Transfer("x", Phase.SINGLE, "missing", "wallet:a", 5), R.DEBIT_ACCOUNT_NOT_FOUND),
        (Transfer("x", Phase.SINGLE, "wallet:a", "missing", 5), R.CREDIT_ACCOUNT_NOT_FOUND),
        (Transfer("x", Phase.SINGLE, "wallet:a", "wallet:b", 5, pending_id="hold"), R.PENDING_ID_NOT_ALLOWED),
        (Transfer("x", Phase.POST), R.PENDING_ID_REQUIRED),
        (Transfer("x", Phase.POST, pending_id="nope"), R.PENDING_TRANSFER_NOT_FOUND),
        (Transfer("x", Phase.VOID, pending_id="fund"), R.PENDING_TRANSFER_NOT_PENDING),
        (Transfer("x", Phase.POST, amount=10, pending_id="hold"), R.PENDING_FIELDS_MISMATCH),
        (Transfer("x", Phase.POST, "wallet:b", pending_id="hold"), R.PENDING_FIELDS_MISMATCH),
    ],
)
def test_malformed_requests_are_refused_with_their_reason(request_: Transfer, expected: R) -> None:
    ledger = funded(1_000)
    ledger.apply(hold(600))
    before = dict(ledger.accounts)
    assert ledger.apply(request_) is expected
    assert ledger.accounts == before


def test_an_account_without_the_overdraft_flag_checks_nothing() -> None:
    ledger = Ledger(
        [Account("src", AccountKind.EXTERNAL, no_overdraft=False), Account("w", AccountKind.WALLET)]
    )
    assert ledger.apply(Transfer("t", Phase.PENDING, "src", "w", 50)) is R.OK
    assert ledger.accounts["src"].available == -50


def test_invariant_check_catches_what_it_should() -> None:
    broken = [Account("w", AccountKind.WALLET, debits_posted=10), Account("e", AccountKind.EXTERNAL, False)]
    problems = invariant_violations(broken, [])
    assert "posted balances do not sum to zero" in problems
    assert any("overdrawn" in p for p in problems)
    twice = [
        Transfer("p1", Phase.POST, "a", "b", 1, pending_id="h"),
        Transfer("p2", Phase.VOID, "a", "b", 1, pending_id="h"),
    ]
    assert "a pending transfer was resolved more than once" in invariant_violations([], twice)


@settings(max_examples=300, deadline=None)
@given(WORKLOADS)
def test_any_workload_keeps_every_invariant(workload: list[Op]) -> None:
    ledger = Ledger(ACCOUNTS)
    history: list[Transfer] = []
    accepted: dict[str, Transfer] = {}
    for op in workload:
        holds = [t.id for t in ledger.transfers.values() if t.phase is Phase.PENDING]
        request = concrete(op, history, holds)
        before_accounts, before_transfers = dict(ledger.accounts), dict(ledger.transfers)
        result = ledger.apply(request)
        event(f"{request.phase}: {result}")
        if request.id in accepted:
            same = accepted[request.id] == request
            assert result is (R.EXISTS if same else R.EXISTS_WITH_DIFFERENT_FIELDS)
        if result is R.OK:
            accepted[request.id] = request
        else:
            assert ledger.accounts == before_accounts and ledger.transfers == before_transfers
        history.append(request)
        assert invariant_violations(ledger.accounts.values(), ledger.transfers.values()) == []
        recomputed = expected_totals(list(ledger.transfers.values()))
        for account in ledger.accounts.values():
            assert totals_of(account) == recomputed.get(account.id, (0, 0, 0, 0)), account.id
