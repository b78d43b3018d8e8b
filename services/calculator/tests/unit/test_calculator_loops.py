"""The background loops' retry helper (`adapters/loops.py`): a failing turn or start is retried with a
growing pause instead of ending the loop (or the worker)."""

from __future__ import annotations

import asyncio

from calculator.adapters.loops import Backoff, run_turns, until_done


async def test_run_turns_retries_failed_turns_and_idles_when_there_is_nothing_to_do() -> None:
    results: list[object] = [RuntimeError("db away"), RuntimeError("db away"), True, False, True, False, 1]
    seen: list[object] = []
    idles = 0

    async def turn() -> object:
        outcome = results.pop(0)
        seen.append(outcome)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def idle() -> None:
        nonlocal idles
        idles += 1

    backoff = Backoff(initial=0.001, cap=0.002)
    await run_turns(turn, what="test", stopping=lambda: not results, idle=idle, backoff=backoff)
    assert len(seen) == 7  # the two failures did not end the loop
    assert idles == 2  # after each turn that found nothing to do
    assert backoff.delay == backoff.initial  # reset by the turn that worked


async def test_until_done_retries_until_the_action_succeeds_or_is_stopped() -> None:
    attempts = 0
    discarded = 0

    async def start() -> None:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError("kafka away")

    async def discard() -> None:
        nonlocal discarded
        discarded += 1

    assert await until_done(start, what="test", backoff=Backoff(0.001, 0.002), on_failure=discard)
    assert (attempts, discarded) == (3, 2)

    stop = asyncio.Event()

    async def never() -> None:
        stop.set()
        raise ConnectionError("kafka away")

    assert not await until_done(never, what="test", stopping=stop.is_set, backoff=Backoff(0.001, 0.002))


async def test_backoff_doubles_up_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=0.001, cap=0.004)
    delays = []
    for _ in range(4):
        delays.append(backoff.delay)
        await backoff.pause()
    assert delays == [0.001, 0.002, 0.004, 0.004]
    backoff.reset()
    assert backoff.delay == 0.001
