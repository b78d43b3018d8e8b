"""Stopping a Kafka client while the broker is down (issue 11's fault campaign: a worker exited with status 1).

aiokafka's consumer.stop() awaits its own fetch task; when the broker went away that task may have been
cancelled, and stop() re-raises its CancelledError into the caller although nobody cancelled the caller.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from service_runtime.consumers import stop_quietly


class _ClientWhoseStopRaises:
    def __init__(self, error: BaseException | None, delay_s: float = 0.0) -> None:
        self.error, self.delay_s, self.stopped = error, delay_s, False

    async def stop(self) -> None:
        await asyncio.sleep(self.delay_s)
        self.stopped = True
        if self.error is not None:
            raise self.error


async def test_a_cancelled_error_from_the_clients_own_task_is_swallowed() -> None:
    client = _ClientWhoseStopRaises(asyncio.CancelledError())
    await stop_quietly(cast(Any, client))  # returns: the runner's retry loop goes on
    assert client.stopped


async def test_other_failures_of_stop_are_swallowed() -> None:
    await stop_quietly(cast(Any, _ClientWhoseStopRaises(RuntimeError("broker gone"))))


async def test_a_real_cancellation_of_the_caller_still_cancels() -> None:
    task = asyncio.create_task(stop_quietly(cast(Any, _ClientWhoseStopRaises(None, delay_s=30))))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
