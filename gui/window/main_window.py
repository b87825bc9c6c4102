"""The main window: builds the frame and connects the parts.

The parts each own one job: the document (the project, its undo and autosave),
the project files (New, Open, Save, recovery, adding folders), the run flow
(Start, Retry, the registry check, the run's events, on its session), the run's
progress (bar, counts, taskbar, tray), the table (view, filter, context menu), the
row commands, the detail panel, the log view, the controls bar, the banner, the
build backend label, and the actions (the menus that offer them and the one rule
that enables them). They talk through signals. This class connects them, decides
what is shown where (the selected image's details and log), and handles what only
a window can: closing, quitting, its layout.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QModelIndex, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QHBoxLayout, QLabel, QLineEdit, QMainWindow, QMessageBox, QSplitter,
                               QTabWidget, QVBoxLayout, QWidget)

from .. import __version__
from ..pipeline import events as ev
from ..pipeline.report import RunReport
from . import settings as stored
from .actions import Actions, UiState
from .backend_label import BackendLabel
from .banner import Banner
from .controls_bar import ControlsBar
from .detail_panel import DetailPanel
from .document import ProjectDocument
from .image_table import ImageTable
from .log_view import LogView
from .login_dialog import log_in
from .project_files import ProjectFiles
from .row_commands import RowCommands
from .run_flow import RunFlow
from .run_progress import RunProgress
from .timeline import TimelineArea

log = logging.getLogger(__name__)

# The application quits (log-off): the run ends and background calls are waited for until
# this long after; the process then ends at once (app._leave), within the 5 s a log-off allows.
QUIT_WITHIN = 3.5


class MainWindow(QMainWindow):
    runFinished = Signal(object)  # RunReport (or None), once the window shows the run's end

    def __init__(self, worker_log: str | None = None) -> None:
        super().__init__()
        self.document = ProjectDocument(self)
        self.model = self.document.model
        self.runs = RunFlow(self, self.document, worker_log, self._commit_typing)
        self.files = ProjectFiles(self, self.document, lambda: self.runs.busy, self._commit_typing)
        self.rows = RowCommands(self.document, self)
        self.progress = RunProgress(self, self.runs, self.document)
        self.actions = Actions(self)
        self._close_after_run = False
        self._quitting = False
        self._shut_down = False  # the application's quit has ended the run (see _application_quits)
        self.quit_deadline: float | None = None  # time.monotonic() by which quitting must be done
        self.run_left_running = False  # quitting could not end the run by the deadline
        self._logging_in = False  # the registry is being asked for a login
        self._can_undo = (False, False)  # (undo, redo) as the undo stack last said
        self._build_ui()
        self.actions.populate(self, self.files.fill_recent)
        QShortcut(QKeySequence("Ctrl+L"), self, activated=self.filter.setFocus)
        self._connect()
        self._restore_layout()
        self._document_replaced()

    # --- the frame ---------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = Banner()
        self.controls = ControlsBar()
        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter images by name, tag, folder or status (Ctrl+L)")
        self.filter.setClearButtonEnabled(True)
        self.filter.setAccessibleName("Filter images")
        self.table = ImageTable(self.model)
        self.table.set_menu_actions(self.actions.row_menu)
        self.details = DetailPanel()
        self.log = LogView()
        self.timeline = TimelineArea(self.model)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log, "&Log")
        self.tabs.addTab(self.timeline, "Ti&meline")
        self.tabs.addTab(self.details, "&Details")
        self.tabs.setElideMode(Qt.TextElideMode.ElideMiddle)  # a long image name in the Log tab's title
        self.log.shownChanged.connect(self._name_log_tab)
        self.backend_label = BackendLabel()
        self.statusBar().addPermanentWidget(self.backend_label)

        self.splitter = QSplitter(Qt.Orientation.Vertical)
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        filter_row = QHBoxLayout()
        filter_label = QLabel("F&ilter")
        filter_label.setBuddy(self.filter)
        filter_row.addWidget(filter_label)
        filter_row.addWidget(self.filter, 1)
        top_layout.addLayout(filter_row)
        top_layout.addWidget(self.table)
        self.splitter.addWidget(top)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addWidget(self.controls)
        layout.addWidget(self.splitter, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.progress.overall, 2)
        bottom.addWidget(self.progress.counts, 3)
        layout.addLayout(bottom)
        self.setCentralWidget(central)
        self.resize(1100, 720)

    def _connect(self) -> None:
        a, doc, files, runs, rows = self.actions, self.document, self.files, self.runs, self.rows
        a.new.triggered.connect(files.new_project)
        a.open.triggered.connect(files.open_dialog)
        a.save.triggered.connect(files.save)
        a.save_as.triggered.connect(files.save_as)
        a.export.triggered.connect(runs.export_report)
        a.quit.triggered.connect(self.close)
        a.add_image.triggered.connect(files.add_image_dialog)
        a.add_folder.triggered.connect(files.add_folder_dialog)
        files.imagesAdded.connect(self._select)
        self.table.foldersDropped.connect(files.add_folders)
        self.table.set_drop_action(a.add_folder)
        a.duplicate.triggered.connect(lambda: self._select(doc.duplicate(self.table.selected_uids())))
        a.remove.triggered.connect(lambda: doc.remove(self.table.selected_uids()))
        self.table.addAction(a.remove)  # its Delete shortcut works with the table focused
        a.enable.triggered.connect(lambda: doc.set_enabled(self.table.selected_uids(), True))
        a.disable.triggered.connect(lambda: doc.set_enabled(self.table.selected_uids(), False))
        a.undo.triggered.connect(doc.undo.undo)
        a.redo.triggered.connect(doc.undo.redo)
        doc.undo.undoTextChanged.connect(lambda text: a.undo.setText(f"&Undo {text}".rstrip()))
        doc.undo.redoTextChanged.connect(lambda text: a.redo.setText(f"&Redo {text}".rstrip()))
        doc.undo.canUndoChanged.connect(self._undo_changed)
        doc.undo.canRedoChanged.connect(self._undo_changed)
        a.start.triggered.connect(runs.start)
        a.cancel.triggered.connect(runs.cancel)
        a.retry.triggered.connect(runs.retry_failed)
        a.build_selected.triggered.connect(lambda: self._with_selected(runs.build_one))
        a.cancel_selected.triggered.connect(lambda: self._with_selected(runs.cancel_one))
        a.show_folder.triggered.connect(lambda: self._with_selected(lambda uid: rows.open(uid, folder=True)))
        a.open_dockerfile.triggered.connect(lambda: self._with_selected(lambda uid: rows.open(uid, folder=False)))
        for act, what in ((a.copy_ref, "ref"), (a.copy_digest, "digest"), (a.copy_error, "error")):
            act.triggered.connect(lambda _=False, w=what: self._with_selected(lambda uid: rows.copy(uid, w)))
        a.failed_only.toggled.connect(self.table.filter.set_failed_only)
        a.about.triggered.connect(self.about)
        self.filter.textChanged.connect(self.table.filter.set_text)
        doc.changed.connect(self._update_title)
        doc.replaced.connect(self._document_replaced)
        doc.settingChanged.connect(self._setting_changed)
        doc.undo.indexChanged.connect(lambda _: self._refresh())
        self.model.rowsInserted.connect(lambda *_: self._refresh())
        self.model.rowsRemoved.connect(lambda *_: self._refresh())
        self.model.modelReset.connect(self._refresh)
        self.model.dataChanged.connect(self._rows_changed)
        self.table.selectionModel().selectionChanged.connect(lambda *_: self._refresh())
        self.table.filter.modelReset.connect(self._refresh)
        self.table.filter.layoutChanged.connect(self._refresh)
        self.table.menuAboutToShow.connect(self._update_actions)
        self.details.edited.connect(doc.edit)
        self.controls.registryEdited.connect(lambda text: doc.set_setting("registry", text))
        self.controls.pushViaChanged.connect(lambda value: doc.set_setting("push", value))
        self.controls.limitsChanged.connect(self._limits_changed)
        self.controls.set_login_action(a.login)
        a.login.triggered.connect(
            lambda: log_in(self, self.controls.registry.text().strip(), self._login_asking, self._say))
        self.backend_label.kindChanged.connect(self._backend_kind)
        for part in (files, runs, rows):
            part.message.connect(self._say)
        runs.busyChanged.connect(self._update_actions)
        runs.launched.connect(self._run_launched)
        runs.rowsStarted.connect(self._rows_started)
        runs.eventsApplied.connect(self._events)
        runs.finished.connect(self._run_finished)
        runs.engineUnreachable.connect(self._engine_unreachable)
        runs.failed.connect(self._run_failed)
        self.progress.ticked.connect(self.timeline.update)
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self._application_quits)

    # --- layout remembered ------------------------------------------------------------------

    def _restore_layout(self) -> None:
        config = stored.settings()
        for key, restore in (("geometry", self.restoreGeometry), ("splitter", self.splitter.restoreState),
                             ("columns", self.table.horizontalHeader().restoreState)):
            value = config.value(key)
            if isinstance(value, QByteArray):
                restore(value)
        tab = config.value("tab")
        if tab is not None:
            self.tabs.setCurrentIndex(int(tab))

    def _save_layout(self) -> None:
        config = stored.settings()
        config.setValue("geometry", self.saveGeometry())
        config.setValue("splitter", self.splitter.saveState())
        config.setValue("columns", self.table.horizontalHeader().saveState())
        config.setValue("tab", self.tabs.currentIndex())

    # --- what is shown ------------------------------------------------------------------------

    def _say(self, text: str, timeout: int) -> None:
        """A part's message for the status bar ("" clears it)."""
        if text:
            self.statusBar().showMessage(text, timeout)
        else:
            self.statusBar().clearMessage()

    def _document_replaced(self) -> None:
        project = self.document.project
        self.controls.show_settings(project.registry, project.push, project.builders, project.pushers)
        self.runs.forget_report()
        self.backend_label.probe(project.build)
        self._update_title()
        self._refresh()

    def _setting_changed(self, name: str, value: Any) -> None:
        project = self.document.project
        self.controls.show_settings(project.registry, project.push, project.builders, project.pushers)
        if name in ("builders", "pushers"):
            self.runs.set_limits(project.builders, project.pushers)

    def _limits_changed(self, builders: int, pushers: int) -> None:
        self.document.set_setting("builders", builders)
        self.document.set_setting("pushers", pushers)
        self.runs.set_limits(builders, pushers)

    def _update_title(self) -> None:
        self.setWindowTitle(f"{self.document.title}[*] — Dockpool")  # Qt shows [*] as * while modified
        self.setWindowModified(self.document.modified)

    def _rows_changed(self, top_left: QModelIndex, bottom_right: QModelIndex, *_: Any) -> None:
        """Per-row updates come by the hundred during a run: only the selected row's matter."""
        uid = self._selected_single()
        row = self.model.row_of(uid) if uid is not None else None
        if row is not None and top_left.row() <= row <= bottom_right.row():
            self._refresh_details()

    def _refresh(self) -> None:
        """After any change of rows, selection or run: the side panels and the actions."""
        self._refresh_details()
        self._refresh_log()
        self._update_actions()
        self.progress.update()

    def _selected_single(self) -> int | None:
        uids = self.table.selected_uids()
        return uids[0] if len(uids) == 1 else None

    def _with_selected(self, command: Any) -> None:
        """A command for one image, on the one selected (the row the context menu opened on)."""
        uid = self._selected_single()
        if uid is not None:
            command(uid)

    def _refresh_details(self) -> None:
        uid = self._selected_single()
        row = self.model.row_of(uid) if uid is not None else None
        if row is None:
            self.details.show_image(None, None, [])
        else:
            self.details.show_image(uid, self.model.image(row), self.model.problems(row))

    def _refresh_log(self) -> None:
        uid = self._selected_single()
        row = self.model.row_of(uid) if uid is not None else None
        if row is None:
            if self.log.key is not None:
                self.log.show_image(None, "", [], 0)
            return
        key = self.runs.key_of(uid) or f"uid:{uid}"
        if key == self.log.key:
            return
        state = self.model.state(row)
        self.log.show_image(key, self.model.image(row).name, state.log_files, state.log_lines)

    def _name_log_tab(self, name: str) -> None:
        """The Log tab names the image it shows, seen from the other tabs too."""
        self.tabs.setTabText(self.tabs.indexOf(self.log), f"&Log — {name.replace('&', '&&')}" if name else "&Log")

    def _update_actions(self) -> None:
        uid = self._selected_single()
        state = self.model.state_by_uid(uid) if uid is not None and self.model.row_of(uid) is not None else None
        counts = self.model.counts()
        self.actions.update(UiState(
            running=self.runs.busy, rows=counts["enabled"],
            selected=len(self.table.selected_uids()),
            has_failed=counts["retryable"] > 0,
            has_report=self.runs.report is not None,
            one_selected_running=bool(self.runs.running and state is not None and state.status is not None
                                      and not state.status.final and uid in self.runs.keys.values()),
            one_selected_enabled=bool(state is not None and uid is not None and self.model.image_by_uid(uid).enabled),
            can_undo=self._can_undo[0], can_redo=self._can_undo[1], logging_in=self._logging_in))
        self.controls.set_running(self.runs.busy)

    def _undo_changed(self, _: bool) -> None:
        # Read here, when the stack says it changed: the rule never asks the stack itself,
        # which Qt may already have destroyed while the window is being torn down.
        self._can_undo = (self.document.undo.canUndo(), self.document.undo.canRedo())
        self._update_actions()

    def _login_asking(self, asking: bool) -> None:
        self._logging_in = asking
        self._update_actions()

    def _select(self, uids: list[int]) -> None:
        if uids:
            self.table.select_uid(uids[0])

    def select_row(self, row: int) -> None:
        self.table.select_uid(self.model.uid(row))

    def _commit_typing(self) -> None:
        """What is being typed (a table cell, the registry) goes into the project first."""
        self.table.commit_editor()
        self.controls.commit()

    def _backend_kind(self, kind: str) -> None:
        self.model.set_backend(kind)
        self._refresh_details()

    def changeEvent(self, event: QEvent) -> None:
        """The system's colour scheme changed: colours come from the palette, repaint."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.table.viewport().update()
            self.timeline.update()

    # --- a run, as it shows -------------------------------------------------------------------------

    def _run_launched(self) -> None:
        """The last run's traces go: its log and its banner."""
        self.log.show_image(None, "", [], 0)
        self.banner.hide()
        self._refresh()

    def _rows_started(self, backend: Any) -> None:
        self.backend_label.show_backend(backend)
        self.log.key = None  # reload the selected image's log from this run's file
        self._refresh()

    def _events(self, records: list[Any], changed: set[int]) -> None:
        if self.log.key is not None and self.runs.keys.get(self.log.key) in changed:
            self.log.append_records(records)
        if any(isinstance(r, (ev.BuildFailed, ev.PushFailed, ev.Cancelled, ev.PushDone, ev.BuildDone))
               for r in records):
            self.table.filter.outcomes_changed()
            self._update_actions()

    def _engine_unreachable(self, message: str) -> None:
        self.banner.show_message(f"<b>Docker engine unreachable.</b> {message}. Start Docker (or Docker Desktop) "
                                 "or set DOCKER_HOST, then Retry.", [("Retry", self.runs.again)])

    def _run_failed(self, message: str) -> None:
        self.banner.show_message(f"<b>The run could not go on.</b> {message}", [])

    def _run_finished(self, report: RunReport | None) -> None:
        self._refresh()
        self.runFinished.emit(report)
        if self._close_after_run:
            self.close()

    def about(self) -> None:
        QMessageBox.about(self, "About Dockpool",
                          f"<h3>Dockpool {__version__}</h3><p>Builds many Docker images at once and pushes them "
                          "through a small pool of pushers.</p><p>Build: " + self.backend_label.description + "</p>")

    # --- closing and quitting -----------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._quitting:  # nobody can be asked: end the run, keep unsaved edits in the autosave
            self._application_quits()
            self._save_layout()
            self.runs.close()
            event.accept()
            return
        if self.runs.running:
            if not self._close_after_run:
                answer = QMessageBox.question(self, "Cancel the run?",
                                              "A run is in progress. Cancel it and close Dockpool?")
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
                self._close_after_run = True
                self.runs.cancel()
            event.ignore()  # closes for real when the run has ended (_run_finished)
            return
        if not self.files.confirm_discard():
            self._close_after_run = False
            event.ignore()
            return
        self._save_layout()
        if not self.document.modified:
            self.document.discard_autosave()
        self.runs.close()
        event.accept()

    def prepare_to_quit(self) -> None:
        """The application quits (log-off, SIGTERM, QApplication.quit()): the close that Qt
        sends next must not ask anything, nor be refused (a refused close cancels the quit)."""
        self._quitting = True

    def _application_quits(self) -> None:
        """End the run in order, within 5 s, and keep unsaved edits in the autosave. Once:
        the close Qt sends and aboutToQuit both come here, and a run slow to end must not
        be waited for twice."""
        self._quitting = True
        if self._shut_down:
            return
        self._shut_down = True
        self.quit_deadline = time.monotonic() + QUIT_WITHIN
        self._commit_typing()
        self.document.autosave()
        if not self.runs.shutdown(self.quit_deadline):
            self.run_left_running = True
            log.warning("the run had not ended %.1f s after the application was told to quit", QUIT_WITHIN)
