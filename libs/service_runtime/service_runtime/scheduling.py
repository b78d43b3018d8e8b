"""A process's CPU priority: a worker that does background work yields the CPU to the rest.

With the kernel's autogroup scheduling on (Linux's default on many distributions), CPU time is first
shared between sessions, and a process's niceness only ranks it among the processes of its own
session. So a lower priority is set twice: the process's niceness, and its session's scheduling group's
(`/proc/self/autogroup`). On Kubernetes the pods' CPU requests share the node; there this does what
the container allows (often only the niceness) and nothing more.

A process whose session never got a group of its own (one started by init without `setsid`, as a CI
runner's job may be) is in the kernel's default group: its autogroup file is empty, and that group's
niceness cannot be set. Nothing here may fail on that: a lower priority is a courtesy, never a
precondition of the work.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SchedulingGroup:
    """A session's autogroup, from `/proc/<pid>/autogroup` ("/autogroup-64367 nice 0")."""

    name: str
    niceness: int


def scheduling_group(pid: int | str = "self", *, proc: str = "/proc") -> SchedulingGroup | None:
    """The autogroup process `pid` runs in; None where there is none to set: a kernel without
    autogroups, a process gone, or the kernel's default group (an empty file)."""
    try:
        with open(f"{proc}/{pid}/autogroup") as autogroup:
            fields = autogroup.read().split()
    except OSError:
        return None
    if len(fields) != 3 or fields[1] != "nice":
        return None
    try:
        return SchedulingGroup(fields[0], int(fields[2]))
    except ValueError:
        return None


def lower_scheduling_group(
    pid: int | str, niceness: int, *, proc: str = "/proc", unless: SchedulingGroup | None = None
) -> bool:
    """Lower the autogroup of process `pid` to `niceness` if it runs higher; never raise it. `unless`:
    a group to leave alone (a caller's own, when lowering others'). Returns whether the group now runs
    at `niceness` or lower."""
    group = scheduling_group(pid, proc=proc)
    if group is None or (unless is not None and group.name == unless.name):
        return False
    if group.niceness >= niceness:
        return True
    try:
        with open(f"{proc}/{pid}/autogroup", "w") as autogroup:
            autogroup.write(str(niceness))
    except OSError:
        return False
    return True


def lower_cpu_priority(niceness: int, *, own_session: bool = False) -> bool:
    """Run this process (and what it starts) at `niceness` or lower priority, never higher.

    `own_session`: start a session first (a new scheduling group, for a child process that must not
    lower its parent's); without it, the group of the process's current session is lowered, so call it
    only where that session holds nothing but the worker (honcho starts each Procfile entry in a session
    of its own, a container is one; a worker started from an interactive shell lowers that shell's).
    Returns whether a scheduling group was set (False where the kernel has none, or refused)."""
    if niceness <= 0:
        return False
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if niceness > current:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    if own_session:
        try:
            os.setsid()
        except OSError as exc:  # already a session leader
            log.info("no session of its own", extra={"error": repr(exc)})
    if not lower_scheduling_group("self", niceness):
        log.info("no scheduling group of its own to lower", extra={"group": repr(scheduling_group())})
        return False
    return True


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent_pid: int) -> bool:
    """Have the kernel send this process SIGTERM when its parent dies (Linux's PR_SET_PDEATHSIG).

    For helper processes that start a session of their own (`lower_cpu_priority(own_session=True)`):
    they are out of the parent's process group, so a supervisor that stops the parent's group (honcho,
    a test run) would leave them, and their browsers, running. `parent_pid`: the parent it was started
    by (if it is already gone, this process ends now). Returns False where it is not available.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent_pid:  # the parent died before the call: nobody will send the signal
        os.kill(os.getpid(), signal.SIGTERM)
    return True
