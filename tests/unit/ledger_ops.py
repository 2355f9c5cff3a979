"""Random ledger workloads for the property tests: transfers, posts, voids, retries, tampered retries.

Ids come from a small pool so that collisions (a retry, an id reused with
another body, a second resolution of one hold) happen often. `expected_totals`
recomputes every account from the accepted transfers alone: an oracle that
shares no code with the ledger's bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from hypothesis import strategies as st

from services.settlement.domain.ledger import RESOLUTIONS, Account, AccountKind, Phase, Transfer

ACCOUNTS = (
    Account("external", AccountKind.EXTERNAL, no_overdraft=False),
    Account("wallet:a", AccountKind.WALLET),
    Account("wallet:b", AccountKind.WALLET),
    Account("wallet:c", AccountKind.WALLET),
    Account("escrow:1", AccountKind.ESCROW),
    Account("escrow:2", AccountKind.ESCROW),
    Account("fees", AccountKind.FEES),
)
ACCOUNT_IDS = [a.id for a in ACCOUNTS] + ["missing"]
TRANSFER_IDS = [f"t{i}" for i in range(14)]

_ids = st.sampled_from(TRANSFER_IDS)
_accounts = st.sampled_from(ACCOUNT_IDS)
_amounts = st.integers(min_value=-5, max_value=400)


def _move(phase: Phase) -> st.SearchStrategy[Transfer]:
    return st.builds(
        lambda i, d, c, a: Transfer(i, phase, d, c, a, code="test"), _ids, _accounts, _accounts, _amounts
    )


def _resolve(phase: Phase) -> st.SearchStrategy[tuple[str, str, int]]:
    """A post or void of the k-th hold requested so far (or of a random id)."""
    return st.tuples(st.just(phase.value), _ids, st.integers(min_value=-1, max_value=30))


_funding = st.builds(
    lambda i, w, a: Transfer(i, Phase.SINGLE, "external", w, a, code="funding"),
    _ids,
    st.sampled_from(["wallet:a", "wallet:b", "wallet:c"]),
    st.integers(min_value=1, max_value=600),
)

_hold = st.builds(
    lambda i, w, e, a: Transfer(i, Phase.PENDING, w, e, a, code="hold"),
    _ids,
    st.sampled_from(["wallet:a", "wallet:b", "wallet:c"]),
    st.sampled_from(["escrow:1", "escrow:2"]),
    st.integers(min_value=1, max_value=300),
)

OP = st.one_of(
    _funding,
    _hold,
    _resolve(Phase.POST),
    _resolve(Phase.VOID),
    _funding,
    _hold,
    _move(Phase.SINGLE),
    _move(Phase.PENDING),
    _resolve(Phase.POST),
    _resolve(Phase.VOID),
    st.tuples(st.just("retry"), st.integers(min_value=0, max_value=60)),
    st.tuples(st.just("tamper"), st.integers(min_value=0, max_value=60)),
)
WORKLOADS = st.lists(OP, min_size=10, max_size=80)


Op = Transfer | tuple[str, int] | tuple[str, str, int]


def concrete(op: Op, history: list[Transfer], holds: list[str]) -> Transfer:
    """The request an op stands for: itself, a resolution of an accepted hold, or an earlier request."""
    if isinstance(op, Transfer):
        return op
    if len(op) == 3:
        phase, transfer_id, k = op
        pending_id = holds[k % len(holds)] if holds and k >= 0 else TRANSFER_IDS[k % len(TRANSFER_IDS)]
        return Transfer(transfer_id, Phase(phase), pending_id=pending_id, code="test")
    kind, index = op
    if not history:
        return Transfer("t0", Phase.SINGLE, "external", "wallet:a", 1, code="funding")
    earlier = history[index % len(history)]
    return earlier if kind == "retry" else replace(earlier, amount=earlier.amount + 1, pending_id=None)


def expected_totals(transfers: list[Transfer]) -> dict[str, tuple[int, int, int, int]]:
    """(debits_pending, debits_posted, credits_pending, credits_posted) per account, from scratch."""
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    resolved = {t.pending_id for t in transfers if t.phase in RESOLUTIONS}
    posted = {t.pending_id for t in transfers if t.phase is Phase.POST}
    for t in transfers:
        if t.phase is Phase.SINGLE or (t.phase is Phase.PENDING and t.id in posted):
            totals[t.debit_account_id][1] += t.amount
            totals[t.credit_account_id][3] += t.amount
        elif t.phase is Phase.PENDING and t.id not in resolved:
            totals[t.debit_account_id][0] += t.amount
            totals[t.credit_account_id][2] += t.amount
    return {k: (v[0], v[1], v[2], v[3]) for k, v in totals.items()}


def totals_of(account: Account) -> tuple[int, int, int, int]:
    return (account.debits_pending, account.debits_posted, account.credits_pending, account.credits_posted)
