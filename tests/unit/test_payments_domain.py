"""The payment rails' pure rules: which provider operation each ledger move needs, what answers mean,
when to capture early, what a webhook does to a deal, and what reconcile calls drift."""

from __future__ import annotations

from datetime import timedelta

import pytest

from haggle.contracts.market import PaymentProvider
from haggle.contracts.settlement import DisputeOpened, DisputeReason, EscrowFailed, Refunded
from services.settlement.domain import escrow
from services.settlement.domain.deal import (
    Deal,
    DealState,
    hold_transfer,
    refund_transfers,
    release_transfers,
)
from services.settlement.payments import domain
from services.settlement.payments.domain import Answer, Fact, OpKind, ProviderResult
from services.settlement.payments.port import IntentView, TransferView
from services.settlement.payments.reconcile import LedgerSide, ProviderSide, compare
from tests.unit.settlement_world import RULES, T0, agreed

CARD = RULES.model_copy(update={"payment_provider": PaymentProvider.STRIPE})
DAY = timedelta(days=1)


def deal(state: DealState = DealState.FUNDED, **changes: object) -> Deal:
    return escrow.new_deal(agreed(), "m1", CARD).after(state=state, **changes)


def test_an_internal_market_keeps_the_hold_in_the_ledger_and_records_no_operation() -> None:
    d = deal(DealState.AWAITING_APPROVAL)
    assert domain.routed_hold(d, hold_transfer(d), RULES) is None
    assert domain.ops_for(d, release_transfers(d), RULES) == ()


def test_a_card_market_authorizes_the_buyers_total_instead_of_a_wallet_hold() -> None:
    d = deal(DealState.AWAITING_APPROVAL)
    op = domain.routed_hold(d, hold_transfer(d), CARD)
    assert op is not None and (op.kind, op.amount_cents, op.key) == (
        OpKind.AUTHORIZE,
        11_500,
        "authorize:hold:d1",
    )
    assert domain.routed_hold(d, domain.card_hold(d), CARD) is None  # after authorization: the ledger's
    waiting = domain.authorizing(d, has_payment_method=True, has_payout_account=True)
    assert waiting.deal is not None and waiting.deal.state is DealState.AUTHORIZING
    for card, account, reason in ((False, True, "no_payment_method"), (True, False, "no_payout_account")):
        none = domain.authorizing(d, has_payment_method=card, has_payout_account=account)
        assert none.deal is not None and none.deal.state is DealState.FAILED
        assert isinstance(none.events[-1], EscrowFailed) and none.events[-1].reason == reason


def test_release_captures_then_pays_the_seller_and_refund_voids() -> None:
    d = deal()
    release = domain.ops_for(d, release_transfers(d), CARD)
    assert [(o.kind, o.amount_cents, o.key) for o in release] == [
        (OpKind.CAPTURE, 11_500, "capture:hold:d1"),
        (OpKind.PAYOUT, 9_500, "payout:release:d1"),
    ]
    [void] = domain.ops_for(d, refund_transfers(d), CARD)
    assert (void.kind, void.amount_cents, void.key) == (OpKind.VOID, 11_500, "void:void:d1")
    assert domain.capture_op(d).key == release[0].key  # an early capture and the release's are one


def test_the_authorization_answer_funds_or_declines_once() -> None:
    d = deal(DealState.AUTHORIZING)
    ok = domain.authorized(d, ProviderResult(Answer.OK, "pi_1", status="requires_capture"))
    assert ok.hold == domain.card_hold(d) and ok.hold.debit_account_id == "card:m1:pb"
    no = domain.authorized(d, ProviderResult(Answer.DECLINED, "pi_1", code="insufficient_funds"))
    assert no.deal is not None and no.deal.state is DealState.FAILED
    [event] = no.events
    assert isinstance(event, EscrowFailed) and (event.reason, event.detail) == (
        "payment_declined",
        "insufficient_funds",
    )
    assert domain.authorized(deal(DealState.FUNDED), ProviderResult(Answer.OK, "pi_1")) == domain.Outcome()


@pytest.mark.parametrize(
    ("state", "due_in", "now_before", "window_days", "expected"),
    [
        (DealState.FUNDED, None, 3 * DAY, 3, False),  # not shipped: wait for the last moment
        (DealState.FUNDED, None, timedelta(0), 3, True),  # the last safe moment
        (DealState.SHIPPING, None, 3 * DAY, 1, False),  # ends well before
        (DealState.SHIPPING, None, 3 * DAY, 5, True),  # the window outlasts the authorization
        (DealState.INSPECTING, DAY, 3 * DAY, 3, False),
        (DealState.INSPECTING, 4 * DAY, 3 * DAY, 3, True),
        (DealState.DISPUTED, None, 3 * DAY, 3, True),  # no known end
        (DealState.RELEASED, None, timedelta(0), 3, False),
        (DealState.AUTHORIZING, None, timedelta(0), 3, False),
    ],
)
def test_capture_early_only_when_the_deal_would_outlast_the_authorization(
    state: DealState, due_in: timedelta | None, now_before: timedelta, window_days: int, expected: bool
) -> None:
    rules = CARD.model_copy(update={"inspection_window_seconds": window_days * 86_400})
    d = deal(state, due_at=T0 + due_in if due_in else None)
    assert domain.capture_now(d, T0 + now_before, rules, T0) is expected


