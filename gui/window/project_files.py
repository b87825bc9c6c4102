"""The project's files as the user meets them: New, Open, Save, recent files, the
unsaved-changes question, crash recovery, and adding images from folders.

The document does the work (load, save, autosave, undo); this asks the
questions, shows the dialogs, remembers the last folder, and scans folders off
the GUI thread, so that the main window only connects actions to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMainWindow, QMenu, QMessageBox

from ..pipeline import project as projects
from ..pipeline.discover import find_images
from . import settings as stored
from .background import run_in_background
from .dialogs import show_box
from .document import ProjectDocument


class ProjectFiles(QObject):
    imagesAdded = Signal(list)  # uids of the images a folder scan added
    message = Signal(str, int)  # for the status bar: text ("" clears it), milliseconds (0: until replaced)

    def __init__(self, window: QMainWindow, document: ProjectDocument, busy: Callable[[], bool],
                 commit_typing: Callable[[], None]) -> None:
        """`busy`: a run (or its registry check) is under way, so the project may not be
        replaced; `commit_typing`: puts what is being typed into the project first."""
        super().__init__(window)
        self._window = window
        self.document = document
        self._busy = busy
        self._commit_typing = commit_typing

    # --- the unsaved-changes question ------------------------------------------------------

    def confirm_discard(self) -> bool:
        """True when there is nothing unsaved, or the user saved or chose to discard it."""
        self._commit_typing()
        if not self.document.modified:
            return True
        answer = QMessageBox.question(
            self._window, "Unsaved changes", f"{self.document.title} has unsaved changes. Save them?",
            QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
            | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Save)
        if answer == QMessageBox.StandardButton.Save:
            return self.save()
        if answer == QMessageBox.StandardButton.Discard:
            self.document.give_up_edits()  # the user chose: nothing to offer back later
            return True
        return False

    # --- new, open, recover -----------------------------------------------------------------

    def new_project(self) -> None:
        if self._busy() or not self.confirm_discard():
            return
        self.document.discard_autosave()
        self.document.show(projects.Project())

    def open_dialog(self) -> None:
        if self._busy() or not self.confirm_discard():
            return
        path, _ = QFileDialog.getOpenFileName(self._window, "Open project", stored.last_folder(),
                                              "Dockpool projects (*.toml);;All files (*)")
        if path:
            self.open_path(Path(path), confirmed=True)

    def open_path(self, path: Path, confirmed: bool = False, registry: str | None = None) -> bool:
        """Open a project; an invalid file leaves the current project untouched. Unsaved edits
        of this project from a crash are offered back. `registry` overrides the file's
        registry for this session without marking it modified (`make run`'s private one)."""
        if not confirmed and (self._busy() or not self.confirm_discard()):
            return False
        path = Path(path).absolute()
        try:
            self.document.open(path)
        except projects.ProjectError as exc:
            show_box(self._window, QMessageBox.Icon.Critical, "Cannot open project",
                     f"{path} is not a valid Dockpool project:", "\n".join(exc.problems), "open-error")
            return False
        stored.remember_folder(path.parent)
        self.offer_recovery(path)
        if registry is not None:  # over the recovered edits too
            self.document.use_registry(registry)
        return True

    def offer_recovery(self, path: Path | None = None) -> None:
        """Unsaved edits of this project (None: the untitled one) that a crash left behind,
        newest first; a window that is still open keeps its own."""
        crashed = stored.crashed_autosaves(path)
        if not crashed and stored.autosaves(path):
            self.message.emit("Another Dockpool window has unsaved changes to this project", 10_000)
        for index, (saved, slot, project) in enumerate(crashed):
            later = path is not None and path.exists() and path.stat().st_mtime > saved
            answer = QMessageBox.question(
                self._window, "Recover unsaved changes",
                f"Dockpool closed with unsaved changes to {path or 'an untitled project'} "
                f"(autosaved {time.strftime('%Y-%m-%d %H:%M', time.localtime(saved))}"
                + ("; the file was saved after that" if later else "") + "). Recover them?")
            if answer == QMessageBox.StandardButton.Yes:
                self.document.show(project, recovered=slot)
                for _, other, _ in crashed[index + 1:]:
                    other.release()  # offered again when this project is next opened
                return
            slot.clear()

    def fill_recent(self, menu: QMenu) -> None:
        """The File menu's recent projects, read when it opens (another window may have added one)."""
        menu.clear()
        for path in stored.recent_projects():
            act = menu.addAction(path)
            act.triggered.connect(lambda _=False, p=path: self.open_path(Path(p)))
        if menu.isEmpty():
            menu.addAction("(none)").setEnabled(False)

    # --- save ---------------------------------------------------------------------------------

    def save(self) -> bool:
        if self.document.path is None:
            return self.save_as()
        return self._save_to(self.document.path)

    def save_as(self) -> bool:
        path, _ = QFileDialog.getSaveFileName(self._window, "Save project as", stored.last_folder(),
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
            QMessageBox.critical(self._window, "Cannot save", f"{path}: {exc.strerror or exc}")
            return False
        stored.remember_folder(saved.parent)
        self.message.emit(f"Saved {saved}", 5000)
        return True

    # --- adding images --------------------------------------------------------------------------

    def add_image_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Choose the image's folder (with its Dockerfile)",
                                                  stored.last_folder())
        if folder:
            self.add_folders([Path(folder)], recursive=False)

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self._window, "Choose a folder to scan for Dockerfiles",
                                                  stored.last_folder())
        if folder:
            self.add_folders([Path(folder)])

    def add_folders(self, folders: list[Path], recursive: bool = True) -> None:
        """Scan folders for Dockerfiles off the GUI thread (a big tree takes a while)."""
        project = self.document.project
        taken = {image.name for image in project.images}
        base = project.path.parent if project.path else None
        base_dir = project.base_dir
        self.message.emit(f"Scanning {', '.join(str(f) for f in folders)}…", 0)

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

        run_in_background(scan, lambda found: self._folders_scanned(project, folders, found),
                          lambda exc: self.message.emit(f"Cannot scan: {exc}", 8000))

    def _folders_scanned(self, project: projects.Project, folders: list[Path],
                         found: list[projects.ImageSpec]) -> None:
        if self.document.project is not project:  # another project was opened meanwhile: not its images
            self.message.emit(f"The scan of {', '.join(str(f) for f in folders)} was for the project closed since; "
                              "nothing added", 8000)
            return
        if not found:
            self.message.emit("", 0)
            QMessageBox.information(self._window, "No Dockerfile found",
                                    "No Dockerfile was found in " + ", ".join(str(f) for f in folders))
            return
        self.imagesAdded.emit(self.document.add(found, f"Add {len(found)} image(s)"))
        stored.remember_folder(folders[-1])
        self.message.emit(f"Added {len(found)} image(s)", 5000)
