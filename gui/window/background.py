"""Slow calls off the GUI thread: logging in, checking the registry, scanning folders,
finding the build backend, removing old runs' logs.

Each runs a plain function on Qt's global thread pool and delivers its result
(or its exception) as a signal, which Qt queues onto the GUI thread: the window
never shows "Not responding" while a registry answers slowly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot


class _Signals(QObject):
    done = Signal(object)
    failed = Signal(object)  # the exception


class _Receiver(QObject):
    """Lives on the GUI thread: Qt queues the pool thread's signals to its slots, so the
    callbacks (lambdas included) run there, never on the pool thread."""

    def __init__(self, done: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
        super().__init__()
        self._done, self._failed = done, failed

    @Slot(object)
    def on_done(self, result: Any) -> None:
        _running.discard(self)
        self._done(result)

    @Slot(object)
    def on_failed(self, exc: Any) -> None:
        _running.discard(self)
        self._failed(exc)


class _Job(QRunnable):
    def __init__(self, function: Callable[[], Any], signals: _Signals) -> None:
        super().__init__()
        self.setAutoDelete(False)  # Python owns it (through its receiver) until it has answered
        self.function = function
        self.signals = signals

    def run(self) -> None:
        try:
            result = self.function()
        except Exception as exc:  # delivered to the GUI thread, which decides what to say
            self.signals.failed.emit(exc)
            return
        self.signals.done.emit(result)


_running: set[_Receiver] = set()  # keeps each job's receiver alive until it has answered


def run_in_background(function: Callable[[], Any], done: Callable[[Any], None],
                      failed: Callable[[BaseException], None]) -> None:
    """Call `function` on a pool thread; then `done(result)` or `failed(exception)` on the
    GUI thread (this must be called from the GUI thread)."""
    receiver = _Receiver(done, failed)
    _running.add(receiver)
    signals = _Signals()
    signals.done.connect(receiver.on_done)
    signals.failed.connect(receiver.on_failed)
    job = _Job(function, signals)
    receiver.job = job  # type: ignore[attr-defined]  (the signals object lives as long as the receiver)
    QThreadPool.globalInstance().start(job)


def wait_for_background(timeout_ms: int = 10_000) -> bool:
    """For shutdown and tests: every background call has ended."""
    return QThreadPool.globalInstance().waitForDone(timeout_ms)
