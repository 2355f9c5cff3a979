"""The double-entry ledger's rules, as in TigerBeetle. Pure: no I/O.

Accounts carry debits and credits, pending and posted. Transfers are
insert-only, with caller-chosen ids that are idempotency keys: the same id
with the same body gives EXISTS and changes nothing; the same id with another
body is refused. A pending transfer (a hold) is resolved by a later transfer
that posts or voids it, at most once and always for its full amount. An
account flagged `no_overdraft` never has more debits (posted + pending) than
posted credits, so a wallet cannot go below zero, not even with holds.

`decide` is the one rule book; `Ledger` applies it in memory (for property
tests and the pure deal tests) and the PostgreSQL store applies the same
decision under row locks, with constraints in the schema as the last line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum


class AccountKind(StrEnum):
    WALLET = "wallet"
    ESCROW = "escrow"
    FEES = "fees"
    CARRIER = "carrier"
    EXTERNAL = "external"


class Phase(StrEnum):
    SINGLE = "single"
    PENDING = "pending"
    POST = "post"
    VOID = "void"


RESOLUTIONS = (Phase.POST, Phase.VOID)


class TransferResult(StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    AMOUNT_MUST_BE_POSITIVE = "amount_must_be_positive"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    EXCEEDS_CREDITS = "exceeds_credits"
    PENDING_ID_REQUIRED = "pending_id_required"
    PENDING_ID_NOT_ALLOWED = "pending_id_not_allowed"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    PENDING_TRANSFER_NOT_PENDING = "pending_transfer_not_pending"
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_FIELDS_MISMATCH = "pending_fields_mismatch"


SUCCESS = (TransferResult.OK, TransferResult.EXISTS)


@dataclass(frozen=True)
class Account:
    id: str
    kind: AccountKind
    no_overdraft: bool = True
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    @property
    def balance(self) -> int:
        """Posted credits less posted debits: what the account holds."""
        return self.credits_posted - self.debits_posted

    @property
    def available(self) -> int:
        """What may still be debited: the balance less what is held."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@dataclass(frozen=True)
class Transfer:
    """A transfer request, and once accepted the stored row.

    For POST and VOID, `debit_account_id`, `credit_account_id` and `amount`
    may be left empty (zero): they are taken from the pending transfer.
    """

    id: str
    phase: Phase
    debit_account_id: str = ""
    credit_account_id: str = ""
    amount: int = 0
    pending_id: str | None = None
    code: str = ""
    deal_id: str | None = None


@dataclass(frozen=True)
class Decision:
    result: TransferResult
    transfer: Transfer | None = None
    """The row to insert (with the pending's fields filled in) when the result is OK."""
    accounts: tuple[Account, ...] = ()
    """The two accounts after the transfer, when the result is OK."""


def filled(request: Transfer, pending: Transfer | None) -> Transfer:
    """A post or void with the pending transfer's accounts and amount filled where left empty."""
    if request.phase not in RESOLUTIONS or pending is None:
        return request
    return replace(
        request,
        debit_account_id=request.debit_account_id or pending.debit_account_id,
        credit_account_id=request.credit_account_id or pending.credit_account_id,
        amount=request.amount or pending.amount,
    )


def _shape_error(request: Transfer) -> TransferResult | None:
    if request.phase in RESOLUTIONS:
        return None if request.pending_id else TransferResult.PENDING_ID_REQUIRED
    if request.pending_id is not None:
        return TransferResult.PENDING_ID_NOT_ALLOWED
    if request.amount <= 0:
        return TransferResult.AMOUNT_MUST_BE_POSITIVE
    if request.debit_account_id == request.credit_account_id:
        return TransferResult.ACCOUNTS_MUST_BE_DIFFERENT
    return None


def _pending_error(
    request: Transfer, pending: Transfer | None, resolution: Transfer | None
) -> TransferResult | None:
    if pending is None:
        return TransferResult.PENDING_TRANSFER_NOT_FOUND
    if pending.phase is not Phase.PENDING:
        return TransferResult.PENDING_TRANSFER_NOT_PENDING
    if resolution is not None:
        if resolution.phase is Phase.POST:
            return TransferResult.PENDING_TRANSFER_ALREADY_POSTED
        return TransferResult.PENDING_TRANSFER_ALREADY_VOIDED
    whole = filled(request, pending)
    if (whole.debit_account_id, whole.credit_account_id, whole.amount) != (
        pending.debit_account_id,
        pending.credit_account_id,
        pending.amount,
    ):
        return TransferResult.PENDING_FIELDS_MISMATCH
    return None


