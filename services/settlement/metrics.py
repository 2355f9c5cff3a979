"""The settlement service's domain metrics, counted from the events it emits."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from haggle.contracts.approval import ApprovalExpired, ApprovalRequested
from haggle.contracts.envelope import Message
from haggle.contracts.settlement import (
    DisputeOpened,
    DisputeResolved,
    EscrowFailed,
    EscrowFunded,
    FundsReleased,
    Refunded,
)

ESCROW_FUNDED = Counter("haggle_escrow_funded_total", "Escrow holds placed")
ESCROW_FAILED = Counter("haggle_escrow_failed_total", "Deals whose escrow was never held", ["reason"])
RELEASED = Counter("haggle_funds_released_total", "Escrows posted to the seller")
REFUNDED = Counter("haggle_refunds_total", "Escrows voided back to the buyer", ["reason"])
DISPUTES_OPENED = Counter("haggle_disputes_opened_total", "Disputes opened", ["reason"])
DISPUTES_RESOLVED = Counter(
    "haggle_disputes_total", "Disputes resolved, by reason and outcome", ["reason", "outcome", "decided_by"]
)
APPROVALS = Counter("haggle_approvals_total", "Approvals requested, and how they ended", ["decision"])
GMV_CENTS = Counter("haggle_gmv_cents_total", "Goods value released to sellers (agreed prices), cents")
ESCROW_BALANCE_CENTS = Gauge("haggle_escrow_balance_cents", "Money held in escrow right now, cents")
REFUSALS = Counter("haggle_settlement_refusals_total", "Settlement commands refused", ["reason"])
IGNORED = Counter(
    "haggle_settlement_ignored_total", "Upstream events that did not fit a deal's state", ["event"]
)
TIMER_FAILURES = Counter("haggle_settlement_timer_failures_total", "Deadlines that failed and were retried")


def observe(event: Message, price_cents: int) -> None:
    """Count one emitted event. Called just before the commit, so a rollback may overcount."""
    if isinstance(event, EscrowFunded):
        ESCROW_FUNDED.inc()
    elif isinstance(event, EscrowFailed):
        ESCROW_FAILED.labels(event.reason).inc()
    elif isinstance(event, FundsReleased):
        RELEASED.inc()
        GMV_CENTS.inc(price_cents)
    elif isinstance(event, Refunded):
        REFUNDED.labels(event.reason).inc()
    elif isinstance(event, DisputeOpened):
        DISPUTES_OPENED.labels(event.reason.value).inc()
    elif isinstance(event, DisputeResolved):
        DISPUTES_RESOLVED.labels(event.reason.value, event.outcome.value, event.decided_by.value).inc()
    elif isinstance(event, ApprovalRequested):
        APPROVALS.labels("requested").inc()
    elif isinstance(event, ApprovalExpired):
        APPROVALS.labels("expired").inc()
