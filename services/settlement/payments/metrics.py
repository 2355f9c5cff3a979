"""The payment rails' metrics: provider operations by answer, retries, webhooks by verdict."""

from __future__ import annotations

from prometheus_client import Counter

PAYMENT_OPS = Counter(
    "haggle_payment_operations_total", "Payment-provider operations answered", ["kind", "answer"]
)
PAYMENT_RETRIES = Counter(
    "haggle_payment_retries_total", "Payment-provider operations put back after the provider stayed down"
)
WEBHOOKS = Counter("haggle_payment_webhooks_total", "Payment-provider webhooks received", ["verdict"])
