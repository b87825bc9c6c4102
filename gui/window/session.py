"""A run as the window sees it: the controller on its thread, and an orderly end.

The session starts the controller on a QThread, forwards its signals, and ends
it in order however the window goes away: closed (after asking), quit by the
application (log-off, SIGTERM, QApplication.quit()), or the run simply ending.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal

from ..pipeline.project import Project
from ..pipeline.supervisor import RunOptions
from .controller import RunController


class RunSession(QObject):
    started = Signal(str, object)  # engine, resolved build backend
    eventsReady = Signal(object)
    engineUnreachable = Signal(str)
    failed = Signal(str)
    finished = Signal(object)  # RunReport or None

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QThread | None = None
        self._controller: RunController | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, project: Project, options: RunOptions, push_only: dict[str, str], log_dir: Path,
              worker_log: str | None) -> None:
        assert not self.running
        self._thread = QThread(self)
        self._controller = RunController(project, options, push_only, log_dir, worker_log)
        self._controller.moveToThread(self._thread)
        self._thread.started.connect(self._controller.run)
        # Signals of this session (a QObject of the GUI thread): Qt queues them onto it.
        self._controller.started.connect(self.started)
        self._controller.eventsReady.connect(self.eventsReady)
        self._controller.engineUnreachable.connect(self.engineUnreachable)
        self._controller.failed.connect(self.failed)
        self._controller.finished.connect(self._ended)
        self._thread.start()

    def _ended(self, report: Any) -> None:
        thread, self._thread = self._thread, None
        controller, self._controller = self._controller, None
        if thread is not None:
            thread.quit()
            thread.wait()
            thread.deleteLater()
        if controller is not None:
            controller.deleteLater()
        self.finished.emit(report)

    def cancel(self) -> None:
        if self._controller is not None:
            self._controller.cancel()

    def cancel_image(self, key: str) -> None:
        if self._controller is not None:
            self._controller.cancel_image(key)

    def set_limits(self, builders: int, pushers: int) -> None:
        if self._controller is not None:
            self._controller.set_limits(builders, pushers)

    def worker_pids(self) -> list[int]:
        return self._controller.worker_pids() if self._controller else []

    def shutdown(self, deadline: float) -> bool:
        """Cancel and wait, until `deadline` (time.monotonic()), for the run to end (no
        worker, thread or build left), for the application's own quit where no event loop
        turn is left. True when it ended and its thread is finished."""
        if self._thread is None or self._controller is None:
            return True
        self.cancel()
        ended = self._controller.ended.wait(max(0.0, deadline - time.monotonic()))
        self._thread.quit()
        finished = self._thread.wait(max(100, int((deadline - time.monotonic()) * 1000)))
        return ended and finished
