"""The main window: the image table, concurrency, registry, run controls, log and timeline.

It owns the project (through the model) and at most one RunController on a
QThread at a time. Closing during a run asks, cancels, waits for the thread to
finish, and only then closes.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QByteArray, QItemSelectionModel, Qt, QThread, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDropEvent, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView, QApplication, QFileDialog, QFormLayout, QFrame, QHBoxLayout, QHeaderView, QLabel,
    QLineEdit, QMainWindow, QMessageBox, QPlainTextEdit, QProgressBar, QPushButton, QSlider, QSplitter,
    QStyle, QSystemTrayIcon, QTableView, QTabWidget, QToolBar, QVBoxLayout, QWidget,
)

from ..pipeline import events as ev
from ..pipeline import project as projects
from ..pipeline import reference
from ..pipeline.credentials import login
from ..pipeline.discover import find_images
from ..pipeline.report import RunReport
from ..pipeline.supervisor import RunOptions
from . import settings as stored
from .controller import RunController
from .image_model import COL_BUILD, COL_CONTEXT, COL_ELAPSED, COL_ENABLED, COL_NAME, COL_PUSH, COL_STATUS, \
    COL_TAGS, ImageTableModel
from .login_dialog import LoginDialog
from .progress_delegate import ProgressDelegate
from .timeline import TimelineView

AUTOSAVE_INTERVAL_MS = 15_000
NOTIFY_AFTER_SECONDS = 60.0
BUILDERS_RANGE = (1, 32)
PUSHERS_RANGE = (1, 8)


class ImageTable(QTableView):
    """The table; folders dropped on it are scanned for Dockerfiles."""

    foldersDropped = Signal(object)  # list[Path]

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dragMoveEvent(self, event: Any) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        folders = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        folders = [folder for folder in folders if folder.is_dir()]
        if folders:
            self.foldersDropped.emit(folders)
            event.acceptProposedAction()


class DetailPanel(QWidget):
    """Build args and target of the selected image (the fields too wide for the table)."""

    changed = Signal(object, str)  # build args (dict), target

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.build_args = QPlainTextEdit()
        self.build_args.setPlaceholderText("KEY=value, one per line")
        self.build_args.setMaximumHeight(80)
        self.target = QLineEdit()
        self.target.setPlaceholderText("multi-stage target (optional)")
        self.problems = QLabel()
        self.problems.setWordWrap(True)
        self.problems.setStyleSheet("color: #b00020")
        form = QFormLayout(self)
        form.addRow("Build args", self.build_args)
        form.addRow("Target", self.target)
        form.addRow(self.problems)
        self.build_args.textChanged.connect(self._emit)
        self.target.editingFinished.connect(self._emit)
        self._loading = False

    def show_image(self, image: projects.ImageSpec | None, problems: list[str]) -> None:
        self._loading = True
        self.setEnabled(image is not None)
        self.build_args.setPlainText("\n".join(f"{k}={v}" for k, v in (image.build_args if image else {}).items()))
        self.target.setText(image.target if image else "")
        self.show_problems(problems)
        self._loading = False

    def show_problems(self, problems: list[str]) -> None:
        """Only the problems line: edits must not reload the fields being typed in."""
        self.problems.setText("\n".join(problems))

    def _emit(self) -> None:
        if self._loading:
            return
        args = {}
        for line in self.build_args.toPlainText().splitlines():
            key, sep, value = line.partition("=")
            if key.strip() and sep:
                args[key.strip()] = value
        self.changed.emit(args, self.target.text().strip())


class MainWindow(QMainWindow):
    runFinished = Signal(object)  # RunReport (or None): for tests and the tray message

    def __init__(self, project: projects.Project | None = None) -> None:
        super().__init__()
        self.setWindowTitle("Dockpool")
        self._thread: QThread | None = None
        self._controller: RunController | None = None
        self._report: RunReport | None = None
        self._keys: dict[str, int] = {}
        self._run_started = 0.0
        self._dirty = False
        self._close_after_run = False
        self._run_rows: list[int] = []
        self._log_row: int | None = None  # the row whose log the Log tab shows
        self._log_lines = 0
        self._error_box: QMessageBox | None = None  # kept so the open dialog is not collected
        self.model = ImageTableModel(project or projects.Project())
        self.model.modified.connect(self._mark_dirty)
        self._build_ui()
        self._build_actions()
        self._restore_settings()
        self._load_into_controls(self.model.project)
        self._autosave = QTimer(self, interval=AUTOSAVE_INTERVAL_MS, timeout=self._write_autosave)
        self._autosave.start()
        self._elapsed = QTimer(self, interval=1000, timeout=self._tick)
        self._update_title()
        self._update_buttons()

    # --- layout -------------------------------------------------------------------------------

    def _build_ui(self) -> None:
        self.banner = QFrame()
        self.banner.setStyleSheet("QFrame { background: #fff3cd; border: 1px solid #e0c060; }")
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_retry = QPushButton("Retry")
        self.banner_retry.clicked.connect(self.start)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_text, 1)
        banner_layout.addWidget(self.banner_retry)
        self.banner.hide()

        self.registry = QLineEdit()
        self.registry.setPlaceholderText("registry host[:port][/path]; empty = build only")
        self.registry.editingFinished.connect(self._registry_edited)
        self.login_button = QPushButton("Log in…")
        self.login_button.clicked.connect(self.log_in)
        self.builders, self.builders_value = self._slider(*BUILDERS_RANGE)
        self.pushers, self.pushers_value = self._slider(*PUSHERS_RANGE)
        self.builders.valueChanged.connect(self._limits_changed)
        self.pushers.valueChanged.connect(self._limits_changed)
        controls = QHBoxLayout()
        controls.addWidget(QLabel("Registry"))
        controls.addWidget(self.registry, 2)
        controls.addWidget(self.login_button)
        controls.addSpacing(16)
        for label, slider, value in (("Builders", self.builders, self.builders_value),
                                     ("Pushers", self.pushers, self.pushers_value)):
            controls.addWidget(QLabel(label))
            controls.addWidget(slider, 1)
            controls.addWidget(value)

        self.table = ImageTable()
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                                   | QAbstractItemView.EditTrigger.EditKeyPressed
                                   | QAbstractItemView.EditTrigger.AnyKeyPressed)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(24)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # paths: keep both ends
        self.table.setItemDelegateForColumn(COL_BUILD, ProgressDelegate(self.table))
        self.table.setItemDelegateForColumn(COL_PUSH, ProgressDelegate(self.table))
        header = self.table.horizontalHeader()
        for column, width in ((COL_ENABLED, 28), (COL_NAME, 150), (COL_TAGS, 110), (COL_CONTEXT, 150),
                              (COL_STATUS, 190), (COL_BUILD, 110), (COL_PUSH, 110), (COL_ELAPSED, 60)):
            header.resizeSection(column, width)
        header.setSectionResizeMode(COL_STATUS, QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.table.foldersDropped.connect(self.add_folders)

        self.details = DetailPanel()
        self.details.changed.connect(self._details_changed)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(20000)
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        save_log = QPushButton("Save log…")
        save_log.clicked.connect(self.save_log)
        copy_log = QPushButton("Copy log")
        copy_log.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.log.toPlainText()))
        log_page = QWidget()
        log_layout = QVBoxLayout(log_page)
        log_layout.setContentsMargins(0, 0, 0, 0)
        log_layout.addWidget(self.log)
        log_buttons = QHBoxLayout()
        log_buttons.addStretch()
        log_buttons.addWidget(copy_log)
        log_buttons.addWidget(save_log)
        log_layout.addLayout(log_buttons)
        self.timeline = TimelineView(self.model)
        self.tabs = QTabWidget()
        self.tabs.addTab(log_page, "Log")
        self.tabs.addTab(self.timeline, "Timeline")
        self.tabs.addTab(self.details, "Details")

        self.overall = QProgressBar()
        self.overall.setFormat("%v / %m done")
        self.counts = QLabel("Ready")

        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.tabs)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.addWidget(self.banner)
        layout.addLayout(controls)
        layout.addWidget(splitter, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.overall, 2)
        bottom.addWidget(self.counts, 3)
        layout.addLayout(bottom)
        self.setCentralWidget(central)
        self.resize(1100, 720)

    def _slider(self, low: int, high: int) -> tuple[QSlider, QLabel]:
        slider = QSlider(Qt.Orientation.Horizontal)
        slider.setRange(low, high)
        slider.setPageStep(1)
        value = QLabel(str(low))
        value.setMinimumWidth(24)
        slider.valueChanged.connect(lambda v: value.setText(str(v)))
        return slider, value

    def _build_actions(self) -> None:
        style = self.style()
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.addToolBar(toolbar)
        file_menu = self.menuBar().addMenu("&File")

        def action(text: str, slot: Any, shortcut: Any = None, icon: Any = None, bar: bool = False) -> QAction:
            act = QAction(text, self)
            if shortcut:
                act.setShortcut(QKeySequence(shortcut))
            if icon is not None:
                act.setIcon(style.standardIcon(icon))
            act.triggered.connect(slot)
            if bar:
                toolbar.addAction(act)
            return act

        sp = QStyle.StandardPixmap
        self.new_action = action("&New", self.new_project, QKeySequence.StandardKey.New, sp.SP_FileIcon)
        self.open_action = action("&Open…", self.open_dialog, QKeySequence.StandardKey.Open, sp.SP_DialogOpenButton,
                                  True)
        self.save_action = action("&Save", self.save, QKeySequence.StandardKey.Save, sp.SP_DialogSaveButton, True)
        self.save_as_action = action("Save &As…", self.save_as, QKeySequence.StandardKey.SaveAs)
        self.export_action = action("&Export report…", self.export_report)
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent)
        for act in (self.new_action, self.open_action, self.save_action, self.save_as_action, self.export_action):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(action("&Quit", self.close, QKeySequence.StandardKey.Quit))
        toolbar.addSeparator()
        self.add_image_action = action("Add image…", self.add_image_dialog, None, sp.SP_FileDialogNewFolder, True)
        self.add_folder_action = action("Add folder…", self.add_folder_dialog, None, sp.SP_DirOpenIcon, True)
        self.duplicate_action = action("Duplicate", self.duplicate_selected, "Ctrl+D", None, True)
        self.remove_action = action("Remove", self.remove_selected, QKeySequence.StandardKey.Delete,
                                    sp.SP_TrashIcon, True)
        self.enable_action = action("Enable", lambda: self._enable_selected(True), None, None, True)
        self.disable_action = action("Disable", lambda: self._enable_selected(False), None, None, True)
        toolbar.addSeparator()
        self.start_action = action("Start", self.start, "Ctrl+R", sp.SP_MediaPlay, True)
        self.cancel_action = action("Cancel", self.cancel, "Ctrl+.", sp.SP_MediaStop, True)
        self.retry_action = action("Retry failed", self.retry_failed, None, sp.SP_BrowserReload, True)
        edit_menu = self.menuBar().addMenu("&Images")
        for act in (self.add_image_action, self.add_folder_action, self.duplicate_action, self.remove_action,
                    self.enable_action, self.disable_action):
            edit_menu.addAction(act)
        run_menu = self.menuBar().addMenu("&Run")
        for act in (self.start_action, self.cancel_action, self.retry_action):
            run_menu.addAction(act)

    # --- settings and project -----------------------------------------------------------------

    def _restore_settings(self) -> None:
        geometry = stored.settings().value("geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)

    def _load_into_controls(self, project: projects.Project) -> None:
        self.registry.setText(project.registry)
        for slider, value in ((self.builders, project.builders), (self.pushers, project.pushers)):
            slider.blockSignals(True)
            slider.setValue(value)
            slider.blockSignals(False)
        self.builders_value.setText(str(self.builders.value()))
        self.pushers_value.setText(str(self.pushers.value()))

    def set_project(self, project: projects.Project, dirty: bool = False) -> None:
        self.model.set_project(project)
        self._load_into_controls(project)
        self._report = None
        self._dirty = dirty
        self._update_title()
        self._selection_changed()
        self._update_buttons()

    def _mark_dirty(self) -> None:
        self._dirty = True
        self._update_title()
        self._update_buttons()
        rows = self._selected_rows()
        self.details.show_problems(self.model.problems(rows[0]) if len(rows) == 1 else [])

    @property
    def dirty(self) -> bool:
        return self._dirty

    def _update_title(self) -> None:
        path = self.model.project.path
        name = path.name if path else "Untitled"
        self.setWindowTitle(f"{name}[*] — Dockpool")  # Qt shows [*] as * while modified
        self.setWindowModified(self._dirty)

    def _registry_edited(self) -> None:
        text = self.registry.text().strip()
        if text != self.model.project.registry:
            self.model.project.registry = text
            self.model.revalidate()
            self._mark_dirty()
        problem = reference.registry_problem(text)
        self.registry.setStyleSheet("background: #fde2e1" if problem else "")
        self.registry.setToolTip(f"'{text}' {problem}" if problem else "")

    def _limits_changed(self) -> None:
        project = self.model.project
        builders, pushers = self.builders.value(), self.pushers.value()
        if (project.builders, project.pushers) != (builders, pushers):
            project.builders, project.pushers = builders, pushers
            self._mark_dirty()
        stored.settings().setValue("concurrency", [builders, pushers])
        if self._controller is not None:
            self._controller.set_limits(builders, pushers)

    def confirm_discard(self) -> bool:
        """True when there is nothing unsaved, or the user saved or chose to discard it."""
        if not self._dirty:
            return True
        answer = QMessageBox.question(
            self, "Unsaved changes", "The project has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        return answer == QMessageBox.StandardButton.Discard

    def new_project(self) -> None:
        if self._running() or not self.confirm_discard():
            return
        self.set_project(projects.Project())
        stored.clear_autosave()

    def open_dialog(self) -> None:
        if self._running() or not self.confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self, "Open project", self._last_folder(),
                                              "Dockpool projects (*.toml);;All files (*)")
        if path:
            self.open_path(Path(path), confirmed=True)

    def open_path(self, path: Path, confirmed: bool = False, registry: str | None = None) -> bool:
        """Open a project; an invalid file leaves the current project untouched.

        `registry` overrides the file's registry for this session without marking the
        project modified (`make run` points the demo at its private registry).
        """
        if not confirmed and (self._running() or not self.confirm_discard()):
            return False
        try:
            project = projects.load(path, strict=False)
        except projects.ProjectError as exc:
            box = QMessageBox(QMessageBox.Icon.Critical, "Cannot open project",
                              f"{path} is not a valid Dockpool project:", QMessageBox.StandardButton.Ok, self)
            box.setInformativeText("\n".join(exc.problems))
            box.setObjectName("open-error")
            box.open()
            self._error_box = box
            return False
        if registry is not None:
            project.registry = registry
        self.set_project(project)
        stored.remember_project(project.path or path)
        self._remember_folder(path.parent)
        stored.clear_autosave()
        return True

    def save(self) -> bool:
        if self.model.project.path is None:
            return self.save_as()
        return self._save_to(self.model.project.path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self, "Save project as", self._last_folder(),
                                              "Dockpool projects (*.toml)")
        if not path:
            return False
        if not path.endswith(".toml"):
            path += ".toml"
        return self._save_to(Path(path))

    def _save_to(self, path: Path) -> bool:
        self._registry_edited()
        try:
            saved = projects.save(self.model.project, path)
        except OSError as exc:
            QMessageBox.critical(self, "Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        if saved is not self.model.project:  # moved: contexts were rebased
            self.model.set_project(saved, keep_states=True)
        self._dirty = False
        stored.remember_project(saved.path or path)
        self._remember_folder(path.parent)
        stored.clear_autosave()
        self._update_title()
        return True

    def _write_autosave(self) -> None:
        if self._dirty:
            try:
                stored.write_autosave(self.model.project)
            except OSError:
                pass  # never let autosave interrupt the user

    def offer_recovery(self) -> None:
        project = stored.read_autosave()
        if project is None:
            return
        answer = QMessageBox.question(
            self, "Recover unsaved changes",
            f"Dockpool closed with unsaved changes to {project.path or 'an untitled project'}. Recover them?")
        if answer == QMessageBox.StandardButton.Yes:
            self.set_project(project, dirty=True)
        else:
            stored.clear_autosave()

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

    # --- editing images -----------------------------------------------------------------------

    def _selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.table.selectionModel().selectedRows()})

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

    def add_folders(self, folders: list[Path], recursive: bool = True) -> int:
        project = self.model.project
        taken = {image.name for image in project.images}
        base = project.path.parent if project.path else None
        found = []
        for folder in folders:
            images = find_images(folder, base, taken)
            if not recursive:
                images = [i for i in images if (project.base_dir / i.context).resolve() == folder.resolve()]
            taken |= {image.name for image in images}
            found += images
        if not found:
            QMessageBox.information(self, "No Dockerfile found",
                                    "No Dockerfile was found in " + ", ".join(str(f) for f in folders))
            return 0
        self.model.add_images(found)
        self._remember_folder(folders[-1])
        self.statusBar().showMessage(f"Added {len(found)} image(s)", 5000)
        return len(found)

    def duplicate_selected(self) -> None:
        self.model.duplicate_rows(self._selected_rows())

    def remove_selected(self) -> None:
        if not self._running():
            self.model.remove_rows(self._selected_rows())

    def _enable_selected(self, enabled: bool) -> None:
        self.model.set_enabled(self._selected_rows(), enabled)

    def _details_changed(self, build_args: dict, target: str) -> None:
        rows = self._selected_rows()
        if len(rows) == 1:
            self.model.update_details(rows[0], build_args, target)

    def _selection_changed(self, *_: Any) -> None:
        rows = self._selected_rows()
        row = rows[0] if len(rows) == 1 else None
        self.details.show_image(self.model.image(row) if row is not None else None,
                                self.model.problems(row) if row is not None else [])
        self._show_log(row)
        self._update_buttons()

    def _show_log(self, row: int | None) -> None:
        self.log.clear()
        self._log_row, self._log_lines = row, 0
        if row is not None:
            self._append_log(row)

    def _append_log(self, row: int) -> None:
        lines = self.model.state(row).log
        # The row's log is capped (oldest lines dropped); re-show it if it was trimmed.
        if self._log_lines > len(lines):
            self.log.clear()
            self._log_lines = 0
        for stage, text, error in lines[self._log_lines:]:
            escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            color = "#b00020" if error else ("#1b5e20" if stage == "push" else "#202020")
            self.log.appendHtml(f'<span style="color:{color}; white-space:pre">[{stage}] {escaped}</span>')
        self._log_lines = len(lines)

    def save_log(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save log", self._last_folder(), "Text (*.log *.txt)")
        if path:
            Path(path).write_text(self.log.toPlainText() + "\n", encoding="utf-8")

    # --- running ------------------------------------------------------------------------------

    def _running(self) -> bool:
        return self._thread is not None

    def _update_buttons(self) -> None:
        running = self._running()
        has_rows = bool(self._selected_rows())
        self.start_action.setEnabled(not running and bool(self.model.project.enabled_images))
        self.cancel_action.setEnabled(running)
        self.retry_action.setEnabled(not running and any(
            self.model.state(r).status in (ev.Status.FAILED, ev.Status.CANCELLED) for r in range(self.model.rowCount())))
        for act in (self.remove_action, self.duplicate_action, self.enable_action, self.disable_action):
            act.setEnabled(has_rows and not running)
        for act in (self.new_action, self.open_action, self.add_image_action, self.add_folder_action):
            act.setEnabled(not running)
        self.registry.setEnabled(not running)
        self.login_button.setEnabled(not running)

    def _refuse_invalid(self) -> bool:
        """Start refuses while any enabled row (or the registry) is invalid, saying which."""
        self._registry_edited()
        problems = [f"{self.model.image(row).name or f'row {row + 1}'}: {'; '.join(found)}"
                    for row, found in self.model.invalid_enabled_rows()]
        if (problem := reference.registry_problem(self.model.project.registry)):
            problems.insert(0, f"registry '{self.model.project.registry}' {problem}")
        if problems:
            box = QMessageBox(QMessageBox.Icon.Warning, "Cannot start",
                              "Fix these first (or disable those images):", QMessageBox.StandardButton.Ok, self)
            box.setInformativeText("\n".join(problems))
            box.setObjectName("start-refused")
            box.open()
            self._error_box = box
            return True
        return False

    def start(self) -> None:
        if self._running() or self._refuse_invalid():
            return
        rows = [row for row, image in enumerate(self.model.project.images) if image.enabled]
        self._launch(rows, push_only=[])

    def retry_failed(self) -> None:
        """Rerun failed and cancelled images; a built image whose push failed is only pushed."""
        if self._running() or self._refuse_invalid():
            return
        rows, push_only = [], []
        for row in range(self.model.rowCount()):
            state, image = self.model.state(row), self.model.image(row)
            if not image.enabled or state.status not in (ev.Status.FAILED, ev.Status.CANCELLED):
                continue
            rows.append(row)
            if state.image_id and state.failed_stage is ev.Stage.PUSH and self.model.project.registry:
                push_only.append(row)
        if rows:
            self._launch(rows, push_only)

    def _launch(self, rows: list[int], push_only: list[int]) -> None:
        # The run gets a snapshot: edits made while it runs never reach the workers.
        source = self.model.project
        snapshot = projects.Project(registry=source.registry, builders=source.builders, pushers=source.pushers,
                                    images=[copy.deepcopy(source.images[row]) for row in rows], path=source.path)
        options = RunOptions.from_project(snapshot, builders=self.builders.value(), pushers=self.pushers.value())
        self.model.reset_states([row for row in rows if row not in push_only])
        self.model.mark_push_only(push_only)
        snapshot_keys = projects.image_keys(snapshot.images)
        self._keys = {snapshot_keys[i]: row for i, row in enumerate(rows)}
        push_only_keys = [snapshot_keys[rows.index(row)] for row in push_only]

        self.banner.hide()
        self._report = None
        self._run_started = time.monotonic()
        self._run_rows = rows
        self._thread = QThread(self)
        self._controller = RunController(snapshot, options, push_only_keys)
        self._controller.moveToThread(self._thread)
        self._thread.started.connect(self._controller.run)
        # Bound methods of this window: Qt queues them onto the GUI thread (a lambda would
        # run in the controller's thread and touch widgets from there).
        self._controller.started.connect(self._engine_started)
        self._controller.eventsReady.connect(self._events)
        self._controller.engineUnreachable.connect(self._engine_unreachable)
        self._controller.finished.connect(self._run_finished)
        self._thread.start()
        self._elapsed.start()
        self._update_buttons()
        self._update_overall()

    def _engine_started(self, description: str) -> None:
        self.statusBar().showMessage(f"Running on {description}")

    def _events(self, records: list[Any]) -> None:
        changed = self.model.apply_events(records, self._keys)
        if self._log_row in changed:
            self._append_log(self._log_row)
        self._update_overall()

    def _tick(self) -> None:
        self.model.tick_elapsed()
        self.timeline.update()
        self._update_overall()

    def _update_overall(self) -> None:
        rows = self._run_rows
        pushing = bool(self.model.project.registry)
        counts = self.model.counts()
        done = sum(1 for row in rows if (s := self.model.state(row).status) is not None and s.final)
        self.overall.setRange(0, max(1, len(rows)))
        self.overall.setValue(done)
        text = f"built {counts['built']}" + (f", pushed {counts['pushed']}" if pushing else "") + \
            f", failed {counts['failed']}"
        if counts["cancelled"]:
            text += f", cancelled {counts['cancelled']}"
        if self._running() and 0 < done < len(rows):
            elapsed = time.monotonic() - self._run_started
            left = elapsed / done * (len(rows) - done)
            text += f" — about {int(left) // 60}:{int(left) % 60:02d} left"
        self.counts.setText(text)

    def _engine_unreachable(self, message: str) -> None:
        self.banner_text.setText(f"<b>Docker engine unreachable.</b> {message}. Start Docker (or Docker "
                                 "Desktop) or set DOCKER_HOST, then Retry.")
        self.banner.show()

    def _run_finished(self, report: RunReport | None) -> None:
        self._report = report
        thread, self._thread = self._thread, None
        controller, self._controller = self._controller, None
        if thread is not None:
            thread.quit()
            thread.wait()
            thread.deleteLater()
        if controller is not None:
            controller.deleteLater()
        self._elapsed.stop()
        self.model.tick_elapsed()
        self.timeline.update()
        self._update_overall()
        self._update_buttons()
        if report is not None:
            self._notify(report)
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
        if self._controller is not None:
            self.statusBar().showMessage("Cancelling…")
            self._controller.cancel()

    def log_in(self) -> None:
        registry = self.registry.text().strip()
        if not registry:
            QMessageBox.information(self, "Log in", "Enter the registry first.")
            return
        dialog = LoginDialog(registry, self)
        if dialog.exec() != LoginDialog.DialogCode.Accepted:
            return
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            where = login(registry, dialog.username.text(), dialog.password.text())
        except Exception as exc:  # refused login, engine down: say so, keep the window
            QApplication.restoreOverrideCursor()
            QMessageBox.warning(self, "Login failed", f"{registry} refused the login: "
                                f"{getattr(exc, 'explanation', None) or exc}")
            return
        QApplication.restoreOverrideCursor()
        self.statusBar().showMessage(f"Logged in to {registry}; stored in {where}", 8000)

    def export_report(self) -> None:
        if self._report is None:
            QMessageBox.information(self, "Export report", "There is no finished run to export yet.")
            return
        path, chosen = QFileDialog.getSaveFileName(self, "Export run report", self._last_folder(),
                                                   "JSON report (*.json);;CSV (*.csv)")
        if not path:
            return
        csv = path.endswith(".csv") or chosen.startswith("CSV")
        Path(path).write_text(self._report.to_csv() if csv else self._report.to_json() + "\n", encoding="utf-8")

    # --- closing ------------------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:
        if self._running():
            if not self._close_after_run:
                answer = QMessageBox.question(self, "Cancel the run?",
                                              "A run is in progress. Cancel it and close Dockpool?")
                if answer != QMessageBox.StandardButton.Yes:
                    event.ignore()
                    return
                self._close_after_run = True
                self.cancel()
            event.ignore()  # closes for real when the run has ended (_run_finished)
            return
        if not self.confirm_discard():
            self._close_after_run = False
            event.ignore()
            return
        stored.settings().setValue("geometry", self.saveGeometry())
        stored.clear_autosave()
        event.accept()

    def select_row(self, row: int) -> None:
        self.table.selectionModel().select(
            self.model.index(row, 0), QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
