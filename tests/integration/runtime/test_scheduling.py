"""A background worker's lower CPU priority (service_runtime.scheduling), in a spawned process."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from service_runtime.scheduling import (
    SchedulingGroup,
    lower_cpu_priority,
    lower_scheduling_group,
    scheduling_group,
)


def _lowered_twice(
    first: int, second: int
) -> tuple[bool, int, SchedulingGroup | None, SchedulingGroup | None]:
    before = scheduling_group()
    done = lower_cpu_priority(first, own_session=True)
    lower_cpu_priority(second)  # never raises the priority back
    return done, os.getpriority(os.PRIO_PROCESS, 0), before, scheduling_group()


@pytest.mark.skipif(not os.path.exists("/proc/self/autogroup"), reason="the kernel has no autogroups")
def test_a_worker_is_lowered_with_its_scheduling_group_and_never_raised_back() -> None:
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as pool:
        done, niceness, before, after = pool.submit(_lowered_twice, 6, 3).result(timeout=60)
    assert done and niceness == 6
    # `before` is None where the test runs in the kernel's default group (started without a session)
    assert after is not None and after.niceness == 6, (before, after)
    assert before is None or after.name != before.name, (before, after)  # a group of its own
    assert not lower_cpu_priority(0)  # 0: nothing to do (and this process is left as it is)


def _fake_proc(tmp_path: Path, autogroups: dict[str, str]) -> str:
    for pid, text in autogroups.items():
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "autogroup").write_text(text)
    return str(tmp_path)


def test_a_scheduling_group_is_read_from_the_autogroup_file_and_none_when_there_is_none(
    tmp_path: Path,
) -> None:
    proc = _fake_proc(
        tmp_path,
        {
            "self": "/autogroup-64367 nice 0\n",
            "10": "",  # the kernel's default group: a process started by init without a session
            "11": "/autogroup-7 nice x\n",
        },
    )
    assert scheduling_group(proc=proc) == SchedulingGroup("/autogroup-64367", 0)
    assert scheduling_group(10, proc=proc) is None
    assert scheduling_group(11, proc=proc) is None
    assert scheduling_group(12, proc=proc) is None  # gone


def test_a_scheduling_group_is_lowered_never_raised_and_the_default_group_left_alone(tmp_path: Path) -> None:
    proc = _fake_proc(
        tmp_path,
        {
            "self": "/autogroup-1 nice 0\n",
            "20": "/autogroup-2 nice 3\n",
            "21": "/autogroup-3 nice 12\n",
            "22": "",
        },
    )
    own = scheduling_group(proc=proc)
    assert lower_scheduling_group(20, 7, proc=proc)
    assert (tmp_path / "20" / "autogroup").read_text() == "7"  # what the kernel is told
    assert lower_scheduling_group(21, 7, proc=proc)  # already lower: left as it is
    assert (tmp_path / "21" / "autogroup").read_text() == "/autogroup-3 nice 12\n"
    assert not lower_scheduling_group(22, 7, proc=proc)  # no group to set, and no error
    assert (tmp_path / "22" / "autogroup").read_text() == ""
    assert not lower_scheduling_group("self", 7, proc=proc, unless=own)  # the caller's own: left alone
    assert (tmp_path / "self" / "autogroup").read_text() == "/autogroup-1 nice 0\n"


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
