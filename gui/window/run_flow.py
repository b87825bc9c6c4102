"""Runs as the user starts them: Start, Retry failed, one image, Cancel.

Before anything is built, the rows to run are checked (an invalid row or registry
refuses the start, saying which) and so is the registry (its `/v2/` endpoint with
the stored login, off the GUI thread): when it cannot be reached or refuses the
login, the user may build only. The run then gets a snapshot of the project, so
edits made while it runs never reach the workers, and the rows' states change
only once the engine answers. The session runs it; this follows its events.
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMessageBox

from ..pipeline import events as ev
from ..pipeline import project as projects
from ..pipeline import reference
from ..pipeline.layer_cache import cache_root
from ..pipeline.project import build_inputs, image_keys
from ..pipeline.report import RunReport
from ..pipeline.runlogs import file_name
from ..pipeline.supervisor import RunOptions
from . import settings as stored
from .background import run_in_background
from .dialogs import show_box
from .document import ProjectDocument
from .session import RunSession

KEEP_RUN_FOLDERS = 20


def runs_folder() -> Path:
    return cache_root() / "runs"


def new_run_folder() -> Path:
    """A folder for one run's logs (names sort oldest first)."""
    root = runs_folder()
    root.mkdir(parents=True, exist_ok=True)
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 1_000_000:06d}"
    folder.mkdir()
    return folder


def prune_run_folders() -> None:
    """Remove the oldest run folders beyond KEEP_RUN_FOLDERS (the newest, this run's, stays).
    Slow: a 1,000-image run leaves 1,000 files; the window calls it off the GUI thread."""
    for old in sorted(runs_folder().iterdir())[:-KEEP_RUN_FOLDERS]:
        shutil.rmtree(old, ignore_errors=True)


def summary(report: RunReport) -> str:
    """"12 image(s) in 95 s, 1 failed": for the status bar and the tray message."""
    took = (report.finished or time.time()) - report.started
    failed = report.count(ev.Status.FAILED)
    return f"{len(report.images)} image(s) in {took:.0f} s" + (f", {failed} failed" if failed else "")


