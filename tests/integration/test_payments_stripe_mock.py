"""Every request the Stripe adapter makes, sent to stripe-mock (Stripe's official mock server).

stripe-mock validates each request against Stripe's OpenAPI specification
(unknown parameters, wrong types and bad enum values get a 400) but answers
with fixed objects, so this checks shapes; the flows run against the fake.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import stripe

from haggle.runtime.settings import Settings
from services.settlement.payments.domain import Answer, OpKind, PaymentOp
from services.settlement.payments.port import Party
from services.settlement.payments.stripe_rails import StripeRails, onboard_buyer, onboard_seller
from tests.integration.payments_support import stripe_mock

pytestmark = pytest.mark.timeout(900)  # the first run builds stripe-mock with `go install`


@pytest.fixture(scope="module")
def rails() -> Iterator[StripeRails]:
    with stripe_mock() as url:
        settings = Settings(stripe_api_key="sk_test_123", stripe_api_base=url, payments_retry_seconds=2)
        yield StripeRails(settings)


def op(kind: OpKind, transfer_id: str = "hold:d1") -> PaymentOp:
    return PaymentOp(kind, "m1", "d1", transfer_id, 21_500)


async def test_onboarding_requests_are_accepted(rails: StripeRails) -> None:
    customer, method = await onboard_buyer(rails, "m1", "p1", "pm_card_visa")
    account, url = await onboard_seller(rails, "m1", "p2", "https://example.com/back")
    assert customer.startswith("cus_") and method.startswith("pm_")
    assert account.startswith("acct_") and url.startswith("https://")


async def test_payment_requests_are_accepted(rails: StripeRails) -> None:
    # stripe-mock's fixed intent is never 'requires_capture', so authorize reads as declined: the
    # request itself was accepted (a rejected one raises).
    authorized = await rails.authorize(op(OpKind.AUTHORIZE), Party("cus_123", "pm_123"))
    assert authorized.provider_id and authorized.provider_id.startswith("pi_")
    assert (await rails.capture(op(OpKind.CAPTURE), "pi_123")).provider_id == "pi_123"
    payout = await rails.payout(op(OpKind.PAYOUT, "release:d1"), Party(connected_account_id="acct_1"), "ch_1")
    assert payout.answer is Answer.OK and str(payout.provider_id).startswith("tr_")
    assert (await rails.void(op(OpKind.VOID, "void:d1"), "pi_123", captured=False)).answer is Answer.OK
    refund = await rails.void(op(OpKind.VOID, "void:d1"), "pi_123", captured=True)
    assert str(refund.provider_id).startswith("re_")


async def test_reconcile_requests_are_accepted(rails: StripeRails) -> None:
    assert (await rails.intent("pi_123")).intent_id == "pi_123"
    assert (await rails.transfer("tr_123")).transfer_id == "tr_123"
    assert isinstance(await rails.intents_of("m1"), list)


async def test_stripe_mock_refuses_a_malformed_request(rails: StripeRails) -> None:
    """The control: the same server does reject a request outside the API's shape."""
    params: dict[str, object] = {"amount": 100, "currency": "usd", "capture_method": "sometimes"}
    with pytest.raises(stripe.InvalidRequestError):
        await rails.client.v1.payment_intents.create_async(params)  # type: ignore[arg-type]
