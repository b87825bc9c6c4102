"""Undoable edits of a project: every change a user makes goes through one of these.

Commands refer to rows by their stable uid, never by row number (the table can
be sorted and filtered), and keep whole removed rows so undo brings back their
run state and log too. Consecutive keystrokes in one field merge into one step.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtGui import QUndoCommand

from ..pipeline.project import Project
from .image_model import ImageTableModel, Row

_MERGE_FIELD_EDIT = 1


class EditField(QUndoCommand):
    """One image field (name, tags, context, Dockerfile, enabled, build args, target)."""

    def __init__(self, model: ImageTableModel, uid: int, name: str, value: Any, typing: bool = False) -> None:
        super().__init__(f"Edit {name.replace('_', ' ')} of {model.image_by_uid(uid).name}")
        self.model, self.uid, self.name = model, uid, name
        self.old = copy.deepcopy(getattr(model.image_by_uid(uid), name))
        self.new = copy.deepcopy(value)
        self.typing = typing  # keystrokes in a text field: merged with the next ones

    def id(self) -> int:
        return _MERGE_FIELD_EDIT if self.typing else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditField) or (other.uid, other.name) != (self.uid, self.name):
            return False
        self.new = other.new
        self.setObsolete(self.new == self.old)  # typed back to what it was: no step, not modified
        return True

    def redo(self) -> None:
        self.model.set_field(self.uid, self.name, self.new)

    def undo(self) -> None:
        self.model.set_field(self.uid, self.name, self.old)


class SetEnabled(QUndoCommand):
    def __init__(self, model: ImageTableModel, uids: list[int], enabled: bool) -> None:
        super().__init__(f"{'Enable' if enabled else 'Disable'} {len(uids)} image(s)")
        self.model, self.enabled = model, enabled
        self.before = {uid: model.image_by_uid(uid).enabled for uid in uids}

    def redo(self) -> None:
        for uid in self.before:
            self.model.set_field(uid, "enabled", self.enabled)

    def undo(self) -> None:
        for uid, value in self.before.items():
            self.model.set_field(uid, "enabled", value)


class AddRows(QUndoCommand):
    """New images (added, scanned, dropped, duplicated), at the end of the list."""

    def __init__(self, model: ImageTableModel, rows: list[Row], text: str) -> None:
        super().__init__(text)
        self.model, self.rows = model, rows
        self.position = model.rowCount()

    def redo(self) -> None:
        self.model.insert_rows(self.position, self.rows)

    def undo(self) -> None:
        self.model.take_rows([row.uid for row in self.rows])


class RemoveRows(QUndoCommand):
    def __init__(self, model: ImageTableModel, uids: list[int]) -> None:
        super().__init__(f"Remove {len(uids)} image(s)")
        self.model, self.uids = model, uids
        self.taken: list[tuple[int, Row]] = []

    def redo(self) -> None:
        self.taken = self.model.take_rows(self.uids)

    def undo(self) -> None:
        for position, row in self.taken:  # in ascending order: each goes back where it was
            self.model.insert_rows(position, [row])


class EditSetting(QUndoCommand):
    """A project-wide setting: the registry, the push path, the concurrency limits."""

    def __init__(self, project_of: Any, name: str, value: Any, apply: Any) -> None:
        super().__init__(f"Change {name}")
        self.project_of, self.name, self.apply = project_of, name, apply
        self.old, self.new = getattr(project_of(), name), value

    def id(self) -> int:
        return 2

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditSetting) or other.name != self.name:
            return False
        self.new = other.new
        self.setObsolete(self.new == self.old)  # typed back to what it was: no step, not modified
        return True

    def redo(self) -> None:
        self._set(self.new)

    def undo(self) -> None:
        self._set(self.old)

    def _set(self, value: Any) -> None:
        project: Project = self.project_of()
        setattr(project, self.name, value)
        self.apply(self.name, value)
