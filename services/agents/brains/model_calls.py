"""What every model-backed brain shares: one retry policy, token usage, its metrics and a price table.

One retry policy for every model client: the SDKs' own retries are off
(`SDK_MAX_RETRIES = 0`, set where each client is built), and `call_model`
retries overload, rate limits, 5xx and connection errors `attempts` times in
all with exponential backoff (tenacity), then raises `BrainUnavailable`. So a
turn makes at most `attempts` HTTP calls per model request, never SDK × ours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from prometheus_client import Counter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from services.agents.domain.brain import BrainUnavailable
from services.agents.domain.usage import LlmUsage as LlmUsage  # re-exported for the brains

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

SDK_MAX_RETRIES = 0
ATTEMPTS = 3
BACKOFF_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 30.0

LLM_CALLS = Counter("haggle_llm_calls_total", "Model API calls that returned an answer", ["model"])
LLM_TOKENS = Counter("haggle_llm_tokens_total", "Tokens used by the LLM brains", ["model", "kind"])
LLM_RETRIES = Counter("haggle_llm_retries_total", "Model API calls retried by the brain", ["model", "kind"])
LLM_BAD_REPLIES = Counter(
    "haggle_llm_bad_replies_total",
    "Answers without a usable tool call",
    ["model", "problem"],
)


def record_usage(model: str, usage: LlmUsage) -> None:
    LLM_CALLS.labels(model).inc()
    for kind, count in (
        ("input", usage.input_tokens),
        ("output", usage.output_tokens),
        ("cache_read", usage.cache_read_input_tokens),
        ("cache_creation", usage.cache_creation_input_tokens),
    ):
        LLM_TOKENS.labels(model, kind).inc(count)


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float


PRICES: dict[str, Price] = {
    # Anthropic list prices (cache write = 1.25 x input, cache read = 0.1 x input).
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10, 1.25),
    "claude-sonnet-4-6": Price(3.00, 15.00, 0.30, 3.75),
    "claude-opus-4-5": Price(5.00, 25.00, 0.50, 6.25),
    # OpenAI list prices (cached input at its discount; no cache-write charge).
    "gpt-4o-mini": Price(0.15, 0.60, 0.075, 0.0),
    "gpt-4o": Price(2.50, 10.00, 1.25, 0.0),
}
"""A stated table, not a live one: an unknown model (a local one) costs nothing here."""


def dollars(model: str, usage: LlmUsage) -> float:
    price = PRICES.get(model)
    if price is None:
        return 0.0
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_read_input_tokens * price.cache_read
        + usage.cache_creation_input_tokens * price.cache_write
    ) / 1_000_000


async def call_model(
    call: Callable[[], Awaitable[T]],
    *,
    model: str,
    retryable: tuple[type[BaseException], ...],
    kind: Callable[[BaseException], str],
    attempts: int = ATTEMPTS,
    backoff_seconds: float = BACKOFF_SECONDS,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """`call()` with the one retry policy; `BrainUnavailable` once `attempts` calls have failed."""

    def count(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        LLM_RETRIES.labels(model, kind(error) if error is not None else "unknown").inc()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=backoff_seconds, max=MAX_BACKOFF_SECONDS),
        retry=retry_if_exception_type(retryable),
        sleep=sleep,
        before_sleep=count,
        reraise=True,
    )
    try:
        return await retrying(call)
    except retryable as exc:
        raise BrainUnavailable(f"{model}: {kind(exc)} after {attempts} attempts") from exc
