"""Giving way to the window: the run's own work runs below the user's priority.

On 2 cores, 8 builds starting kept the window's GUI thread off the CPU for up to
1.5 s (`make bench-window`: its own CPU time was a tenth of the stall). Workers
(and the CLIs they start, which inherit it) therefore run below the caller's
priority, and so do the supervisor's threads that live in the caller's process
(the window's, or the CLI's): on Linux each thread has a niceness of its own.
Only contention changes: on an idle core they run as fast as before. A priority is
a courtesy, never a reason to fail: errors are ignored.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

log = logging.getLogger(__name__)

NICENESS = 10  # POSIX: how far below the caller's priority
BELOW_NORMAL_PRIORITY_CLASS = 0x4000  # Windows' SetPriorityClass value
THREAD_PRIORITY_BELOW_NORMAL = -1  # Windows' SetThreadPriority value


def _kernel32() -> Any:
    """kernel32 with its argument and result types declared: undeclared, ctypes passes a
    pseudo-handle (-1, -2) as a 32-bit int, which 64-bit Windows does not take for the
    64-bit handle it is, and the call fails without a word."""
    import ctypes
    from ctypes import wintypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.GetCurrentThread.restype = wintypes.HANDLE
    kernel32.SetPriorityClass.argtypes = (wintypes.HANDLE, wintypes.DWORD)
    kernel32.SetPriorityClass.restype = wintypes.BOOL
    kernel32.SetThreadPriority.argtypes = (wintypes.HANDLE, ctypes.c_int)
    kernel32.SetThreadPriority.restype = wintypes.BOOL
    return kernel32


def _windows_said(done: bool, what: str) -> None:
    if not done:
        import ctypes

        log.debug("%s failed: Windows error %s", what, ctypes.get_last_error())  # type: ignore[attr-defined]


def caller_niceness() -> int | None:
    """The caller's niceness, on the caller's own thread (on Linux the value is per thread,
    and a worker may be started, or the fork server it comes from, by a lowered one)."""
    try:
        return None if sys.platform == "win32" else os.getpriority(os.PRIO_PROCESS, 0)
    except OSError:
        return None


def lower_this_process(caller: int | None) -> None:
    """A worker, from its start: NICENESS below `caller` (caller_niceness()), wherever
    the thread that started it stood; below its own when that is not known."""
    try:
        if sys.platform == "win32":
            kernel32 = _kernel32()
            _windows_said(kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), BELOW_NORMAL_PRIORITY_CLASS),
                          "SetPriorityClass")
        elif caller is None:
            os.nice(NICENESS)
        else:
            os.setpriority(os.PRIO_PROCESS, 0, min(19, caller + NICENESS))  # refused when it is a raise
    except OSError:
        pass


def lower_this_thread(caller: int | None) -> None:
    """A thread of the caller's process that does the run's bookkeeping (the supervisor,
    the readers of the workers' pipes): NICENESS below `caller` (a new thread starts at
    the niceness of the thread that made it, which may be lowered already). Linux and
    Windows; elsewhere (macOS has no niceness per thread) nothing changes."""
    try:
        if sys.platform == "win32":
            kernel32 = _kernel32()
            _windows_said(kernel32.SetThreadPriority(kernel32.GetCurrentThread(), THREAD_PRIORITY_BELOW_NORMAL),
                          "SetThreadPriority")
        elif sys.platform.startswith("linux"):
            thread = threading.get_native_id()  # a task of its own, whose niceness is its own
            now = os.getpriority(os.PRIO_PROCESS, thread)
            target = min(19, (now if caller is None else caller) + NICENESS)
            if target > now:
                os.setpriority(os.PRIO_PROCESS, thread, target)
    except OSError:
        pass
