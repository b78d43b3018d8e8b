"""A background worker's lower CPU priority (service_runtime.scheduling), in a spawned process."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os

import pytest

from service_runtime.scheduling import lower_cpu_priority


def _lowered_twice(first: int, second: int) -> tuple[bool, int, str, str]:
    with open("/proc/self/autogroup") as autogroup:
        before = autogroup.read()
    done = lower_cpu_priority(first, own_session=True)
    lower_cpu_priority(second)  # never raises the priority back
    with open("/proc/self/autogroup") as autogroup:
        return done, os.getpriority(os.PRIO_PROCESS, 0), before, autogroup.read()


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="the kernel has no autogroups")
def test_a_worker_is_lowered_with_its_scheduling_group_and_never_raised_back() -> None:
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        done, niceness, before, after = pool.submit(_lowered_twice, 6, 3).result(timeout=60)
    assert done and niceness == 6
    assert after.split()[0] != before.split()[0] and after.split()[-1] == "6", (before, after)
    assert not lower_cpu_priority(0)  # 0: nothing to do (and this process is left as it is)
