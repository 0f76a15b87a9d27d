"""CPU priority of background work. A desktop indexer's work should wait for whatever
the person is doing: on Linux a thread can run under the idle scheduling policy
(`SCHED_IDLE`, as desktop indexers such as GNOME's Tracker do), which hands the CPU to an
ordinary thread the moment it wakes (the window's thread, after every event). Without it,
a higher nice value."""

from __future__ import annotations

import contextlib
import os
import sys
import threading

NICENESS = 10

_idle = False
_lowered = threading.local()


def use_idle_policy(on: bool = True) -> None:
    """Whether background work uses the idle policy where there is one (the app: its
    background work must never keep the window waiting for a CPU). Off by default: a
    command-line run has no window to wait for, and under the idle policy its work
    stalls whenever anything else on the machine keeps the CPUs busy."""
    global _idle
    _idle = on


def idle_policy_used() -> bool:
    return _idle


def lower_this_thread() -> None:
    """Lower the calling thread's CPU priority, once (threads it starts inherit it): the
    idle policy when `use_idle_policy` is on, otherwise NICENESS more than now. Linux
    only, where a thread has a priority of its own; best effort."""
    if sys.platform != "linux" or getattr(_lowered, "done", False):
        return
    _lowered.done = True
    _lower(threading.get_native_id())


def lower_this_process() -> None:
    """For a process started to do background work: every thread it has (numpy's BLAS
    starts some on import) and every thread it starts later."""
    if sys.platform == "linux":
        _lowered.done = True
        for task in os.listdir("/proc/self/task"):
            _lower(int(task))
    elif hasattr(os, "nice"):
        with contextlib.suppress(OSError):
            os.nice(NICENESS)


def _lower(tid: int) -> None:
    with contextlib.suppress(AttributeError, OSError):
        if _idle:
            os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
        else:
            nice = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, nice + NICENESS))
