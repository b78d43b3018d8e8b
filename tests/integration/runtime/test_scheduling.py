"""A background worker's lower CPU priority (service_runtime.scheduling), in a spawned process."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import time
from pathlib import Path

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


def _helper_that_dies_with_its_parent(parent_pid: int) -> None:
    from service_runtime.scheduling import die_with_parent, lower_cpu_priority

    lower_cpu_priority(1, own_session=True)  # out of the parent's process group, like a render process
    assert die_with_parent(parent_pid)
    time.sleep(120)


def _parent_of_a_helper(pid_file: str) -> None:
    helper = multiprocessing.get_context("spawn").Process(
        target=_helper_that_dies_with_its_parent, args=(os.getpid(),)
    )
    helper.start()
    with open(pid_file, "w") as f:
        f.write(str(helper.pid))
    time.sleep(120)


def test_a_helper_in_a_session_of_its_own_ends_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "helper.pid"
    parent = multiprocessing.get_context("spawn").Process(target=_parent_of_a_helper, args=(str(pid_file),))
    parent.start()
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the helper did not start"
            time.sleep(0.05)
        helper = int(pid_file.read_text())
        time.sleep(2)  # the helper has set itself up (spawn start + imports)
        assert _alive(helper)
        os.kill(parent.pid or 0, signal.SIGKILL)  # no cleanup of its own: the kernel's signal only
        while _alive(helper):
            assert time.monotonic() < deadline + 60, "the helper outlived its parent"
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.join()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