class RunFlow(QObject):
    busyChanged = Signal()  # a run or the registry check before one began or ended
    launched = Signal()  # a run was handed to the session: the last run's traces go
    rowsStarted = Signal(object)  # the engine answered (its build backend): the rows show this run
    eventsApplied = Signal(object, object)  # the records, the uids of the rows they changed
    finished = Signal(object)  # RunReport, or None when the run never started
    engineUnreachable = Signal(str)  # which endpoint and why
    failed = Signal(str)  # the run could not start or broke: what happened
    message = Signal(str, int)  # for the status bar: text ("" clears it), milliseconds (0: until replaced)

    def __init__(self, window: QMainWindow, document: ProjectDocument, worker_log: str | None,
                 commit_typing: Callable[[], None]) -> None:
        super().__init__(window)
        self._window = window
        self.document = document
        self.model = document.model
        self._worker_log = worker_log
        self._commit_typing = commit_typing
        self.session = RunSession(self)
        self.report: RunReport | None = None  # the last finished run's
        self.keys: dict[str, int] = {}  # engine key -> row uid, for the run under way
        self.started_at = 0.0
        self.rows_started = False  # this run's rows have started (the engine answered)
        self._closing = False  # the window closes: late answers from the registry check are dropped
        self._checking = False  # the registry check before a run is under way
        self._checks = 0  # registry checks started: a check's answer counts only if it is the latest
        # What _launch handed the session, for the rows once the engine answers.
        self._pending: tuple[list[int], dict[int, str], list[str], list[tuple[str, ...]], list[str], bool] | None = None
        self._run_folder: Path | None = None
        self._last_request: Callable[[], None] = self.start  # what the banner's Retry repeats
        self.session.started.connect(self._engine_started)
        self.session.eventsReady.connect(self._events)
        self.session.finished.connect(self._finished)
        self.session.engineUnreachable.connect(self.engineUnreachable)
        self.session.failed.connect(self.failed)

    @property
    def running(self) -> bool:
        return self.session.running

    @property
    def busy(self) -> bool:
        """A run is going, or the registry is being checked before one starts."""
        return self.session.running or self._checking

    def key_of(self, uid: int) -> str | None:
        return next((key for key, value in self.keys.items() if value == uid), None)

    def set_limits(self, builders: int, pushers: int) -> None:
        """The sliders moved: a run under way follows them."""
        self.session.set_limits(builders, pushers)

    def forget_report(self) -> None:
        """Another project is shown: the last run's report is not its report."""
        self.report = None

    def close(self) -> None:
        """The window closes: an answer of the registry check that comes later is dropped."""
        self._closing = True

    def shutdown(self, deadline: float) -> bool:
        """The application quits: end the run now (see RunSession.shutdown)."""
        return self.session.shutdown(deadline)

    # --- what to run ------------------------------------------------------------------------

    def start(self) -> None:
        if self.busy:
            return
        self._last_request = self.start
        uids = [self.model.uid(row) for row in range(self.model.rowCount()) if self.model.image(row).enabled]
        self._start_checked(uids, keep_builds=False)

    def retry_failed(self) -> None:
        """Rerun failed and cancelled images; one whose build succeeded and whose push failed
        is only pushed again (to the refs it has now: registry and tags may have been fixed),
        unless its build inputs in the project changed since (project.build_inputs)."""
        if self.busy:
            return
        self._last_request = self.retry_failed
        self._commit_typing()  # a value being typed in a table cell decides which rows run
        uids = [self.model.uid(row) for row in range(self.model.rowCount())
                if self.model.image(row).enabled
                and self.model.state(row).status in (ev.Status.FAILED, ev.Status.CANCELLED)]
        self._start_checked(uids, keep_builds=True)

    def build_one(self, uid: int) -> None:
        """Build (or retry) one image: the context menu's command (a run takes enabled images only)."""
        if not self.busy and self.model.image_by_uid(uid).enabled:
            self._last_request = lambda: self.build_one(uid) if self.model.row_of(uid) is not None else None
            self._start_checked([uid], keep_builds=True)

    def again(self) -> None:
        """What the user last asked for (Start, Retry failed or one image), once more: after
        an engine that did not answer, Retry means that, not every image."""
        self._last_request()

    def cancel(self) -> None:
        """Stop the run, or the registry check before one (its answer is then dropped)."""
        if self._checking:
            self._checks += 1  # the answer of the check under way no longer counts
            self._checking = False
            self.message.emit("Cancelled before anything was built", 5000)
            self.busyChanged.emit()
        elif self.session.running:
            self.message.emit("Cancelling…", 0)
            self.session.cancel()

    def cancel_one(self, uid: int) -> None:
        key = self.key_of(uid)
        if key is not None:
            self.session.cancel_image(key)

    def _push_only(self, uids: list[int]) -> dict[int, str]:
        """Rows whose build is kept: they were built and failed (or were cancelled) pushing,
        there is a registry to push to, and nothing they are built from changed since."""
        project = self.document.project
        if not project.registry:
            return {}
        return {uid: state.image_id for uid in uids if (state := self.model.state_by_uid(uid)).image_id
                and state.failed_stage is ev.Stage.PUSH
                and state.built_from == build_inputs(self.model.image_by_uid(uid), project.build)}

    def _refuse_invalid(self, uids: list[int]) -> bool:
        """Start refuses while a row to run (or the registry) is invalid, saying which."""
        self._commit_typing()
        rows = {self.model.row_of(uid) for uid in uids}
        problems = [f"{self.model.image(row).name or f'row {row + 1}'}: {'; '.join(found)}"
                    for row, found in self.model.invalid_enabled_rows() if row in rows]
        project = self.document.project
        if (problem := reference.registry_problem(project.registry)):
            problems.insert(0, f"registry '{project.registry}' {problem}")
        if problems:
            show_box(self._window, QMessageBox.Icon.Warning, "Cannot start",
                     "Fix these first (or disable those images):", "\n".join(problems), "start-refused")
            return True
        return False

    # --- the registry check ----------------------------------------------------------------------

    def _start_checked(self, uids: list[int], keep_builds: bool) -> None:
        """Check the registry (off the GUI thread) before building everything for nothing.
        `keep_builds`: rows whose push failed are only pushed again (see _push_only),
        decided once what is being typed is in the project."""
        if not uids or self._refuse_invalid(uids):
            return
        push_only = self._push_only(uids) if keep_builds else {}
        project = self.document.project
        if not project.registry:
            self._launch(uids, push_only, build_only=False)
            return
        repository = self.model.image_by_uid(uids[0]).name
        registry, insecure = project.registry, project.insecure

        def check() -> str | None:
            """As the run will reach it: over plain HTTP when the engine lists it as insecure.
            An engine that does not answer leaves that unknown: no verdict, and the run's
            own pre-flight says what is wrong with the engine. The HTTP client is imported
            here, on the background thread: a tenth of a second the window keeps."""
            from ..pipeline.docker_engine import engine_insecure_registries
            from ..pipeline.registry_http import check_registry

            plain = insecure or reference.is_insecure(registry)  # loopback: the engine's list is moot
            if not plain:
                listed = engine_insecure_registries()
                if listed is None:
                    return None
                plain = reference.is_insecure(registry, listed)
            return check_registry(registry, repository, None, insecure=plain)

        self.message.emit(f"Checking {registry}… (Shift+F5 cancels)", 0)
        self._checking = True
        self._checks += 1
        this_check = self._checks
        self.busyChanged.emit()
        run_in_background(check,
                          lambda problem: self._registry_checked(this_check, problem, uids, push_only),
                          lambda exc: self._registry_checked(this_check, str(exc), uids, push_only))

    def _registry_checked(self, check: int, problem: str | None, uids: list[int], push_only: dict[int, str]) -> None:
        if check != self._checks or self._closing:
            return  # cancelled, or the window closes
        self._checking = False
        self.message.emit("", 0)
        self.busyChanged.emit()
        uids = [uid for uid in uids if self.model.row_of(uid) is not None]
        if problem is None:
            self._launch(uids, push_only, build_only=False)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "The registry cannot be used",
                          f"Pushing to {self.document.project.registry} would fail:", parent=self._window)
        box.setObjectName("registry-check")
        box.setInformativeText(f"{problem}\n\nBuild only (nothing is pushed), or cancel to fix the registry or "
                               "log in first?")
        build_only = box.addButton("&Build only", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        chosen = box.clickedButton() is build_only
        box.deleteLater()
        if chosen:
            self._launch([uid for uid in uids if uid not in push_only], {}, build_only=True)

    # --- the run ----------------------------------------------------------------------------------

    def _launch(self, uids: list[int], push_only: dict[int, str], build_only: bool) -> None:
        """The run gets a snapshot: edits made while it runs never reach the workers. Row
        states change only once the engine answers (see _engine_started)."""
        if not uids:
            return
        source = self.document.project
        rows = [self.model.row_of(uid) for uid in uids]
        snapshot = projects.Project(registry="" if build_only else source.registry, builders=source.builders,
                                    pushers=source.pushers, path=source.path, push=source.push,
                                    insecure=source.insecure, build=copy.deepcopy(source.build),
                                    images=[source.images[row].copy() for row in rows])
        options = RunOptions.from_project(snapshot)
        keys = image_keys(snapshot.images)
        refs = [tuple(image.refs(snapshot.registry)) for image in snapshot.images]
        inputs = [build_inputs(image, snapshot.build) for image in snapshot.images]
        # What changed while the registry was checked counts too: a build arg fixed meanwhile.
        built_from = dict(zip(uids, inputs))
        push_only = {uid: image_id for uid, image_id in push_only.items()
                     if uid in built_from and self.model.state_by_uid(uid).built_from == built_from[uid]}
        self._pending = (uids, push_only, keys, refs, inputs, bool(snapshot.registry))
        self._run_folder = new_run_folder()
        run_in_background(prune_run_folders, lambda _: None, lambda _: None)  # best effort, as before
        self.keys = dict(zip(keys, uids))
        self.started_at = time.monotonic()
        self.rows_started = False
        push_only_keys = {key: push_only[uid] for key, uid in self.keys.items() if uid in push_only}
        self.session.start(snapshot, options, push_only_keys, self._run_folder, self._worker_log)
        self.message.emit("Connecting to the Docker engine…", 0)
        self.launched.emit()
        self.busyChanged.emit()

    def _engine_started(self, engine: str, backend: Any) -> None:
        assert self._pending is not None and self._run_folder is not None
        uids, push_only, keys, refs, inputs, will_push = self._pending
        self.report = None  # the rows show this run now: the last one's report goes with them
        self.model.start_rows(uids, list(push_only), dict(zip(uids, refs)), will_push, dict(zip(uids, inputs)))
        self.rows_started = True
        for key, uid in zip(keys, uids):
            self.model.add_log_file(uid, self._run_folder / file_name(key))
        self.message.emit(f"Running on {engine}", 0)
        self.rowsStarted.emit(backend)

    def _events(self, records: list[Any]) -> None:
        changed = self.model.apply_events(records, self.keys)
        self.eventsApplied.emit(records, changed)

    def _finished(self, report: RunReport | None) -> None:
        if report is not None:
            self.report = report
        if report is None:  # never started: the rows and the report stay the last run's
            self.message.emit("The run did not start", 8000)
        else:
            self.message.emit(f"Run finished: {summary(report)}", 0)
        self.busyChanged.emit()
        self.finished.emit(report)

    # --- the report ---------------------------------------------------------------------------------

    def export_report(self) -> None:
        """The last run's report as JSON (the CLI's) or CSV, where the user chooses."""
        report = self.report
        if report is None:
            QMessageBox.information(self._window, "Export report", "There is no finished run to export yet.")
            return
        path, chosen = QFileDialog.getSaveFileName(self._window, "Export run report", stored.last_folder(),
                                                   "JSON report (*.json);;CSV (*.csv)")
        if not path:
            return
        csv = path.endswith(".csv") or chosen.startswith("CSV")
        try:
            Path(path).write_text(report.to_csv() if csv else report.to_json() + "\n",
                                  encoding="utf-8", newline="" if csv else None)
        except OSError as exc:  # a CSV still open in a spreadsheet, a read-only folder
            show_box(self._window, QMessageBox.Icon.Warning, "Cannot export the report",
                     f"{path} could not be written:", exc.strerror or str(exc), "export-error")
