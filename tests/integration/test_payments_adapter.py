"""The Stripe adapter against the stateful fake, no services: each call replayed, each error retried.

Every operation sent twice with its key finds the first answer (one object at
Stripe), and an answer lost on the way (a 500 after the call took effect, or a
409 while the first request is still in flight) is retried with the same key.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from haggle.runtime.settings import Settings
from haggle_lab.testing.fake_stripe import FakeStripe
from services.settlement.payments.domain import Answer, OpKind, PaymentOp
from services.settlement.payments.port import Party
from services.settlement.payments.stripe_rails import StripeRails, onboard_buyer, onboard_seller

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeStripe]:
    with FakeStripe("sk_test_adapter", "whsec_adapter") as found:
        yield found


@pytest.fixture(scope="module")
def rails(fake: FakeStripe) -> StripeRails:
    settings = Settings(stripe_api_key=fake.api_key, stripe_api_base=fake.base_url)
    return StripeRails(settings)


def op(kind: OpKind, deal_id: str, transfer_id: str, amount: int = 21_500) -> PaymentOp:
    return PaymentOp(kind, "m-adapter", deal_id, transfer_id, amount)


async def parties(rails: StripeRails, name: str) -> tuple[Party, Party]:
    customer, method = await onboard_buyer(rails, "m-adapter", f"{name}-b", "pm_card_visa")
    account, _ = await onboard_seller(rails, "m-adapter", f"{name}-s", "https://x.invalid/")
    return Party(customer, method), Party(connected_account_id=account)


async def test_every_operation_replayed_with_its_key_moves_money_once(
    fake: FakeStripe, rails: StripeRails
) -> None:
    buyer, seller = await parties(rails, "replay")
    authorize = op(OpKind.AUTHORIZE, "d-replay", "hold:d-replay")
    first, again = await rails.authorize(authorize, buyer), await rails.authorize(authorize, buyer)
    assert first == again and first.answer is Answer.OK
    capture = op(OpKind.CAPTURE, "d-replay", "hold:d-replay")
    assert await rails.capture(capture, str(first.provider_id)) == await rails.capture(
        capture, str(first.provider_id)
    )
    payout = op(OpKind.PAYOUT, "d-replay", "release:d-replay", 19_000)
    paid = await rails.payout(payout, seller, first.charge_id)
    assert paid == await rails.payout(payout, seller, first.charge_id)
    void = op(OpKind.VOID, "d-replay", "void:d-replay")
    refunded = await rails.void(void, str(first.provider_id), captured=True)
    assert refunded == await rails.void(void, str(first.provider_id), captured=True)
    deal = [o for o in fake.objects.values() if o.get("metadata", {}).get("deal_id") == "d-replay"]
    assert sorted(o["object"] for o in deal) == ["charge", "payment_intent", "refund", "transfer"]


@pytest.mark.parametrize("status", [500, 409])
async def test_a_lost_answer_is_retried_with_the_same_key(
    fake: FakeStripe, rails: StripeRails, status: int
) -> None:
    buyer, _ = await parties(rails, f"lost{status}")
    deal_id = f"d-lost{status}"
    fake.fail_next(status)
    result = await rails.authorize(op(OpKind.AUTHORIZE, deal_id, f"hold:{deal_id}"), buyer)
    assert result.answer is Answer.OK
    assert fake.keys_sent("/v1/payment_intents").count(f"authorize:hold:{deal_id}") == 2
    assert len([o for o in fake.of_kind("payment_intent") if o["metadata"]["deal_id"] == deal_id]) == 1


async def test_a_declined_card_is_an_answer_not_an_error_to_retry(
    fake: FakeStripe, rails: StripeRails
) -> None:
    buyer, _ = await parties(rails, "declined")
    declined = Party(buyer.customer_id, "pm_card_chargeDeclined")
    result = await rails.authorize(op(OpKind.AUTHORIZE, "d-declined", "hold:d-declined"), declined)
    assert (result.answer, result.code) == (Answer.DECLINED, "generic_decline")
    assert fake.keys_sent("/v1/payment_intents").count("authorize:hold:d-declined") == 1


async def test_cancel_after_a_lapse_and_capture_after_a_cancel_are_answers(
    fake: FakeStripe, rails: StripeRails
) -> None:
    buyer, _ = await parties(rails, "lapse")
    first = await rails.authorize(op(OpKind.AUTHORIZE, "d-lapse", "hold:d-lapse"), buyer)
    fake.lapse(str(first.provider_id))
    voided = await rails.void(
        op(OpKind.VOID, "d-lapse", "void:d-lapse"), str(first.provider_id), captured=False
    )
    assert (voided.answer, voided.status) == (Answer.OK, "canceled")
    captured = await rails.capture(op(OpKind.CAPTURE, "d-lapse", "hold:d-lapse"), str(first.provider_id))
    assert captured.answer is Answer.GONE
