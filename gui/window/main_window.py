"""The main window: builds the frame and connects the parts.

The parts each own one job: the document (the project, its file, undo,
autosave), the session (the run on its thread), the table (view, filter,
context menu), the detail panel, the log view, the controls bar, the banner,
and the actions (with the one rule that enables them). This class wires their
signals and handles what only a window can: closing, quitting, layout.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QEvent, QModelIndex, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QCloseEvent, QDesktopServices, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QLabel, QLineEdit, QMainWindow, QMenu,
                               QMessageBox, QProgressBar, QSplitter, QSystemTrayIcon, QTabWidget, QToolBar,
                               QVBoxLayout, QWidget)

from .. import __version__
from ..pipeline import events as ev
from ..pipeline import project as projects
from ..pipeline import reference
from ..pipeline.discover import find_images
from ..pipeline.layer_cache import cache_root
from ..pipeline.project import image_keys
from ..pipeline.report import RunReport
from ..pipeline.runlogs import file_name
from ..pipeline.supervisor import RunOptions
from . import settings as stored
from .actions import Actions, UiState
from .background import run_in_background
from .banner import Banner
from .controls_bar import ControlsBar
from .detail_panel import DetailPanel
from .document import ProjectDocument
from .image_table import ImageTable
from .log_view import LogView
from .login_dialog import LoginDialog
from .session import RunSession
from .taskbar import TaskbarProgress
from .timeline import TimelineArea

log = logging.getLogger(__name__)

AUTOSAVE_INTERVAL_MS = 15_000
NOTIFY_AFTER_SECONDS = 60.0
KEEP_RUN_FOLDERS = 20


def runs_folder() -> Path:
    return cache_root() / "runs"


def new_run_folder() -> Path:
    """A folder for one run's logs; the oldest beyond KEEP_RUN_FOLDERS are removed."""
    root = runs_folder()
    root.mkdir(parents=True, exist_ok=True)
    for old in sorted(root.iterdir())[:-KEEP_RUN_FOLDERS]:
        shutil.rmtree(old, ignore_errors=True)
    folder = root / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{time.monotonic_ns() % 1_000_000:06d}"
    folder.mkdir()
    return folder


