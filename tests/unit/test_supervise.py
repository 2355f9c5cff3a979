"""The background-loop supervisor: restarts a failing loop and counts it, lets a finished loop end,
and is stopped by cancellation without a restart."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY
from tenacity import wait_none

from haggle.runtime.supervise import supervise


def restarts(loop: str) -> float:
    return REGISTRY.get_sample_value("haggle_background_restarts_total", {"loop": loop}) or 0.0


async def test_a_failing_loop_is_restarted_and_counted() -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError("database went away")

    before = restarts("flaky")
    await supervise("flaky", flaky, wait=wait_none())
    assert runs == 3
    assert restarts("flaky") == before + 2


async def test_cancelling_stops_the_loop_without_a_restart() -> None:
    started = asyncio.Event()
    runs = 0

    async def forever() -> None:
        nonlocal runs
        runs += 1
        started.set()
        await asyncio.Event().wait()

    before = restarts("forever")
    task = asyncio.create_task(supervise("forever", forever, wait=wait_none()))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert runs == 1 and restarts("forever") == before
