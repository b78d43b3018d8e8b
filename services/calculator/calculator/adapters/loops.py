"""The retry-with-backoff of calculator's background parts (billing run, reconciler, rating agent start).

`run_turns` repeats a turn until stopped: a turn that fails (PostgreSQL or Kafka away) is logged and
retried after a growing pause (0.2 s doubling up to 5 s, reset by the next turn that works); a turn that
found nothing to do waits `idle()` before the next. `until_done` retries one action the same way until it
succeeds (the faust app's start when Kafka is down at start-up).

`Wakeup` is the `idle()` of a loop that PostgreSQL can wake: it LISTENs on a channel on a connection of its
own and waits for a notification or the idle timeout, whichever comes first (without a listener, e.g.
before it connected or while the database is away, it is a plain sleep).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from psycopg import AsyncConnection, sql

log = logging.getLogger(__name__)

ConnInfo = str | Callable[[], str] | Callable[[], Awaitable[str]]  # as `AsyncConnectionPool.conninfo`


class Backoff:
    """0.2 s, 0.4 s, … up to `cap`; `reset()` after a success."""

    def __init__(self, initial: float = 0.2, cap: float = 5.0) -> None:
        self.initial = initial
        self.cap = cap
        self.delay = initial

    def reset(self) -> None:
        self.delay = self.initial

    async def pause(self) -> None:
        await asyncio.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


async def run_turns(
    turn: Callable[[], Awaitable[object]],
    *,
    what: str,
    stopping: Callable[[], bool],
    idle: Callable[[], Awaitable[None]],
    backoff: Backoff | None = None,
) -> None:
    """Run `turn()` until `stopping()`; a falsy result (nothing done) waits `idle()`, an error backs off."""
    pause = backoff or Backoff()
    while not stopping():
        try:
            worked = await turn()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed; retrying: %r", what, exc, extra={"error": repr(exc)})
            await pause.pause()
            continue
        pause.reset()
        if not worked and not stopping():
            await idle()


async def until_done(
    action: Callable[[], Awaitable[None]],
    *,
    what: str,
    stopping: Callable[[], bool] = lambda: False,
    backoff: Backoff | None = None,
    on_failure: Callable[[], Awaitable[None]] | None = None,
) -> bool:
    """Retry `action()` with backoff until it succeeds (True) or `stopping()` (False)."""
    pause = backoff or Backoff()
    while not stopping():
        try:
            await action()
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("%s failed; retrying: %r", what, exc, extra={"error": repr(exc)})
            if on_failure is not None:
                with contextlib.suppress(Exception):
                    await on_failure()
            await pause.pause()
    return False


class Wakeup:
    """An idle wait that a PostgreSQL NOTIFY on `channel` ends early (see the module doc)."""

    def __init__(self, conninfo: ConnInfo, channel: str, timeout_s: float) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._timeout_s = timeout_s
        self._event = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._listen(), name=f"listen-{self._channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def set(self) -> None:
        self._event.set()

    async def __call__(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), self._timeout_s)
        self._event.clear()

    async def _listen(self) -> None:
        backoff = Backoff(cap=10.0)
        while True:
            try:
                # A connection of its own: a LISTENing connection must not go back to the pool.
                conninfo = self._conninfo if isinstance(self._conninfo, str) else self._conninfo()
                if not isinstance(conninfo, str):
                    conninfo = await conninfo
                async with await AsyncConnection.connect(conninfo, autocommit=True) as conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    backoff.reset()
                    async for _ in conn.notifies():
                        self._event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.debug("listening on %s failed: %r", self._channel, exc)
                await backoff.pause()
