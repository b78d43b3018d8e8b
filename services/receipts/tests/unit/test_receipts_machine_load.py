"""The renderer's measure of the rest of the machine's CPU (adapters/machine_load.py), on a /proc of our own."""

from __future__ import annotations

import math
from pathlib import Path

from receipts.adapters.machine_load import CLOCK_TICKS, OthersLoad, machine_busy_ticks, tree_ticks


class FakeProc:
    """/proc/stat and /proc/<pid>/stat, as the kernel writes them (a name with a space and a parenthesis)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def machine(self, user: int, system: int, idle: int, steal: int = 0) -> None:
        # cpu  user nice system idle iowait irq softirq steal guest guest_nice
        line = f"cpu  {user} 0 {system} {idle} 7 0 0 {steal} 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 1\n"
        (self.root / "stat").write_text(line)

    def process(self, pid: int, ppid: int, utime: int, stime: int, name: str = "python") -> None:
        (self.root / str(pid)).mkdir(exist_ok=True)
        rest = " ".join(["0"] * 9)  # pgrp ... cmajflt
        text = f"{pid} ({name}) S {ppid} {rest} {utime} {stime} 0 0 20 0 1 0 1 1 1\n"
        (self.root / str(pid) / "stat").write_text(text)


def test_busy_time_and_a_process_trees_time(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    proc.machine(user=1000, system=300, idle=5000, steal=20)
    proc.process(10, 1, 100, 10, name="receipts worker")
    proc.process(11, 10, 200, 20, name="python (render)")  # a render process
    proc.process(12, 11, 300, 30, name="chromium")  # its Chromium
    proc.process(20, 1, 999, 99, name="postgres")  # not ours
    (tmp_path / "13").mkdir()  # a process that ended between listing and reading: skipped
    assert machine_busy_ticks(tmp_path) == 1000 + 300 + 20
    assert tree_ticks(tmp_path, 10) == 110 + 220 + 330
    assert tree_ticks(tmp_path, 12) == 330


def test_the_others_cores_leave_out_this_process_tree_and_wait_for_a_whole_window(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    now = [100.0]
    load = OthersLoad(proc=tmp_path, root=10, min_window_s=1.0, clock=lambda: now[0])
    proc.machine(user=1000, system=0, idle=0)
    proc.process(10, 1, 100, 0)
    proc.process(11, 10, 100, 0)
    assert load.cores() == 0.0  # no window yet

    # Two seconds: the machine did 3 cores·s of work, of which the tree did 1 core·s: others, 1 core.
    now[0] += 2.0
    busy = 1000 + 3 * CLOCK_TICKS
    proc.machine(user=busy, system=0, idle=0)
    proc.process(11, 10, 100 + CLOCK_TICKS, 0)
    assert math.isclose(load.cores(), 1.0)

    # Asked again within the window: the same answer, /proc not read.
    now[0] += 0.5
    proc.machine(user=busy + 6 * CLOCK_TICKS, system=0, idle=0)  # 6 cores·s more (read at the next window)
    assert math.isclose(load.cores(), 1.0)

    # The render process ended, its ticks gone from the tree: that loss is not others' work.
    now[0] += 1.0  # 1.5 s since the last measure
    (tmp_path / "11" / "stat").unlink()
    (tmp_path / "11").rmdir()
    assert math.isclose(load.cores(), 6 / 1.5)


def test_on_this_machine_a_measure_is_a_number_of_cores() -> None:
    load = OthersLoad(min_window_s=0.0)
    load.cores()
    sum(i * i for i in range(200_000))
    assert 0.0 <= load.cores() < 4096


def test_without_a_proc_to_read_nothing_is_busy(tmp_path: Path) -> None:
    load = OthersLoad(proc=tmp_path / "none", min_window_s=0.0)
    assert load.cores() == 0.0 and load.cores() == 0.0  # the renderer never waits on a measure it can't take
