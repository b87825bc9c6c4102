"""The project being edited: its file, its modified state, its undo history and autosave.

The window's parts never change the project directly: they ask the document,
which turns every change into an undo command. "Modified" is the undo stack's
own notion (not at its clean index), so undoing back to the saved state makes
the project unmodified again, and nothing that changed nothing marks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from ..pipeline import project as projects
from ..pipeline.project import ImageSpec, Project
from . import settings as stored
from .commands import AddRows, EditField, EditSetting, RemoveRows, SetEnabled
from .image_model import ImageTableModel, Row

AUTOSAVE_INTERVAL_MS = 15_000  # unsaved edits are written where a crash cannot take them


class ProjectDocument(QObject):
    changed = Signal()  # the title or the modified state
    replaced = Signal()  # another project is shown: new, opened, recovered, saved elsewhere
    settingChanged = Signal(str, object)  # "registry", "push", "builders", "pushers", by edit or undo

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model = ImageTableModel(Project(), self)
        self.undo = QUndoStack(self)
        self.undo.cleanChanged.connect(lambda _clean: self.changed.emit())
        self.model.editRequested.connect(self.edit)
        self._autosave_timer = QTimer(self, interval=AUTOSAVE_INTERVAL_MS, timeout=self.autosave)
        self._autosave_timer.start()
        self._recovered = False  # a recovered autosave counts as modified until saved
        # This window's autosave of its project (or a crashed one's it recovered), its lock
        # held: the only one it writes or deletes.
        self._autosave: stored.AutosaveSlot | None = None

    @property
    def project(self) -> Project:
        return self.model.project

    @property
    def path(self) -> Path | None:
        return self.project.path

    @property
    def modified(self) -> bool:
        return self._recovered or not self.undo.isClean()

    @property
    def title(self) -> str:
        return self.path.name if self.path else "Untitled"

    # --- whole projects --------------------------------------------------------------------

    def show(self, project: Project, recovered: stored.AutosaveSlot | None = None) -> None:
        """Show another project, with a fresh undo history; `recovered`: it is the autosave
        of a crashed window, whose lock this document now holds."""
        self.discard_autosave()  # the project it held edits of was saved or given up
        self.model.set_project(project)
        self.undo.clear()
        self.undo.setClean()
        self._recovered = recovered is not None
        self._autosave = recovered
        self.replaced.emit()
        self.changed.emit()

    def open(self, path: Path) -> Project:
        """Load a file (raises ProjectError for one that is not a valid project)."""
        project = projects.load(path, strict=False)
        self.show(project)
        stored.remember_project(project.path or path)
        return project

    def save(self, path: Path | None = None) -> Path:
        """Write the project (raises OSError); the autosave of its old name goes."""
        old_base = self.project.base_dir
        saved = projects.save(self.project, path)
        if saved is not self.project:  # saved elsewhere: relative paths were rebased in the file
            self._rebase(old_base, saved.base_dir)
            self.project.path = saved.path
        # Saved: the edits it held are in the file now (another window's autosave of the same
        # project is its own, and older than the file).
        self.discard_autosave()
        stored.remember_project(saved.path)  # type: ignore[arg-type]
        self.undo.setClean()
        self._recovered = False
        self.changed.emit()
        return saved.path  # type: ignore[return-value]

    def _rebase(self, old: Path, new: Path) -> None:
        """The project moved folder: make its relative paths relative to the new one, in place,
        in the table and in every undo step (which would otherwise bring back paths that now
        point elsewhere). In place keeps the selection, run states and the last report."""
        if old == new:
            return
        specs = {id(spec): spec for spec in self.project.images}
        for index in range(self.undo.count()):
            command = self.undo.command(index)
            if isinstance(command, AddRows):
                specs.update((id(row.spec), row.spec) for row in command.rows)
            elif isinstance(command, RemoveRows):
                specs.update((id(row.spec), row.spec) for _, row in command.taken)
            elif isinstance(command, EditField) and command.name in projects.PATH_FIELDS:
                command.old = projects.rebase_field(command.name, command.old, old, new)
                command.new = projects.rebase_field(command.name, command.new, old, new)
        for spec in specs.values():
            for name in projects.PATH_FIELDS:
                setattr(spec, name, projects.rebase_field(name, getattr(spec, name), old, new))
        self.model.paths_changed()

    def autosave(self) -> None:
        """Keep unsaved edits where a crash cannot lose them, in this window's own autosave."""
        if not self.modified:
            self.discard_autosave()  # undone back to the file: nothing to offer after a crash
            return
        try:
            if self._autosave is None or self._autosave.key != stored.autosave_key(self.path):
                self.discard_autosave()  # of the project's old name (Save As of a recovered one)
                self._autosave = stored.claim_autosave(self.path)
            self._autosave.write(self.project)
        except OSError:
            pass  # never let autosave interrupt the user

    def give_up_edits(self) -> None:
        """The user chose to discard the unsaved edits: their autosave goes, and none is
        written again (quitting autosaves a modified project)."""
        self.discard_autosave()
        self._recovered = False
        self.undo.setClean()

    def discard_autosave(self) -> None:
        """Delete this window's autosave, if it wrote (or recovered) one."""
        if self._autosave is not None:
            self._autosave.clear()
            self._autosave = None

    # --- edits (each one undoable) -------------------------------------------------------------

    def edit(self, uid: int, name: str, value: Any, typing: bool = False) -> None:
        if getattr(self.model.image_by_uid(uid), name) != value:
            self.undo.push(EditField(self.model, uid, name, value, typing))

    def set_enabled(self, uids: list[int], enabled: bool) -> None:
        changing = [uid for uid in uids if self.model.image_by_uid(uid).enabled != enabled]
        if changing:
            self.undo.push(SetEnabled(self.model, changing, enabled))

    def add(self, specs: list[ImageSpec], text: str) -> list[int]:
        if not specs:
            return []
        rows = [Row(spec) for spec in specs]
        self.undo.push(AddRows(self.model, rows, text))
        return [row.uid for row in rows]

    def remove(self, uids: list[int]) -> None:
        if uids:
            self.undo.push(RemoveRows(self.model, uids))

    def duplicate(self, uids: list[int]) -> list[int]:
        copies = []
        taken = {image.name for image in self.project.images}
        for uid in uids:
            twin = self.model.image_by_uid(uid).copy()
            twin.name = self.model.free_name(twin.name)
            while twin.name in taken:
                twin.name = self.model.free_name(twin.name)
            taken.add(twin.name)
            copies.append(twin)
        return self.add(copies, f"Duplicate {len(copies)} image(s)")

    def set_setting(self, name: str, value: Any) -> None:
        if getattr(self.project, name) != value:
            self.undo.push(EditSetting(lambda: self.project, name, value, self._setting_applied))

    def use_registry(self, registry: str) -> None:
        """Push to another registry, without an undo step and without marking the project
        modified (`make run` points the demo at its private registry): the file keeps its
        own unless the project is saved."""
        self.project.registry = registry
        self._setting_applied("registry", registry)

    def _setting_applied(self, name: str, value: Any) -> None:
        if name == "registry":
            self.model.revalidate()  # the registry prefixes every name (length limits)
        self.settingChanged.emit(name, value)
