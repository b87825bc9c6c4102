"""Every command of the window as a QAction: text with its mnemonic, shortcut, icon;
the menus, toolbar and row context menu that offer them; and, in one function, the
rule that enables them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QStyle, QToolBar, QWidget


@dataclass(frozen=True)
class UiState:
    """What the enabled state of the actions depends on."""

    running: bool  # a run, or the registry check before one
    rows: int
    selected: int
    has_failed: bool  # failed or cancelled rows that are enabled
    has_report: bool
    one_selected_running: bool  # the single selected image is being worked on
    one_selected_enabled: bool = False  # the single selected image is enabled (a run takes only those)
    can_undo: bool = False
    can_redo: bool = False
    logging_in: bool = False  # the registry is being asked for a login


class Actions:
    def __init__(self, parent: QWidget) -> None:
        style = parent.style()
        sp = QStyle.StandardPixmap

        def action(text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
                   icon: QStyle.StandardPixmap | None = None, tip: str = "") -> QAction:
            act = QAction(text, parent)
            if shortcut is not None:
                act.setShortcut(QKeySequence(shortcut))
            if icon is not None:
                act.setIcon(style.standardIcon(icon))
            if tip:
                act.setStatusTip(tip)
                act.setToolTip(tip)
            return act

        self.undo = action("&Undo", QKeySequence.StandardKey.Undo)
        self.redo = action("&Redo", QKeySequence.StandardKey.Redo)
        self.new = action("&New", QKeySequence.StandardKey.New, sp.SP_FileIcon)
        self.open = action("&Open…", QKeySequence.StandardKey.Open, sp.SP_DialogOpenButton)
        self.save = action("&Save", QKeySequence.StandardKey.Save, sp.SP_DialogSaveButton)
        self.save_as = action("Save &As…", QKeySequence.StandardKey.SaveAs)
        self.export = action("&Export report…", None, None, "The last run's report, as JSON (like the CLI's) or CSV")
        self.quit = action("&Quit", QKeySequence.StandardKey.Quit)
        self.add_image = action("Add &image…", None, sp.SP_FileDialogNewFolder, "One folder with a Dockerfile")
        self.add_folder = action("Add &folder…", None, sp.SP_DirOpenIcon, "Scan a folder tree for Dockerfiles")
        self.duplicate = action("&Duplicate", "Ctrl+D")
        self.remove = action("&Remove", QKeySequence.StandardKey.Delete, sp.SP_TrashIcon)
        # Delete removes images only where images are selected: pressed in the log, the
        # Timeline or a field it must not (the window adds it to the table for that).
        self.remove.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.enable = action("E&nable")
        self.disable = action("D&isable")
        self.login = action("L&og in…", None, None, "Log in to the registry, stored where docker login stores it")
        self.login.setIconText(self.login.text())  # a tool button shows icon text: keep the & (Alt+O) and …
        self.start = action("&Start", "F5", sp.SP_MediaPlay, "Build and push every enabled image (F5)")
        self.cancel = action("&Cancel", "Shift+F5", sp.SP_MediaStop, "Stop the run (Shift+F5)")
        self.retry = action("Re&try failed", "Ctrl+F5", sp.SP_BrowserReload,
                            "Run the failed and cancelled images again (a failed push is only pushed again)")
        self.build_selected = action("&Build or retry this image")
        self.cancel_selected = action("Cancel &this image")
        self.show_folder = action("Show in &file manager")
        self.open_dockerfile = action("Open &Dockerfile")
        self.copy_ref = action("Copy image &reference")
        self.copy_digest = action("Copy di&gest")
        self.copy_error = action("Copy &error")
        self.failed_only = action("&Failed only", "Ctrl+Shift+F")
        self.failed_only.setCheckable(True)
        self.about = action("&About Dockpool")
        self.start.setShortcuts([QKeySequence("F5"), QKeySequence("Ctrl+R")])
        self.cancel.setShortcuts([QKeySequence("Shift+F5"), QKeySequence("Ctrl+.")])
        # The row context menu, in order (None: a separator).
        self.row_menu: list[QAction | None] = [
            self.build_selected, self.cancel_selected, None, self.show_folder, self.open_dockerfile, None,
            self.copy_ref, self.copy_digest, self.copy_error, None, self.duplicate, self.enable, self.disable,
            self.remove]

    def populate(self, window: QMainWindow, fill_recent: Callable[[QMenu], None]) -> None:
        """The window's menus and toolbar. `fill_recent` fills Open recent as it opens."""
        menus = window.menuBar()
        file_menu = menus.addMenu("&File")
        for act in (self.new, self.open):
            file_menu.addAction(act)
        recent_menu = file_menu.addMenu("Open &recent")
        recent_menu.aboutToShow.connect(lambda: fill_recent(recent_menu))
        for act in (self.save, self.save_as, self.export):
            file_menu.addAction(act)
        file_menu.addSeparator()
        file_menu.addAction(self.quit)
        edit_menu = menus.addMenu("&Edit")
        edit_menu.addAction(self.undo)
        edit_menu.addAction(self.redo)
        images_menu = menus.addMenu("Ima&ges")
        for act in (self.add_image, self.add_folder, self.duplicate, self.remove, self.enable, self.disable):
            images_menu.addAction(act)
        images_menu.addSeparator()
        images_menu.addAction(self.failed_only)
        run_menu = menus.addMenu("Ru&n")
        for act in (self.start, self.cancel, self.retry):
            run_menu.addAction(act)
        help_menu = menus.addMenu("&Help")
        help_menu.addAction(self.about)
        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for act in (self.open, self.save, None, self.add_image, self.add_folder, self.duplicate, self.remove,
                    self.enable, self.disable, None, self.start, self.cancel, self.retry):
            toolbar.addSeparator() if act is None else toolbar.addAction(act)
        window.addToolBar(toolbar)

    def update(self, state: UiState) -> None:
        """The one rule for what can be done when."""
        idle = not state.running
        for act in (self.new, self.open, self.add_image, self.add_folder):
            act.setEnabled(idle)
        for act in (self.remove, self.duplicate, self.enable, self.disable):
            act.setEnabled(idle and state.selected > 0)
        # Undo could remove or rename images the run is working on, as Remove could.
        self.undo.setEnabled(idle and state.can_undo)
        self.redo.setEnabled(idle and state.can_redo)
        self.start.setEnabled(idle and state.rows > 0)
        self.cancel.setEnabled(state.running)
        self.login.setEnabled(idle and not state.logging_in)  # it waits for the registry's answer
        self.retry.setEnabled(idle and state.has_failed)
        self.export.setEnabled(state.has_report)
        self.build_selected.setEnabled(idle and state.selected == 1 and state.one_selected_enabled)
        self.cancel_selected.setEnabled(state.one_selected_running)
        for act in (self.show_folder, self.open_dockerfile, self.copy_ref, self.copy_digest, self.copy_error):
            act.setEnabled(state.selected == 1)
