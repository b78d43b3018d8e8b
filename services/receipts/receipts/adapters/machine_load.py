"""How much CPU the rest of the machine uses: everything but this process and what it started (its render
processes and their Chromium). The renderer yields to it (`PdfRenderer`, `render_yield_above_cores`).

Niceness and SCHED_IDLE did not keep a PDF backlog from slowing the ledger's ingest by ~20 % on the 2-core
machine (measured, see the ledger's README): a render on one core still costs the other core's work through
shared caches and memory. Not rendering while others are busy does: with a backlog, 4,341 → 5,215–5,272
events/s.

From /proc: the machine's busy time (/proc/stat's first line) minus this process tree's (utime + stime of
each /proc/<pid>/stat), over a window of at least `min_window_s`. On Kubernetes /proc/stat is the node's,
not the pod's: there the pod's CPU request shares the node, so leave yielding off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine_busy_ticks(proc: Path) -> int:
    """All CPUs' busy time since boot: user, nice, system, irq, softirq, steal (guest is within user)."""
    fields = (proc / "stat").read_text().split("\n", 1)[0].split()
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(f) for f in fields[1:9])
    return user + nice + system + irq + softirq + steal


def process_tree(proc: Path, root: int) -> dict[int, int]:
    """`root` and every process descending from it, each with its CPU time so far (utime + stime, ticks)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in os.listdir(proc):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                after_name = (proc / entry / "stat").read_bytes().rsplit(b")", 1)[1].split()
                # after the name: state(0) ppid(1) ... utime(11) stime(12)
                parents[int(entry)] = int(after_name[1])
                ticks[int(entry)] = int(after_name[11]) + int(after_name[12])
    tree = {root}
    for _ in range(len(parents)):  # a child's pid is usually above its parent's; loop until stable
        grown = {pid for pid, parent in parents.items() if parent in tree} - tree
        if not grown:
            break
        tree |= grown
    return {pid: ticks.get(pid, 0) for pid in tree}


def tree_ticks(proc: Path, root: int) -> int:
    """CPU time (utime + stime) of `root` and every process descending from it."""
    return sum(process_tree(proc, root).values())


class OthersLoad:
    """Cores the rest of the machine used over the last window (at least `min_window_s` long; measured
    again when asked after that). 0.0 until a first window has passed."""

    def __init__(
        self,
        *,
        proc: Path = Path("/proc"),
        root: int | None = None,
        min_window_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc, self.root, self.min_window_s, self.clock = proc, root or os.getpid(), min_window_s, clock
        self._last: tuple[float, int, int] | None = None
        self._cores = 0.0
        self._lock = threading.Lock()  # the renderer's slots ask from threads of their own
        self._warned = False

    def cores(self) -> float:
        with self._lock:
            try:
                return self._measure()
            except (OSError, ValueError, IndexError) as exc:  # no /proc here: never a reason to wait
                if not self._warned:
                    self._warned = True
                    log.warning("cannot measure the machine's load; not yielding", extra={"error": repr(exc)})
                return 0.0

    def _measure(self) -> float:
        now = self.clock()
        if self._last is not None and now - self._last[0] < self.min_window_s:
            return self._cores
        busy, own = machine_busy_ticks(self.proc), tree_ticks(self.proc, self.root)
        if self._last is not None:
            then, busy_then, own_then = self._last
            # A child that ended takes its ticks with it: never count the tree's loss as others' work.
            others = (busy - busy_then) - max(own - own_then, 0)
            self._cores = max(others, 0) / CLOCK_TICKS / (now - then)
        self._last = (now, busy, own)
        return self._cores
