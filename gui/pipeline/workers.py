"""Worker processes as the supervisor sees them: how they start, and how they are heard.

Start method: on Linux and macOS the fork server, with the worker's modules
preloaded, so a new worker is a fork of a process that already imported the
Docker SDK and starts in milliseconds; on Windows `spawn`, the only method
there. DOCKPOOL_START_METHOD=spawn selects spawn on Linux too, so the tests
cover Windows' behaviour.

Each worker has a reader thread that turns its event pipe into entries of the
supervisor's one Inbox. The supervisor thus never calls
multiprocessing.connection.wait, which takes at most 63 handles on Windows,
however many workers run (the limits allow 64 + 64); it reads workers fairly,
in arrival order; and a worker's death arrives as an entry (its pipe closes).
A worker may have at most MAX_UNREAD log lines (and other records) waiting: a
build that prints faster than the supervisor reads then waits on its pipe (and
the engine's stream behind it) instead of growing the supervisor's memory.
"""

from __future__ import annotations

import importlib.machinery
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from pathlib import Path
from queue import SimpleQueue
from typing import Any

from . import events as ev
from . import scratch
from . import worker
from .priority import lower_this_thread
from .tasks import BuildTask, PushTask, SlotGranted, WorkerConfig

log = logging.getLogger(__name__)

START_METHOD_ENV = "DOCKPOOL_START_METHOD"
STOP_GRACE = 2.0
CLOSED = object()  # an inbox entry: the worker's event pipe closed (it exited or was killed)
MAX_UNREAD = 10_000  # a worker's lines (see events.record_lines) waiting in the inbox before its reader waits
UNREAD_CHECK = 0.5  # how often a reader waiting for room looks whether the inbox closed
# The frozen bundle's Qt-free worker executable (packaging/dockpool.spec).
WORKER_EXECUTABLE = "dockpool-worker.exe" if sys.platform == "win32" else "dockpool-worker"

# multiprocessing never re-runs a main module named as a package's __main__ in a child.
_PACKAGE_MAIN = importlib.machinery.ModuleSpec("gui.__main__", None)

_context: BaseContext | None = None
_context_lock = threading.Lock()


def start_method() -> str:
    chosen = os.environ.get(START_METHOD_ENV, "").strip()
    if chosen:
        if chosen not in multiprocessing.get_all_start_methods():
            raise ValueError(f"{START_METHOD_ENV}={chosen!r} is not a start method here "
                             f"(choose from {', '.join(multiprocessing.get_all_start_methods())})")
        return chosen
    return "spawn" if sys.platform == "win32" else "forkserver"


def _use_worker_executable() -> None:
    """In the frozen app, workers run the Qt-free worker executable beside this one:
    the window's executable carries PySide6, whose runtime hook would load Qt in
    every process started from it.

    A child normally re-runs the parent's main script (by file, to find what it
    pickled); a frozen entry script is no file, and the worker executable's own
    differs. Named as the package's __main__, which multiprocessing never re-runs,
    the children skip that step: they need nothing from it."""
    if not getattr(sys, "frozen", False):
        return
    main = sys.modules.get("__main__")
    if main is not None and getattr(main, "__spec__", None) is None:
        main.__spec__ = _PACKAGE_MAIN
    candidate = Path(sys.executable).with_name(WORKER_EXECUTABLE)
    if candidate.is_file():
        multiprocessing.set_executable(str(candidate))


def context() -> BaseContext:
    """The multiprocessing context for workers, set up once per process."""
    global _context
    with _context_lock:
        if _context is None:
            _use_worker_executable()
            method = start_method()
            chosen = multiprocessing.get_context(method)
            if method == "forkserver":
                chosen.set_forkserver_preload(["gui.pipeline.worker", *worker.HEAVY_MODULES])
            _context = chosen
        return _context


def prestart(wait: bool = False) -> None:
    """Start the fork server now, so the first worker forks at once: in the background,
    or (`wait`) before this returns. Either way from a thread of the caller's priority:
    the fork server, and every worker forked from it, start at the niceness of the
    thread that starts it (see priority), never the supervisor's lowered one."""
    if start_method() != "forkserver":
        return
    context()
    from multiprocessing import forkserver

    if wait:
        forkserver.ensure_running()
    else:
        threading.Thread(target=forkserver.ensure_running, name="dockpool-forkserver-start", daemon=True).start()


_start_lock = threading.Lock()


@contextmanager
def _main_left_out() -> Iterator[None]:
    """A new worker would re-run the caller's main script, to find what was pickled from
    it: a benchmark script, pytest, a console-script wrapper. A benchmark's cost 70 ms of
    CPU in every worker, 24 times over at the start of a 24-builder run. Workers need
    nothing from it; named as a package's __main__ while they start, which
    multiprocessing never re-runs, it is left out. The name is the process's for those
    moments: a program embedding the engine that starts its own spawn or fork-server
    children from another thread at the same instant would see them skip its script too."""
    main = sys.modules.get("__main__")
    with _start_lock:
        if main is None or getattr(main, "__spec__", None) is not None:
            yield
            return
        main.__spec__ = _PACKAGE_MAIN
        try:
            yield
        finally:
            main.__spec__ = None


