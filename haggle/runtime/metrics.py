"""The plumbing metrics every service exports. Domain counters live with each service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

MESSAGES_IN = Counter("haggle_messages_in_total", "Messages consumed", ["service", "topic", "type"])
MESSAGES_OUT = Counter("haggle_messages_out_total", "Messages published", ["service", "topic"])
DUPLICATES = Counter("haggle_duplicates_total", "Messages skipped as already handled", ["service", "topic"])
DLQ = Counter("haggle_dlq_total", "Messages sent to a dead-letter topic", ["service", "topic", "reason"])
RETRIES = Counter("haggle_handler_retries_total", "Handler retries", ["service", "topic", "kind"])
HANDLER_SECONDS = Histogram(
    "haggle_handler_seconds",
    "Time in one message's handler, inside its transaction",
    ["service", "topic", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
RECORD_AGE = Histogram(
    "haggle_record_age_seconds",
    "Seconds from a record's timestamp (the broker's append on a command topic, the producer's send"
    " on an event topic) to a stage of its handling: read (its batch came back from the broker),"
    " started (its handler began)",
    ["service", "topic", "stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 60),
)
BATCH_FALLBACKS = Counter(
    "haggle_batch_fallbacks_total",
    "Batches rolled back because one handler failed, then handled record by record",
    ["service", "topic"],
)
BATCH_SIZE = Histogram(
    "haggle_batch_size",
    "Records handled in one transaction",
    ["service", "topic"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
OUTBOX_PENDING = Gauge("haggle_outbox_pending", "Outbox rows not yet published", ["service"])
RELAY_BATCH = Histogram(
    "haggle_relay_batch_size",
    "Rows published per relay round",
    ["service"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
)
CONSUMER_LAG = Gauge("haggle_consumer_lag", "Messages behind the partition end", ["service", "topic"])
