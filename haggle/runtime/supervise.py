"""One supervisor for every background loop of a service (timers, jobs, listeners, schedulers).

`supervise(name, body)` runs `body`; when it raises, the error is logged, counted in
`haggle_background_restarts_total{loop}`, and `body` starts again after a backoff that grows
with consecutive failures (tenacity, the project's one retry library). Cancellation is never
caught: stopping the service cancels the task and the loop ends cleanly. A loop's body holds
no `try … except … sleep` of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from prometheus_client import Counter
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter
from tenacity.wait import wait_base

log = logging.getLogger(__name__)

RESTARTS = Counter("haggle_background_restarts_total", "Background loops restarted after an error", ["loop"])


def _restarting(loop: str) -> Callable[[RetryCallState], None]:
    def note(state: RetryCallState) -> None:
        RESTARTS.labels(loop).inc()
        error = state.outcome.exception() if state.outcome is not None else None
        log.error(
            "background loop failed; restarting",
            exc_info=error,
            extra={"loop": loop, "attempt": state.attempt_number},
        )

    return note


async def supervise(
    loop: str,
    body: Callable[[], Awaitable[None]],
    wait: wait_base | None = None,
) -> None:
    """Run `body` until it returns (or the task is cancelled), restarting it on any error."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception_type(Exception),
        wait=wait or wait_exponential_jitter(multiplier=0.5, max=30.0),
        before_sleep=_restarting(loop),
        reraise=True,
    ):
        with attempt:
            await body()