def _moved(debit: Account, credit: Account, phase: Phase, amount: int) -> tuple[Account, Account]:
    if phase is Phase.SINGLE:
        return (
            replace(debit, debits_posted=debit.debits_posted + amount),
            replace(credit, credits_posted=credit.credits_posted + amount),
        )
    if phase is Phase.PENDING:
        return (
            replace(debit, debits_pending=debit.debits_pending + amount),
            replace(credit, credits_pending=credit.credits_pending + amount),
        )
    posted = amount if phase is Phase.POST else 0
    return (
        replace(
            debit,
            debits_pending=debit.debits_pending - amount,
            debits_posted=debit.debits_posted + posted,
        ),
        replace(
            credit,
            credits_pending=credit.credits_pending - amount,
            credits_posted=credit.credits_posted + posted,
        ),
    )


def decide(
    request: Transfer,
    accounts: Mapping[str, Account],
    existing: Transfer | None = None,
    pending: Transfer | None = None,
    resolution: Transfer | None = None,
) -> Decision:
    """The outcome of one transfer request.

    `existing` is a stored transfer with the request's id; `pending` the
    transfer named by `pending_id`; `resolution` a stored post or void of it.
    """
    if existing is not None:
        same = filled(request, pending) == existing
        return Decision(TransferResult.EXISTS if same else TransferResult.EXISTS_WITH_DIFFERENT_FIELDS)
    if error := _shape_error(request):
        return Decision(error)
    if request.phase in RESOLUTIONS and (error := _pending_error(request, pending, resolution)):
        return Decision(error)
    transfer = filled(request, pending)
    debit = accounts.get(transfer.debit_account_id)
    credit = accounts.get(transfer.credit_account_id)
    if debit is None:
        return Decision(TransferResult.DEBIT_ACCOUNT_NOT_FOUND)
    if credit is None:
        return Decision(TransferResult.CREDIT_ACCOUNT_NOT_FOUND)
    spends = transfer.phase in (Phase.SINGLE, Phase.PENDING)
    if spends and debit.no_overdraft and transfer.amount > debit.available:
        return Decision(TransferResult.EXCEEDS_CREDITS)
    new_debit, new_credit = _moved(debit, credit, transfer.phase, transfer.amount)
    return Decision(TransferResult.OK, transfer, (new_debit, new_credit))


class Ledger:
    """The rules applied in memory: what the property tests drive."""

    def __init__(self, accounts: Iterable[Account] = ()) -> None:
        self.accounts: dict[str, Account] = {a.id: a for a in accounts}
        self.transfers: dict[str, Transfer] = {}
        self.resolutions: dict[str, Transfer] = {}

    def open(self, account: Account) -> None:
        self.accounts.setdefault(account.id, account)

    def apply(self, request: Transfer) -> TransferResult:
        pending = self.transfers.get(request.pending_id) if request.pending_id else None
        resolution = self.resolutions.get(request.pending_id) if request.pending_id else None
        decision = decide(request, self.accounts, self.transfers.get(request.id), pending, resolution)
        if decision.result is TransferResult.OK:
            assert decision.transfer is not None
            self.transfers[request.id] = decision.transfer
            if decision.transfer.phase in RESOLUTIONS and decision.transfer.pending_id:
                self.resolutions[decision.transfer.pending_id] = decision.transfer
            for account in decision.accounts:
                self.accounts[account.id] = account
        return decision.result


def invariant_violations(accounts: Iterable[Account], transfers: Iterable[Transfer]) -> list[str]:
    """What must always hold over a whole ledger; empty when everything does."""
    accounts = list(accounts)
    transfers = list(transfers)
    problems: list[str] = []
    if sum(a.balance for a in accounts) != 0:
        problems.append("posted balances do not sum to zero")
    if sum(a.debits_pending for a in accounts) != sum(a.credits_pending for a in accounts):
        problems.append("pending debits differ from pending credits")
    problems += [f"{a.id} overdrawn ({a.available})" for a in accounts if a.no_overdraft and a.available < 0]
    problems += [f"{a.id} has negative totals" for a in accounts if min(_totals(a)) < 0]
    resolved = [t.pending_id for t in transfers if t.phase in RESOLUTIONS]
    if len(resolved) != len(set(resolved)):
        problems.append("a pending transfer was resolved more than once")
    return problems


def _totals(account: Account) -> tuple[int, int, int, int]:
    return (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)
