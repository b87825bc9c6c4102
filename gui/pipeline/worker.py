"""What runs inside a builder or pusher process.

Workers are long-lived processes. Each one talks to the supervisor over two
pipes of its own (tasks in, event records out), so a worker killed mid-message
can only break its own pipes, never a queue the other workers share. Nothing
here imports Qt: this module is loaded in every child. The heavy modules (the
Docker SDK, the HTTP client) are imported by the task that needs them; where
the fork server is used they are preloaded there once, so a fork has them free.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import tempfile
from multiprocessing.connection import Connection
from typing import Any

from . import events as ev
from .priority import lower_this_process
from .tasks import BuildTask, PushTask, SlotGranted, WorkerConfig

# Loaded by the fork server before it forks any worker (see workers.PRELOAD).
# httpcore: httpx imports its transport only when the first client is made (34 ms of a
# direct pusher's first push, measured, otherwise).
HEAVY_MODULES = ("gui.pipeline.build_classic", "gui.pipeline.build_buildkit", "gui.pipeline.push_engine",
                 "gui.pipeline.push_direct", "httpcore")


def prepare_process(config: WorkerConfig) -> None:
    """Make a worker safe to run in any executable, before any Docker call.

    Ctrl+C reaches the whole process group; the supervisor turns it into an
    orderly cancel, so workers ignore it rather than die mid-stream. A windowed
    executable has no stdout/stderr in any process: anything written there (a
    warning, a traceback) would crash the worker, so both go to the UTF-8 log
    file. Credential helpers and the BuildKit CLI are started from here, so
    their console windows are hidden here (Windows).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_this_process(config.niceness)
    if config.environment:
        os.environ.clear()
        os.environ.update(config.environment)
        tempfile.tempdir = None  # the caller's TMPDIR, not the one a fork server may have cached
    if sys.stdout is None or sys.stderr is None:
        target = open(config.log_file or os.devnull, "a", encoding="utf-8", errors="replace",  # noqa: SIM115
                      buffering=1)
        sys.stdout = sys.stdout or target
        sys.stderr = sys.stderr or target
    try:
        faulthandler.enable(file=sys.stderr)
    except (AttributeError, ValueError, OSError):  # a stream without a file descriptor
        pass
    from ..windows_support import hide_console_windows

    hide_console_windows()


class _Clients:
    """One Docker client per process, made on first use (BuildKit builds need none)."""

    def __init__(self, api_version: str | None) -> None:
        self.api_version = api_version
        self._stream: Any = None

    @property
    def stream(self) -> Any:
        if self._stream is None:
            from .docker_engine import stream_client

            self._stream = stream_client(self.api_version)
        return self._stream


class _WireSlots:
    """A direct pusher asks the supervisor for one of the run's upload slots before it puts
    its image's first blob on the wire, and gives it back when the image is done: at most
    `pushers` images upload at once across the run, while one more pusher prepares
    (exports, reads, hashes) the next image instead of leaving the link idle meanwhile."""

    def __init__(self, image: str, tasks: Connection, emit: Any) -> None:
        self._image, self._tasks, self._emit = image, tasks, emit

    def __enter__(self) -> None:
        self._emit(ev.SlotWanted(self._image))
        try:
            answer = self._tasks.recv()
        except (EOFError, OSError) as exc:
            raise _SupervisorGone from exc
        if not isinstance(answer, SlotGranted):
            raise _SupervisorGone  # told to stop while waiting: nobody listens

    def __exit__(self, *_: Any) -> None:
        self._emit(ev.SlotReleased(self._image))


def _run(task: BuildTask | PushTask, clients: _Clients, emit: Any, tasks: Connection) -> None:
    if isinstance(task, BuildTask):
        if task.backend.kind == "buildkit":
            from .build_buildkit import run_build
        else:
            from .build_classic import run_build  # type: ignore[no-redef]
        run_build(clients, task, emit)
    elif task.via == "engine":
        from .push_engine import run_push

        run_push(clients.stream, task, emit)
    else:
        from .push_direct import run_push  # type: ignore[no-redef]

        run_push(clients, task, emit, _WireSlots(task.image, tasks, emit))


class _SupervisorGone(BaseException):
    """The event pipe is closed, or the worker was told to stop while it waited: nobody
    listens any more. A BaseException, so the `except Exception` of a build or push that
    turns errors into failure records cannot catch it and report a failure to no one."""


def main(tasks: Connection, events: Connection, config: WorkerConfig) -> None:
    """Process entry point: run tasks from the pipe until told to stop (None)."""
    prepare_process(config)
    clients = _Clients(config.api_version)

    def emit(record: Any) -> None:
        try:
            events.send(record)
        except OSError as exc:
            raise _SupervisorGone from exc

    while True:
        try:
            task = tasks.recv()
        except (EOFError, OSError):
            return  # the supervisor went away
        if task is None:
            return
        try:
            _run(task, clients, emit, tasks)
        except _SupervisorGone:
            return
        except Exception as exc:  # a bug: report it on the image instead of dying silently
            failure = ev.Failure(ev.FailureKind.OTHER, f"internal error in the worker: {exc!r}",
                                 "please report this as a Dockpool bug")
            try:
                record = ev.BuildFailed(task.image, failure) if isinstance(task, BuildTask) \
                    else ev.PushFailed(task.image, failure)
                events.send(record)
            except OSError:
                return
