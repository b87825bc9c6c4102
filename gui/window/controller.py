"""The one object that owns a run: it lives on a QThread and drives the engine.

Its run() is the same Qt-free Pipeline the CLI uses. It drains the engine's event
queue and re-emits the records in batches every BATCH_INTERVAL, so the GUI thread
handles ten updates a second however many images stream logs and layer progress.
Widgets never touch the engine; the controller never touches widgets.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ..pipeline import events as ev
from ..pipeline.docker_engine import EngineUnreachable, connect
from ..pipeline.project import Project
from ..pipeline.supervisor import Pipeline, RunOptions

BATCH_INTERVAL = 0.1


class RunController(QObject):
    started = Signal(str)  # the engine's description
    # object, not list: PySide would convert a list into a QVariantList element by element.
    eventsReady = Signal(object)  # a batch (list) of engine records, in order
    engineUnreachable = Signal(str)  # which endpoint and why
    finished = Signal(object)  # the RunReport, or None when the run never started

    def __init__(self, project: Project, options: RunOptions, push_only: list[str]) -> None:
        super().__init__()
        self._project = project
        self._options = options
        self._push_only = push_only
        self._pipeline: Pipeline | None = None
        self._cancelled = False
        self._lock = threading.Lock()  # guards _options and _pipeline against the GUI thread

    @Slot()
    def run(self) -> None:
        try:
            _, engine = connect()
        except EngineUnreachable as exc:
            self.engineUnreachable.emit(str(exc))
            self.finished.emit(None)
            return
        with self._lock:
            if self._cancelled:
                self.finished.emit(None)
                return
            pipeline = Pipeline(self._project, self._options, api_version=engine.api_version,
                                push_only=self._push_only)
            self._pipeline = pipeline
        self.started.emit(str(engine))
        pipeline.start()
        report = self._drain(pipeline)
        self.finished.emit(report)

    def _drain(self, pipeline: Pipeline) -> Any:
        batch: list[Any] = []
        flush_at = time.monotonic() + BATCH_INTERVAL
        while True:
            try:
                record = pipeline.events.get(timeout=max(0.0, flush_at - time.monotonic()))
            except queue.Empty:
                record = None
            if isinstance(record, ev.RunFinished):
                if batch:
                    self.eventsReady.emit(batch)
                pipeline.wait(10)
                return record.report
            if record is not None:
                batch.append(record)
            if time.monotonic() >= flush_at:
                if batch:
                    self.eventsReady.emit(batch)
                    batch = []
                flush_at = time.monotonic() + BATCH_INTERVAL

    # Called from the GUI thread; the Pipeline's methods are thread-safe.
    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._pipeline is not None:
                self._pipeline.cancel()

    def set_limits(self, builders: int, pushers: int) -> None:
        """Live limits; before the pipeline exists they become its starting limits."""
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.set_limits(builders, pushers)
            else:
                self._options = dataclasses.replace(self._options, builders=builders, pushers=pushers)

    def worker_pids(self) -> list[int]:
        with self._lock:
            return self._pipeline.worker_pids() if self._pipeline else []