class MainWindow(QMainWindow):
    runFinished = Signal(object)  # RunReport (or None): for tests and the tray message

    def __init__(self, worker_log: str | None = None) -> None:
        super().__init__()
        self.worker_log = worker_log
        self.document = ProjectDocument(self)
        self.model = self.document.model
        self.session = RunSession(self)
        self.actions = Actions(self)
        self._report: RunReport | None = None
        self._keys: dict[str, int] = {}  # engine key -> row uid, for the run under way
        self._run_started = 0.0
        self._close_after_run = False
        self._quitting = False
        self._checking = False  # the registry check before a run is under way
        self._closing = False  # the close was accepted: late answers from background work are dropped
        self._can_undo = (False, False)  # (undo, redo) as the undo stack last said
        self._backend = "…"
        self._build_ui()
        self._build_menus()
        self._connect()
        self._restore_layout()
        self._autosave = QTimer(self, interval=AUTOSAVE_INTERVAL_MS, timeout=self.document.autosave)
        self._autosave.start()
        self._ticker = QTimer(self, interval=1000, timeout=self._tick)
        self._taskbar = TaskbarProgress(self)
        self._rows_started = False  # this run's rows have started (the engine answered)
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
        self.details = DetailPanel()
        self.log = LogView()
        self.timeline = TimelineArea(self.model)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.log, "&Log")
        self.tabs.addTab(self.timeline, "Ti&meline")
        self.tabs.addTab(self.details, "&Details")
        self.overall = QProgressBar()
        self.overall.setFormat("%v / %m done")
        self.overall.setAccessibleName("Run progress")
        self.counts = QLabel("Ready")
        self.backend_label = QLabel()
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
        bottom.addWidget(self.overall, 2)
        bottom.addWidget(self.counts, 3)
        layout.addLayout(bottom)
        self.setCentralWidget(central)
        self.resize(1100, 720)

    def _build_menus(self) -> None:
        a = self.actions
        menus = self.menuBar()
        file_menu = menus.addMenu("&File")
        for act in (a.new, a.open):
            file_menu.addAction(act)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        for act in (a.save, a.save_as, a.export):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(a.quit)
        edit_menu = menus.addMenu("&Edit")
        edit_menu.addAction(a.undo)
        edit_menu.addAction(a.redo)
        images_menu = menus.addMenu("Ima&ges")
        for act in (a.add_image, a.add_folder, a.duplicate, a.remove, a.enable, a.disable):
            images_menu.addAction(act)
        images_menu.addSeparator()
        images_menu.addAction(a.failed_only)
        run_menu = menus.addMenu("Ru&n")
        for act in (a.start, a.cancel, a.retry):
            run_menu.addAction(act)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(a.about)
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (a.open, a.save, None, a.add_image, a.add_folder, a.duplicate, a.remove, a.enable, a.disable,
                    None, a.start, a.cancel, a.retry):
            toolbar.addSeparator() if act is None else toolbar.addAction(act)
        self.addToolBar(toolbar)
        QShortcut(QKeySequence("Ctrl+L"), self, activated=self.filter.setFocus)

    def _connect(self) -> None:
        a, doc = self.actions, self.document
        a.new.triggered.connect(self.new_project)
        a.open.triggered.connect(self.open_dialog)
        a.save.triggered.connect(self.save)
        a.save_as.triggered.connect(self.save_as)
        a.export.triggered.connect(self.export_report)
        a.quit.triggered.connect(self.close)
        a.add_image.triggered.connect(self.add_image_dialog)
        a.add_folder.triggered.connect(self.add_folder_dialog)
        a.duplicate.triggered.connect(lambda: self._select(doc.duplicate(self.table.selected_uids())))
        a.remove.triggered.connect(lambda: doc.remove(self.table.selected_uids()))
        a.enable.triggered.connect(lambda: doc.set_enabled(self.table.selected_uids(), True))
        a.disable.triggered.connect(lambda: doc.set_enabled(self.table.selected_uids(), False))
        a.undo.triggered.connect(doc.undo.undo)
        a.redo.triggered.connect(doc.undo.redo)
        doc.undo.undoTextChanged.connect(lambda text: a.undo.setText(f"&Undo {text}".rstrip()))
        doc.undo.redoTextChanged.connect(lambda text: a.redo.setText(f"&Redo {text}".rstrip()))
        doc.undo.canUndoChanged.connect(self._undo_changed)
        doc.undo.canRedoChanged.connect(self._undo_changed)
        a.start.triggered.connect(self.start)
        a.cancel.triggered.connect(self.cancel)
        a.retry.triggered.connect(self.retry_failed)
        a.build_selected.triggered.connect(self._build_selected)
        a.cancel_selected.triggered.connect(self._cancel_selected)
        a.show_folder.triggered.connect(lambda: self._open_selected(folder=True))
        a.open_dockerfile.triggered.connect(lambda: self._open_selected(folder=False))
        a.copy_ref.triggered.connect(lambda: self._copy_selected("ref"))
        a.copy_digest.triggered.connect(lambda: self._copy_selected("digest"))
        a.copy_error.triggered.connect(lambda: self._copy_selected("error"))
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
        self.table.foldersDropped.connect(self.add_folders)
        self.table.menuRequested.connect(self._fill_context_menu)
        self.details.edited.connect(doc.edit)
        self.controls.registryEdited.connect(lambda text: doc.set_setting("registry", text))
        self.controls.pushViaChanged.connect(lambda value: doc.set_setting("push", value))
        self.controls.limitsChanged.connect(self._limits_changed)
        self.controls.loginRequested.connect(self.log_in)
        self.session.started.connect(self._engine_started)
        self.session.eventsReady.connect(self._events)
        self.session.engineUnreachable.connect(self._engine_unreachable)
        self.session.failed.connect(self._run_failed)
        self.session.finished.connect(self._run_finished)
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

    def _document_replaced(self) -> None:
        project = self.document.project
        self.controls.show_settings(project.registry, project.push, project.builders, project.pushers)
        self._report = None
        self._probe_backend()
        self._update_title()
        self._refresh()

    def _setting_changed(self, name: str, value: Any) -> None:
        project = self.document.project
        self.controls.show_settings(project.registry, project.push, project.builders, project.pushers)
        if name in ("builders", "pushers"):
            self.session.set_limits(project.builders, project.pushers)

    def _limits_changed(self, builders: int, pushers: int) -> None:
        self.document.set_setting("builders", builders)
        self.document.set_setting("pushers", pushers)
        self.session.set_limits(builders, pushers)

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
        self._update_overall()

    def _selected_single(self) -> int | None:
        uids = self.table.selected_uids()
        return uids[0] if len(uids) == 1 else None

    def _refresh_details(self) -> None:
        uid = self._selected_single()
        row = self.model.row_of(uid) if uid is not None else None
        if row is None:
            self.details.show_image(None, None, [])
        else:
            self.details.show_image(uid, self.model.image(row), self.model.problems(row))

    def _key_of(self, uid: int) -> str | None:
        return next((key for key, value in self._keys.items() if value == uid), None)

    def _refresh_log(self) -> None:
        uid = self._selected_single()
        row = self.model.row_of(uid) if uid is not None else None
        if row is None:
            if self.log.key is not None:
                self.log.show_image(None, "", [], 0)
            return
        key = self._key_of(uid) or f"uid:{uid}"
        if key == self.log.key:
            return
        state = self.model.state(row)
        self.log.show_image(key, self.model.image(row).name, state.log_files, state.log_lines)

    def _update_actions(self) -> None:
        uid = self._selected_single()
        state = self.model.state_by_uid(uid) if uid is not None and self.model.row_of(uid) is not None else None
        counts = self.model.counts()
        self.actions.update(UiState(
            running=self.busy, rows=counts["enabled"],
            selected=len(self.table.selected_uids()),
            has_failed=counts["retryable"] > 0,
            has_report=self._report is not None,
            one_selected_running=bool(self.session.running and state is not None and state.status is not None
                                      and not state.status.final and uid in self._keys.values()),
            can_undo=self._can_undo[0], can_redo=self._can_undo[1]))
        self.controls.set_running(self.busy)

    def _undo_changed(self, _: bool) -> None:
        # Read here, when the stack says it changed: the rule never asks the stack itself,
        # which Qt may already have destroyed while the window is being torn down.
        self._can_undo = (self.document.undo.canUndo(), self.document.undo.canRedo())
        self._update_actions()

    @property
    def busy(self) -> bool:
        """A run is going, or the registry is being checked before one starts."""
        return self.session.running or self._checking

    def _update_overall(self) -> None:
        pushing = bool(self.document.project.registry)
        counts = self.model.counts()
        total, done = counts["run"], counts["run_done"]
        self.overall.setRange(0, max(1, total))
        self.overall.setValue(done)
        self.overall.setFormat("%v / %m done" if total else "no run yet")
        text = f"built {counts['built']}" + (f", pushed {counts['pushed']}" if pushing else "") + \
            f", failed {counts['failed']}"
        if counts["cancelled"]:
            text += f", cancelled {counts['cancelled']}"
        if self.session.running and 0 < done < total:
            elapsed = time.monotonic() - self._run_started
            left = elapsed / done * (total - done)
            text += f" — about {int(left) // 60}:{int(left) % 60:02d} left"
        self.counts.setText(text)
        if self.session.running and self._rows_started:  # not while the engine is asked
            self._taskbar.show(done, total, counts["run_failed"] > 0)

    def _select(self, uids: list[int]) -> None:
        if uids:
            self.table.select_uid(uids[0])

    def select_row(self, row: int) -> None:
        self.table.select_uid(self.model.uid(row))

    def changeEvent(self, event: QEvent) -> None:
        """The system's colour scheme changed: colours come from the palette, repaint."""
        super().changeEvent(event)
        if event.type() in (QEvent.Type.PaletteChange, QEvent.Type.ApplicationPaletteChange):
            self.table.viewport().update()
            self.timeline.update()

    # --- the build backend --------------------------------------------------------------------

    def _probe_backend(self) -> None:
        from ..pipeline.build_backend import resolve_backend

        settings = copy.deepcopy(self.document.project.build)
        self.backend_label.setText("Build: finding the builder…")
        run_in_background(lambda: resolve_backend(settings), self._backend_found, self._backend_failed)

    def _backend_found(self, backend: Any) -> None:
        """The status bar names the backend only; which CLI and how is in the tooltip, so a
        long path never pushes the status message out of sight."""
        self._backend = str(backend)
        self.backend_label.setText(f"Build: {backend.kind}")
        self.backend_label.setToolTip(str(backend))
        self.model.set_backend(backend.kind)
        self._refresh_details()

    def _backend_failed(self, exc: BaseException) -> None:
        self.backend_label.setText("Build: not available")
        self.backend_label.setToolTip(str(exc))
        self.model.set_backend("classic")

    # --- projects -------------------------------------------------------------------------------

    def confirm_discard(self) -> bool:
        """True when there is nothing unsaved, or the user saved or chose to discard it."""
        self._commit_typing()
        if not self.document.modified:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", f"{self.document.title} has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        if answer == QMessageBox.StandardButton.Discard:
            self.document.discard_autosave()  # the user chose: nothing to offer back later
            return True
        return False

    def _commit_typing(self) -> None:
        self.table.commit_editor()
        self.controls.commit()

    def new_project(self) -> None:
        if self.busy or not self.confirm_discard():
            return
        self.document.discard_autosave()
        self.document.show(projects.Project())

    def open_dialog(self) -> None:
        if self.busy or not self.confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open project", self._last_folder(),
                                              "Dockpool projects (*.toml);;All files (*)")
        if path:
            self.open_path(Path(path), confirmed=True)

    def open_path(self, path: Path, confirmed: bool = False, registry: str | None = None) -> bool:
        """Open a project; an invalid file leaves the current project untouched. Unsaved edits
        of this project from a crash are offered back. `registry` overrides the file's
        registry for this session without marking it modified (`make run`'s private one)."""
        if not confirmed and (self.busy or not self.confirm_discard()):
            return False
        path = Path(path).absolute()
        try:
            self.document.open(path)
        except projects.ProjectError as exc:
            self._show_box(QMessageBox.Icon.Critical, "Cannot open project",
                           f"{path} is not a valid Dockpool project:", "\n".join(exc.problems), "open-error")
            return False
        if registry is not None:
            self.document.project.registry = registry
            self.controls.show_settings(registry, self.document.project.push, self.document.project.builders,
                                        self.document.project.pushers)
            self.model.revalidate()
        self._remember_folder(path.parent)
        self.offer_recovery(path)
        return True

    def offer_recovery(self, path: Path | None = None) -> None:
        """Unsaved edits of this project (None: the untitled one) that a crash left behind."""
        recovered = stored.read_autosave(path)
        if recovered is None:
            return
        answer = QMessageBox.question(
            self, "Recover unsaved changes",
            f"Dockpool closed with unsaved changes to {path or 'an untitled project'}. Recover them?")
        if answer == QMessageBox.StandardButton.Yes:
            self.document.show(recovered, recovered=True)
        else:
            stored.clear_autosave(path)

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save project as", self._last_folder(),
                                              "Dockpool projects (*.toml)")
        if not path:
            return False
        if not path.endswith(".toml"):
            path += ".toml"
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        self._commit_typing()
        try:
            saved = self.document.save(path)
        except OSError as exc:
            QMessageBox.critical(self, "Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        self._remember_folder(saved.parent)
        self.statusBar().showMessage(f"Saved {saved}", 5000)
        return True

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in stored.recent_projects():
            act = self.recent_menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_path(Path(p)))
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _last_folder(self) -> str:
        return str(stored.settings().value("last-folder", str(Path.home())))

    def _remember_folder(self, folder: Path) -> None:
        stored.settings().setValue("last-folder", str(folder))

    # --- adding images ------------------------------------------------------------------------

    def add_image_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose the image's folder (with its Dockerfile)",
                                                  self._last_folder())
        if folder:
            self.add_folders([Path(folder)], recursive=False)

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder to scan for Dockerfiles",
                                                  self._last_folder())
        if folder:
            self.add_folders([Path(folder)])

    def add_folders(self, folders: list[Path], recursive: bool = True) -> None:
        """Scan folders for Dockerfiles off the GUI thread (a big tree takes a while)."""
        project = self.document.project
        taken = {image.name for image in project.images}
        base = project.path.parent if project.path else None
        base_dir = project.base_dir
        self.statusBar().showMessage(f"Scanning {', '.join(str(f) for f in folders)}…")

        def scan() -> list[projects.ImageSpec]:
            found: list[projects.ImageSpec] = []
            names = set(taken)
            for folder in folders:
                images = find_images(folder, base, names)
                if not recursive:
                    images = [i for i in images if (base_dir / i.context).resolve() == folder.resolve()]
                names |= {image.name for image in images}
                found += images
            return found

        run_in_background(scan, lambda found: self._folders_scanned(folders, found),
                          lambda exc: self.statusBar().showMessage(f"Cannot scan: {exc}", 8000))

    def _folders_scanned(self, folders: list[Path], found: list[projects.ImageSpec]) -> None:
        if not found:
            self.statusBar().clearMessage()
            QMessageBox.information(self, "No Dockerfile found",
                                    "No Dockerfile was found in " + ", ".join(str(f) for f in folders))
            return
        self._select(self.document.add(found, f"Add {len(found)} image(s)"))
        self._remember_folder(folders[-1])
        self.statusBar().showMessage(f"Added {len(found)} image(s)", 5000)

    # --- the context menu -------------------------------------------------------------------------

    def _fill_context_menu(self, menu: QMenu, _position: Any) -> None:
        a = self.actions
        self._update_actions()
        for act in (a.build_selected, a.cancel_selected, None, a.show_folder, a.open_dockerfile, None,
                    a.copy_ref, a.copy_digest, a.copy_error, None, a.duplicate, a.enable, a.disable, a.remove):
            menu.addSeparator() if act is None else menu.addAction(act)

    def _open_selected(self, folder: bool) -> None:
        uid = self._selected_single()
        if uid is None:
            return
        image = self.model.image_by_uid(uid)
        target = self.document.project.context_path(image)
        if not folder:
            target = target / image.dockerfile
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(target)))

    def _copy_selected(self, what: str) -> None:
        uid = self._selected_single()
        if uid is None:
            return
        image, state = self.model.image_by_uid(uid), self.model.state_by_uid(uid)
        text = {"ref": (state.refs or tuple(image.refs(self.document.project.registry)) or ("",))[0],
                "digest": state.digest or "", "error": state.error or ""}[what]
        QGuiApplication.clipboard().setText(text)
        self.statusBar().showMessage(f"Copied {text[:80]}" if text else f"Nothing to copy ({what})", 4000)

    def _build_selected(self) -> None:
        uid = self._selected_single()
        if uid is not None and not self.busy:
            self._start_checked([uid], self._push_only([uid]))

    def _cancel_selected(self) -> None:
        uid = self._selected_single()
        key = self._key_of(uid) if uid is not None else None
        if key is not None:
            self.session.cancel_image(key)

    # --- running ------------------------------------------------------------------------------

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
            self._show_box(QMessageBox.Icon.Warning, "Cannot start", "Fix these first (or disable those images):",
                           "\n".join(problems), "start-refused")
            return True
        return False

    def start(self) -> None:
        if self.busy:
            return
        uids = [self.model.uid(row) for row in range(self.model.rowCount()) if self.model.image(row).enabled]
        self._start_checked(uids, [])

    def retry_failed(self) -> None:
        """Rerun failed and cancelled images; one whose build succeeded and whose push failed
        is only pushed again (to the refs it has now: registry and tags may have been fixed)."""
        if self.busy:
            return
        uids = [self.model.uid(row) for row in range(self.model.rowCount())
                if self.model.image(row).enabled
                and self.model.state(row).status in (ev.Status.FAILED, ev.Status.CANCELLED)]
        if uids:
            self._start_checked(uids, self._push_only(uids))

    def _push_only(self, uids: list[int]) -> dict[int, str]:
        """Rows whose build is kept: they were built and failed (or were cancelled) pushing."""
        return {uid: state.image_id for uid in uids if (state := self.model.state_by_uid(uid)).image_id
                and state.failed_stage is ev.Stage.PUSH and self.document.project.registry}

    def _start_checked(self, uids: list[int], push_only: dict[int, str]) -> None:
        """Check the registry (off the GUI thread) before building everything for nothing."""
        if not uids or self._refuse_invalid(uids):
            return
        project = self.document.project
        if not project.registry:
            self._launch(uids, push_only, build_only=False)
            return
        from ..pipeline.docker_engine import engine_insecure_registries
        from ..pipeline.registry_http import check_registry

        repository = self.model.image_by_uid(uids[0]).name
        registry, insecure = project.registry, project.insecure

        def check() -> str | None:
            """As the run will reach it: over plain HTTP when the engine lists it as insecure.
            An engine that does not answer leaves that unknown: no verdict, and the run's
            own pre-flight says what is wrong with the engine."""
            plain = insecure or reference.is_insecure(registry)  # loopback: the engine's list is moot
            if not plain:
                listed = engine_insecure_registries()
                if listed is None:
                    return None
                plain = reference.is_insecure(registry, listed)
            return check_registry(registry, repository, None, insecure=plain)

        self.statusBar().showMessage(f"Checking {registry}…")
        self._checking = True
        self._update_actions()
        run_in_background(check,
                          lambda problem: self._registry_checked(problem, uids, push_only),
                          lambda exc: self._registry_checked(str(exc), uids, push_only))

    def _registry_checked(self, problem: str | None, uids: list[int], push_only: dict[int, str]) -> None:
        self._checking = False
        if self._closing:
            return
        self.statusBar().clearMessage()
        self._update_actions()
        uids = [uid for uid in uids if self.model.row_of(uid) is not None]
        if problem is None:
            self._launch(uids, push_only, build_only=False)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "The registry cannot be used",
                          f"Pushing to {self.document.project.registry} would fail:", parent=self)
        box.setObjectName("registry-check")
        box.setInformativeText(f"{problem}\n\nBuild only (nothing is pushed), or cancel to fix the registry or "
                               "log in first?")
        build_only = box.addButton("&Build only", QMessageBox.ButtonRole.AcceptRole)
        box.addButton(QMessageBox.StandardButton.Cancel)
        box.exec()
        if box.clickedButton() is build_only:
            self._launch([uid for uid in uids if uid not in push_only], {}, build_only=True)

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
                                    images=[copy.deepcopy(source.images[row]) for row in rows])
        options = RunOptions.from_project(snapshot)
        keys = image_keys(snapshot.images)
        refs = [tuple(image.refs(snapshot.registry)) for image in snapshot.images]
        self._pending = (uids, push_only, keys, refs, bool(snapshot.registry))
        self._run_folder = new_run_folder()
        self._keys = dict(zip(keys, uids))
        self._run_started = time.monotonic()
        self._rows_started = False
        self._taskbar.clear()  # the last run's bar is not this one's
        self._report = None
        self.log.show_image(None, "", [], 0)
        self.banner.hide()
        push_only_keys = {key: push_only[uid] for key, uid in self._keys.items() if uid in push_only}
        self.session.start(snapshot, options, push_only_keys, self._run_folder, self.worker_log)
        self.statusBar().showMessage("Connecting to the Docker engine…")
        self._ticker.start()
        self._refresh()

    def _engine_started(self, engine: str, backend: Any) -> None:
        uids, push_only, keys, refs, will_push = self._pending
        self.model.start_rows(uids, list(push_only), dict(zip(uids, refs)), will_push)
        self._rows_started = True
        for key, uid in zip(keys, uids):
            self.model.add_log_file(uid, self._run_folder / file_name(key))
        self.statusBar().showMessage(f"Running on {engine}")
        self._backend_found(backend)
        self.log.key = None  # reload the selected image's log from this run's file
        self._refresh()

    def _events(self, records: list[Any]) -> None:
        changed = self.model.apply_events(records, self._keys)
        if self.log.key is not None and self._keys.get(self.log.key) in changed:
            self.log.append_records(records)
        self._update_overall()
        if any(isinstance(r, (ev.BuildFailed, ev.PushFailed, ev.Cancelled, ev.PushDone, ev.BuildDone))
               for r in records):
            self.table.filter.outcomes_changed()
            self._update_actions()

    def _tick(self) -> None:
        self.model.tick_elapsed()
        self.timeline.update()
        self._update_overall()

    def _engine_unreachable(self, message: str) -> None:
        self.banner.show_message(f"<b>Docker engine unreachable.</b> {message}. Start Docker (or Docker Desktop) "
                                 "or set DOCKER_HOST, then Retry.", [("Retry", self.start)])

    def _run_failed(self, message: str) -> None:
        self.banner.show_message(f"<b>The run could not go on.</b> {message}", [])

    def _run_finished(self, report: RunReport | None) -> None:
        self._report = report
        self._ticker.stop()
        self.model.tick_elapsed()
        self.timeline.update()
        self._refresh()
        self._taskbar.finished()
        if report is not None:
            self._notify(report)
        else:
            self.statusBar().showMessage("The run did not start", 8000)
        self.runFinished.emit(report)
        if self._close_after_run:
            self.close()

    def _notify(self, report: RunReport) -> None:
        took = (report.finished or time.time()) - report.started
        failed = report.count(ev.Status.FAILED)
        message = f"{len(report.images)} image(s) in {took:.0f} s" + (f", {failed} failed" if failed else "")
        self.statusBar().showMessage(f"Run finished: {message}")
        if took >= NOTIFY_AFTER_SECONDS and QSystemTrayIcon.isSystemTrayAvailable():
            tray = getattr(self, "_tray", None) or QSystemTrayIcon(self.windowIcon(), self)
            self._tray = tray
            tray.show()
            tray.showMessage("Dockpool run finished", message,
                             QSystemTrayIcon.MessageIcon.Warning if failed else QSystemTrayIcon.MessageIcon.Information)

    def cancel(self) -> None:
        if self.session.running:
            self.statusBar().showMessage("Cancelling…")
            self.session.cancel()

    # --- login, report, about ---------------------------------------------------------------------

    def log_in(self) -> None:
        from ..pipeline.credentials import login

        registry = self.controls.registry.text().strip()
        if not registry:
            QMessageBox.information(self, "Log in", "Enter the registry first.")
            return
        dialog = LoginDialog(registry, self)
        if dialog.exec() != LoginDialog.DialogCode.Accepted:
            return
        username, password = dialog.username.text(), dialog.password.text()
        self.controls.login.setEnabled(False)
        self.statusBar().showMessage(f"Logging in to {registry}…")
        run_in_background(lambda: login(registry, username, password),
                          lambda where: self._logged_in(registry, where),
                          lambda exc: self._login_failed(registry, exc))

    def _logged_in(self, registry: str, where: str) -> None:
        self.controls.login.setEnabled(not self.session.running)
        self.statusBar().showMessage(f"Logged in to {registry}; stored in {where}", 8000)

    def _login_failed(self, registry: str, exc: BaseException) -> None:
        self.controls.login.setEnabled(not self.session.running)
        self.statusBar().clearMessage()
        self._show_box(QMessageBox.Icon.Warning, "Login failed", f"{registry} refused the login:",
                       str(getattr(exc, "explanation", None) or exc), "login-error")

    def export_report(self) -> None:
        if self._report is None:
            QMessageBox.information(self, "Export report", "There is no finished run to export yet.")
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export run report", self._last_folder(),
                                                   "JSON report (*.json);;CSV (*.csv)")
        if not path:
            return
        csv = path.endswith(".csv") or chosen.startswith("CSV")
        try:
            Path(path).write_text(self._report.to_csv() if csv else self._report.to_json() + "\n",
                                  encoding="utf-8", newline="" if csv else None)
        except OSError as exc:  # a CSV still open in a spreadsheet, a read-only folder
            self._show_box(QMessageBox.Icon.Warning, "Cannot export the report", f"{path} could not be written:",
                           exc.strerror or str(exc), "export-error")

    def about(self) -> None:
        QMessageBox.about(self, "About Dockpool",
                          f"<h3>Dockpool {__version__}</h3><p>Builds many Docker images at once and pushes them "
                          "through a small pool of pushers.</p><p>Build: " + self._backend + "</p>")

    def _show_box(self, icon: QMessageBox.Icon, title: str, text: str, details: str, name: str) -> None:
        box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, self)
        box.setInformativeText(details)
        box.setObjectName(name)
        box.open()
        self._error_box = box  # kept so the open dialog is not collected

    # --- closing and quitting -----------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._quitting:  # nobody can be asked: end the run, keep unsaved edits in the autosave
            self._application_quits()
            self._save_layout()
            self._closing = True
            event.accept()
            return
        if self.session.running:
            if not self._close_after_run and not self._quitting:
                answer = QMessageBox.question(self, "Cancel the run?",
                                              "A run is in progress. Cancel it and close Dockpool?")
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
                self._close_after_run = True
                self.cancel()
            event.ignore()  # closes for real when the run has ended (_run_finished)
            return
        if not self._quitting and not self.confirm_discard():
            self._close_after_run = False
            event.ignore()
            return
        self._save_layout()
        if not self.document.modified:
            self.document.discard_autosave()
        self._closing = True
        event.accept()

    def prepare_to_quit(self) -> None:
        """The application quits (log-off, SIGTERM, QApplication.quit()): the close that Qt
        sends next must not ask anything, nor be refused (a refused close cancels the quit)."""
        self._quitting = True

    def _application_quits(self) -> None:
        """End the run in order, within seconds, and keep unsaved edits in the autosave."""
        self._quitting = True
        self._commit_typing()
        self.document.autosave()
        if not self.session.shutdown(5.0):
            log.warning("the run had not ended 5 s after the application was told to quit")