class Inbox:
    """The supervisor's one queue of (worker, record, lines) entries, `lines` the record's
    weight (events.record_lines), counted once as it arrives; (None, anything, 1) wakes it.

    Taking a worker's entry gives its reader room for more (see WorkerProcess._read).
    Once closed (the run is over and nobody reads any more), readers no longer wait for
    room, so none of their threads is left blocked."""

    def __init__(self) -> None:
        self._entries: SimpleQueue[tuple[Any, Any, int]] = SimpleQueue()
        self.closed = threading.Event()

    def put(self, entry: tuple[Any, Any, int]) -> None:
        self._entries.put(entry)

    def get(self, timeout: float | None = None) -> tuple[Any, Any, int]:
        """Raises queue.Empty after `timeout`."""
        return self._taken(self._entries.get(timeout=timeout))

    def get_nowait(self) -> tuple[Any, Any, int]:
        return self._taken(self._entries.get_nowait())

    def close(self) -> None:
        self.closed.set()

    @staticmethod
    def _taken(entry: tuple[Any, Any, int]) -> tuple[Any, Any, int]:
        sender, record, lines = entry
        if sender is not None and record is not CLOSED:
            sender.taken(lines)
        return entry


class WorkerProcess:
    """One worker process, its two pipes, and the thread that reads it into the inbox."""

    def __init__(self, role: ev.Stage, config: WorkerConfig, inbox: Inbox) -> None:
        ctx = context()
        task_reader, self._tasks = ctx.Pipe(duplex=False)
        self._events, event_writer = ctx.Pipe(duplex=False)
        self.role = role
        self.process = ctx.Process(target=worker.main, args=(task_reader, event_writer, config),
                                   name=f"dockpool-{role.value}", daemon=True)
        with _main_left_out():
            self.process.start()
        task_reader.close()
        event_writer.close()
        self.job: Any = None  # the supervisor's job this worker holds, or None when idle
        self.assigned_at = 0.0
        self.last_activity = time.monotonic()
        self.alive = True
        self.child_pid: int | None = None  # a build's CLI process, to stop with the worker
        self._temp = scratch.root(config.environment)  # where it makes its temporary folders
        self.unread = 0  # its lines waiting in the inbox (events.record_lines)
        self._room = threading.Condition()
        threading.Thread(target=self._read, args=(inbox, config.niceness), name=f"dockpool-read-{self.process.pid}",
                         daemon=True).start()

    def _read(self, inbox: Inbox, caller_niceness: int | None) -> None:
        lower_this_thread(caller_niceness)  # the window's GUI thread comes first (see priority)
        try:
            while True:
                record = self._events.recv()
                lines = ev.record_lines(record)  # outside the lock taken() needs
                # Stamped on arrival, not when the supervisor gets to it: a backlog in the
                # inbox must never make a busy, healthy worker look stalled.
                self.last_activity = time.monotonic()
                with self._room:
                    while self.unread >= MAX_UNREAD and not inbox.closed.is_set():
                        # The supervisor has not read this worker's last lines yet: the worker
                        # is busy and healthy, not stalled, however long it waits here.
                        self._room.wait(UNREAD_CHECK)
                        self.last_activity = time.monotonic()
                    self.unread += lines
                inbox.put((self, record, lines))
        except (EOFError, OSError):
            pass
        except Exception:  # a record that cannot be unpickled: the worker is broken
            log.exception("unreadable message from worker %s", self.process.pid)
        finally:
            self._events.close()
            inbox.put((self, CLOSED, 1))

    def taken(self, lines: int) -> None:
        """The supervisor took one of this worker's records, of `lines`, from the inbox."""
        with self._room:
            self.unread -= lines
            self._room.notify()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def send(self, task: BuildTask | PushTask | SlotGranted) -> bool:
        """Hand over a task (or an upload slot); False when the worker is gone (its pipe
        is broken)."""
        try:
            self._tasks.send(task)
            return True
        except (OSError, ValueError):
            self.alive = False
            return False

    def stop(self) -> None:
        """Ask an idle worker to exit."""
        try:
            self._tasks.send(None)
        except (OSError, ValueError):
            pass

    def kill(self) -> None:
        """Stop the worker now, and the build process it started."""
        self.alive = False
        if self.process.is_alive():
            self.process.kill()
        kill_process(self.child_pid)
        self.process.join(STOP_GRACE)

    def close(self) -> None:
        """The worker is done with (joined or killed): its pipe goes, and the temporary
        folders a kill kept it from removing."""
        self._tasks.close()
        if self.pid and not self.process.is_alive():
            kill_process(self.child_pid)  # a build's CLI child must not be writing there still
            scratch.remove_of(self.pid, self._temp)


def kill_process(pid: int | None) -> None:
    """Kill a worker's CLI child and everything it started (`docker buildx` runs the buildx
    plugin as its own child): the child leads a process group of its own on POSIX."""
    if not pid:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGTERM)  # Windows: TerminateProcess; the job object takes the rest
    except (ProcessLookupError, PermissionError, OSError):
        try:
            os.kill(pid, signal.SIGKILL if hasattr(signal, "SIGKILL") else signal.SIGTERM)
        except (ProcessLookupError, PermissionError, OSError):
            pass