def test_capture_before_leaves_a_margin() -> None:
    assert domain.capture_before(T0, 7 * DAY, DAY) == T0 + 6 * DAY


def test_voiding_cancels_an_authorization_and_refunds_a_capture() -> None:
    assert domain.void_move(captured=False) is domain.VoidMove.CANCEL
    assert domain.void_move(captured=True) is domain.VoidMove.REFUND


def test_webhook_facts() -> None:
    assert domain.fact_of("payment_intent.canceled") is Fact.CANCELED
    assert domain.fact_of("charge.dispute.created") is Fact.DISPUTE_OPENED
    assert domain.fact_of("customer.created") is None
    lapsed = domain.on_fact(deal(DealState.SHIPPING), Fact.CANCELED, captured=False, code="")
    assert isinstance(lapsed.events[-1], Refunded) and lapsed.events[-1].reason == "authorization_lapsed"
    assert domain.on_fact(deal(DealState.SHIPPING), Fact.CANCELED, captured=True, code="") == domain.Outcome()
    assert (
        domain.on_fact(deal(DealState.REFUNDED), Fact.CANCELED, captured=False, code="") == domain.Outcome()
    )
    declined = domain.on_fact(deal(DealState.AUTHORIZING), Fact.PAYMENT_FAILED, False, "card_declined")
    assert declined.deal is not None and declined.deal.state is DealState.FAILED


@pytest.mark.parametrize(
    ("reason", "ours"),
    [("product_not_received", DisputeReason.NOT_DELIVERED), ("fraudulent", DisputeReason.CHARGEBACK)],
)
def test_a_chargeback_opens_our_dispute_unless_one_is_open_or_the_deal_ended(
    reason: str, ours: DisputeReason
) -> None:
    opened = domain.on_fact(deal(DealState.INSPECTING), Fact.DISPUTE_OPENED, True, reason)
    assert opened.deal is not None and opened.deal.state is DealState.DISPUTED and opened.deal.due_at is None
    [event] = opened.events
    assert isinstance(event, DisputeOpened) and (event.reason, event.opened_by) == (ours, "payment_provider")
    for state in (DealState.DISPUTED, DealState.RELEASED):
        assert domain.on_fact(deal(state), Fact.DISPUTE_OPENED, True, reason) == domain.Outcome()


def intent(status: str, amount: int = 11_500, received: int = 0, refunded: int = 0) -> IntentView:
    return IntentView("pi_1", status, amount, received, "ch_1", refunded, {"deal_id": "d1"})


def transfer(amount: int = 9_500, destination: str = "acct_s") -> TransferView:
    return TransferView("tr_1", amount, destination, False, {})


@pytest.mark.parametrize(
    ("ledger", "provider", "drifts"),
    [
        (LedgerSide("d1", None, None, None, None), ProviderSide(None, None), 0),
        (LedgerSide("d1", None, None, None, None), ProviderSide(intent("requires_payment_method"), None), 0),
        (LedgerSide("d1", None, None, None, None), ProviderSide(intent("requires_capture"), None), 1),
        (LedgerSide("d1", 11_500, None, None, None), ProviderSide(intent("requires_capture"), None), 0),
        (
            LedgerSide("d1", 11_500, None, None, None),
            ProviderSide(intent("succeeded", received=11_500), None),
            0,
        ),
        (LedgerSide("d1", 11_500, None, None, None), ProviderSide(intent("canceled"), None), 1),
        (
            LedgerSide("d1", 11_500, None, None, None),
            ProviderSide(intent("requires_capture", 9_000), None),
            1,
        ),
        (LedgerSide("d1", 11_500, None, None, None), ProviderSide(None, None), 1),
        (
            LedgerSide("d1", 11_500, "post", 9_500, "acct_s"),
            ProviderSide(intent("succeeded", received=11_500), transfer()),
            0,
        ),
        (
            LedgerSide("d1", 11_500, "post", 9_500, "acct_s"),
            ProviderSide(intent("succeeded", received=11_500), None),
            1,
        ),
        (
            LedgerSide("d1", 11_500, "post", 9_500, "acct_s"),
            ProviderSide(intent("succeeded", received=11_500), transfer(9_000, "acct_x")),
            2,
        ),
        (LedgerSide("d1", 11_500, "void", None, None), ProviderSide(intent("canceled"), None), 0),
        (
            LedgerSide("d1", 11_500, "void", None, None),
            ProviderSide(intent("succeeded", received=11_500, refunded=11_500), None),
            0,
        ),
        (
            LedgerSide("d1", 11_500, "void", None, None),
            ProviderSide(intent("succeeded", received=11_500), None),
            1,
        ),
        (LedgerSide("d1", 11_500, "void", None, None), ProviderSide(intent("canceled"), transfer()), 1),
    ],
)
def test_reconcile_compares_each_ledger_state_with_the_providers_objects(
    ledger: LedgerSide, provider: ProviderSide, drifts: int
) -> None:
    assert len(compare(ledger, provider)) == drifts
