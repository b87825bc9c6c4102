"""The one object that owns a run: it lives on a QThread and drives the engine.

Its run() is the same Qt-free Pipeline the CLI uses. It drains the engine's event
queue and re-emits the records in batches every BATCH_INTERVAL, so the GUI thread
handles ten updates a second however many images stream logs and layer progress.
Widgets never touch the engine; the controller never touches widgets.

Whatever goes wrong (an engine that does not answer, a stale DOCKER_TLS_VERIFY, a
bug), run() ends with `finished`: a window never stays "running" with nothing
behind it.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal, Slot

from ..pipeline import events as ev
from ..pipeline import reference
from ..pipeline.build_backend import BackendUnavailable, backend_problems, resolve_backend
from ..pipeline.docker_engine import EngineInfo, EngineUnreachable, connect
from ..pipeline.project import Project, validate
from ..pipeline.supervisor import Pipeline, RunOptions
from ..pipeline.tasks import BuildBackend
from ..pipeline.workers import start_method

BATCH_INTERVAL = 0.1
PREFLIGHT_POLL = 0.1  # how soon a cancel during the engine's pre-flight is seen
ABANDON_WAIT = 15.0  # seconds a broken-off run's supervisor gets to stop its workers
log = logging.getLogger(__name__)


class _SupervisorStopped(RuntimeError):
    """The supervisor thread ended without RunFinished (a Dockpool bug, never a hang)."""


class RunController(QObject):
    started = Signal(str, object)  # the engine's description, the resolved build backend
    # object, not list: PySide would convert a list into a QVariantList element by element.
    eventsReady = Signal(object)  # a batch (list) of engine records, in order
    engineUnreachable = Signal(str)  # which endpoint and why
    failed = Signal(str)  # the run could not start or broke: what happened
    finished = Signal(object)  # the RunReport, or None when the run never started

    def __init__(self, project: Project, options: RunOptions, push_only: dict[str, str], log_dir: Path,
                 worker_log: str | None) -> None:
        super().__init__()
        self._project = project
        self._options = options
        self._push_only = push_only
        self._log_dir = log_dir
        self._worker_log = worker_log
        self._pipeline: Pipeline | None = None
        self._cancelled = False
        self._lock = threading.Lock()  # guards _options and _pipeline against the GUI thread
        self.ended = threading.Event()  # run() has returned: workers stopped, report final

    @Slot()
    def run(self) -> None:
        report = None
        try:
            report = self._run()
        except EngineUnreachable as exc:
            self.engineUnreachable.emit(str(exc))
        except BackendUnavailable as exc:
            self.failed.emit(str(exc))
        except Exception as exc:  # a stale setting, a bug: say so, and end the run all the same
            log.exception("the run could not go on")
            self.failed.emit(f"{type(exc).__name__}: {exc}")
        finally:
            self.ended.set()
            self.finished.emit(report)

    def _run(self) -> Any:
        found = self._preflight()
        if found is None:
            return None  # cancelled (or the application quits) before anything started
        engine, backend, insecure = found
        with self._lock:  # read the options only now: the sliders may have moved meanwhile
            if self._cancelled:
                return None
            options = dataclasses.replace(self._options, backend=backend, insecure=insecure)
            pipeline = Pipeline(self._project, options, api_version=engine.api_version, push_only=self._push_only,
                                log_dir=self._log_dir, worker_log=self._worker_log)
            self._pipeline = pipeline
        self.started.emit(str(engine), backend)
        batch: list[Any] = []  # records taken and not yet handed on: kept when the run breaks
        try:
            pipeline.start()
            return self._drain(pipeline, batch)
        except Exception as exc:  # the rows have started: end them, and the workers, too
            log.exception("the run broke off")
            broke = str(exc) if isinstance(exc, _SupervisorStopped) else f"{type(exc).__name__}: {exc}"
            self.failed.emit(broke)
            return self._abandon(pipeline, batch, f"the run broke off: {broke}",
                                 "please report this as a Dockpool bug, with the log")

    def _preflight(self) -> tuple[EngineInfo, BuildBackend, bool] | None:
        """Ask the engine, pick the builder and decide whether the registry is reached over
        plain HTTP (a DNS lookup for a named registry), on a daemon thread: an engine that
        accepts the connection and never answers holds it for PREFLIGHT_TIMEOUT, and a
        cancel or a quit must not wait for that (nothing has started yet, and a daemon
        thread does not keep the process alive). None when cancelled meanwhile."""
        outcome: queue.Queue[tuple[Any, BaseException | None]] = queue.Queue()
        with self._lock:  # the thread may outlive this object: it gets its own references
            project, options = self._project, self._options

        def ask() -> None:
            try:
                start_method()  # a stale DOCKPOOL_START_METHOD is said before any row changes
                client, engine = connect()
                client.close()
                backend = resolve_backend(project.build, cli=None)
                problems = validate(project, backend.kind) + backend_problems(project, backend)
                if problems:
                    raise BackendUnavailable("\n".join(problems))
                insecure = options.insecure or reference.is_insecure(options.registry, engine.insecure_registries)
                outcome.put(((engine, backend, insecure), None))
            except BaseException as exc:  # handed to the controller's thread, raised there
                outcome.put((None, exc))

        threading.Thread(target=ask, name="dockpool-preflight", daemon=True).start()
        while True:
            try:
                answer = outcome.get(timeout=PREFLIGHT_POLL)
            except queue.Empty:
                answer = None
            with self._lock:
                if self._cancelled:
                    return None  # nothing started; no dialog about an answer nobody waits for
            if answer is not None:
                found, error = answer
                if error is not None:
                    raise error
                return found

    def _drain(self, pipeline: Pipeline, batch: list[Any]) -> Any:
        """Hand the run's records on in batches until RunFinished; `batch` holds those taken
        and not handed on yet."""
        flush_at = time.monotonic() + BATCH_INTERVAL
        while True:
            try:
                record = pipeline.events.get(timeout=max(0.0, flush_at - time.monotonic()))
            except queue.Empty:
                alive = pipeline.alive
                # It may have queued its last records and ended between the two looks.
                record = None if alive else self._last_record(pipeline)
                if record is None and not alive:  # ended without RunFinished: a bug, not a hang
                    raise _SupervisorStopped("the run's supervisor stopped unexpectedly (a Dockpool bug)")
            if isinstance(record, ev.RunFinished):
                if batch:
                    self.eventsReady.emit(batch[:])
                pipeline.wait(10)
                return record.report
            if record is not None:
                batch.append(record)
            if time.monotonic() >= flush_at:
                if batch:
                    self.eventsReady.emit(batch[:])
                    batch.clear()
                flush_at = time.monotonic() + BATCH_INTERVAL

    def _abandon(self, pipeline: Pipeline, batch: list[Any], message: str, hint: str) -> Any:
        """End a run that broke off after its rows started: its workers are stopped, and
        every image unfinished when it broke off and not finished by the stop fails with
        `message`, in the report and on its row (rows follow events only: one left
        "building" would be skipped by Retry failed). An image built by then fails as a
        push, so Retry failed pushes it rather than building it again. Failed, not
        cancelled: the user cancelled nothing."""
        unfinished = {image.key for image in pipeline.report.images if not image.status.final}
        pipeline.cancel()
        stopped = not pipeline.alive or pipeline.wait(ABANDON_WAIT)  # it stops the workers, then says RunFinished
        while (record := self._last_record(pipeline)) is not None:
            if not isinstance(record, ev.RunFinished):
                batch.append(record)
        report = pipeline.report
        if not stopped:  # every image it had not finished fails; it may still change its own report
            log.warning("the run's supervisor did not stop within %.0f s; the run ends without it", ABANDON_WAIT)
            report = copy.deepcopy(report)
        failing = {image.key: ev.Stage.PUSH if image.image_id else ev.Stage.BUILD for image in report.images
                   if image.key in unfinished
                   and (not stopped or not image.status.final or image.status is ev.Status.CANCELLED)}
        report.abandon(message, hint, failing)
        report.cancelled = self._cancelled
        failure = ev.Failure(ev.FailureKind.OTHER, message, hint)
        batch.extend((ev.PushFailed if stage is ev.Stage.PUSH else ev.BuildFailed)(key, failure)
                     for key, stage in failing.items())
        self.eventsReady.emit(batch[:])
        return report

    @staticmethod
    def _last_record(pipeline: Pipeline) -> Any:
        """What the supervisor queued just before it ended, if anything (RunFinished, usually)."""
        try:
            return pipeline.events.get_nowait()
        except queue.Empty:
            return None

    # Called from the GUI thread; the Pipeline's methods are thread-safe.
    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            if self._pipeline is not None:
                self._pipeline.cancel()

    def cancel_image(self, key: str) -> None:
        with self._lock:
            if self._pipeline is not None:
                self._pipeline.cancel_image(key)

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
