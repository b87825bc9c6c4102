"""The image table: a QAbstractTableModel over the project's plain list of ImageSpec.

The project list stays the single source of truth (it is what Save writes); run
state lives beside it in RowState objects. Engine records arrive in batches from
the controller, and each batch ends in one dataChanged per changed row, so a run
of 100 images streaming logs does not flood the view.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QIcon
from PySide6.QtWidgets import QApplication, QStyle

from ..pipeline import events as ev
from ..pipeline.project import ImageSpec, Project, image_problems
from .run_state import RowState, apply

COL_ENABLED, COL_NAME, COL_TAGS, COL_CONTEXT, COL_DOCKERFILE, COL_STATUS, COL_BUILD, COL_PUSH, COL_ELAPSED = range(9)
HEADERS = ["", "Name", "Tags", "Context", "Dockerfile", "Status", "Build", "Push", "Elapsed"]
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # float 0..1, or None for "no bar"
PROBLEMS_ROLE = Qt.ItemDataRole.UserRole + 2  # list[str]

_STATUS_ICONS = {
    ev.Status.QUEUED: QStyle.StandardPixmap.SP_MediaPause,
    ev.Status.BUILDING: QStyle.StandardPixmap.SP_BrowserReload,
    ev.Status.BUILT_WAITING: QStyle.StandardPixmap.SP_FileDialogContentsView,
    ev.Status.PUSHING: QStyle.StandardPixmap.SP_ArrowUp,
    ev.Status.PUSHED: QStyle.StandardPixmap.SP_DialogApplyButton,
    ev.Status.BUILT: QStyle.StandardPixmap.SP_DialogApplyButton,
    ev.Status.FAILED: QStyle.StandardPixmap.SP_MessageBoxCritical,
    ev.Status.CANCELLED: QStyle.StandardPixmap.SP_DialogCancelButton,
}
_INVALID = QColor("#fde2e1")
_Index = QModelIndex | QPersistentModelIndex


def status_text(state: RowState) -> str:
    if state.status is None:
        return ""
    if state.status is ev.Status.BUILDING and state.steps:
        text = f"building step {state.step}/{state.steps}"
    else:
        text = state.status.value
    return f"{text} — {state.note}" if state.note else text


class ImageTableModel(QAbstractTableModel):
    modified = Signal()  # the project's content changed (unsaved edits)

    def __init__(self, project: Project, parent: Any = None) -> None:
        super().__init__(parent)
        self._project = project
        self._states: list[RowState] = [RowState() for _ in project.images]
        self._problems: list[list[str]] = []
        self._revalidate()

    # --- the project ------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        return self._project

    def set_project(self, project: Project, keep_states: bool = False) -> None:
        """Show another project; keep_states when it is the same rows saved elsewhere."""
        self.beginResetModel()
        self._project = project
        if not keep_states:
            self._states = [RowState() for _ in project.images]
        self._revalidate()
        self.endResetModel()

    def image(self, row: int) -> ImageSpec:
        return self._project.images[row]

    def state(self, row: int) -> RowState:
        return self._states[row]

    def problems(self, row: int) -> list[str]:
        return self._problems[row]

    def _revalidate(self) -> None:
        """Re-check every row: a duplicate tag or a registry change involves other rows."""
        self._problems = [image_problems(self._project, row) for row in range(len(self._project.images))]

    def revalidate(self) -> None:
        self._revalidate()
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, COL_DOCKERFILE))

    def invalid_enabled_rows(self) -> list[tuple[int, list[str]]]:
        return [(row, problems) for row, problems in enumerate(self._problems)
                if problems and self._project.images[row].enabled]

    # --- Qt's table interface ----------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._project.images)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.ToolTipRole \
                and section == COL_ENABLED:
            return "Enabled: only enabled images are built and pushed"
        return None

    def flags(self, index: _Index) -> Qt.ItemFlag:
        base = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
        if index.column() == COL_ENABLED:
            return base | Qt.ItemFlag.ItemIsUserCheckable
        if index.column() in (COL_NAME, COL_TAGS, COL_CONTEXT, COL_DOCKERFILE):
            return base | Qt.ItemFlag.ItemIsEditable
        return base

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row, column = index.row(), index.column()
        image, state, problems = self._project.images[row], self._states[row], self._problems[row]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._text(image, state, column, role == Qt.ItemDataRole.EditRole)
        if role == Qt.ItemDataRole.CheckStateRole and column == COL_ENABLED:
            return Qt.CheckState.Checked if image.enabled else Qt.CheckState.Unchecked
        if role == PROGRESS_ROLE:
            return {COL_BUILD: state.build_fraction, COL_PUSH: state.push_fraction}.get(column)
        if role == PROBLEMS_ROLE:
            return problems
        if role == Qt.ItemDataRole.ToolTipRole:
            if problems and column <= COL_DOCKERFILE:
                return "Invalid:\n" + "\n".join(problems)
            if column == COL_STATUS and state.error:
                return state.error
            if column == COL_STATUS and state.digest:
                return state.digest
        if role == Qt.ItemDataRole.BackgroundRole and problems and image.enabled and column <= COL_DOCKERFILE:
            return QBrush(_INVALID)
        if role == Qt.ItemDataRole.DecorationRole:
            if column == COL_NAME and problems and image.enabled:
                return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            if column == COL_STATUS and state.status is not None:
                return QApplication.style().standardIcon(_STATUS_ICONS[state.status])
        if role == Qt.ItemDataRole.ForegroundRole and column == COL_STATUS \
                and state.status is ev.Status.FAILED:
            return QBrush(QColor("#b00020"))
        return None

    def _text(self, image: ImageSpec, state: RowState, column: int, editing: bool) -> Any:
        if column == COL_NAME:
            return image.name
        if column == COL_TAGS:
            return ", ".join(image.tags)
        if column == COL_CONTEXT:
            return image.context
        if column == COL_DOCKERFILE:
            return image.dockerfile
        if column == COL_STATUS:
            return status_text(state)
        if column == COL_ELAPSED:
            seconds = state.elapsed()
            return "" if seconds is None else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
        return None

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        if not index.isValid():
            return False
        image = self._project.images[index.row()]
        column = index.column()
        if column == COL_ENABLED and role == Qt.ItemDataRole.CheckStateRole:
            image.enabled = Qt.CheckState(value) == Qt.CheckState.Checked
        elif role != Qt.ItemDataRole.EditRole:
            return False
        elif column == COL_NAME:
            image.name = str(value).strip()
        elif column == COL_TAGS:
            image.tags = [tag.strip() for tag in str(value).replace(" ", ",").split(",") if tag.strip()]
        elif column == COL_CONTEXT:
            image.context = str(value).strip()
        elif column == COL_DOCKERFILE:
            image.dockerfile = str(value).strip() or "Dockerfile"
        else:
            return False
        self._edited()
        return True

    def _edited(self) -> None:
        self.revalidate()
        self.modified.emit()

    # --- editing many rows -------------------------------------------------------------------

    def add_images(self, images: list[ImageSpec]) -> None:
        if not images:
            return
        first = len(self._project.images)
        self.beginInsertRows(QModelIndex(), first, first + len(images) - 1)
        self._project.images.extend(images)
        self._states.extend(RowState() for _ in images)
        self.endInsertRows()
        self._edited()

    def remove_rows(self, rows: list[int]) -> None:
        for row in sorted(set(rows), reverse=True):
            self.beginRemoveRows(QModelIndex(), row, row)
            del self._project.images[row]
            del self._states[row]
            self.endRemoveRows()
        self._edited()

    def duplicate_rows(self, rows: list[int]) -> None:
        copies = []
        for row in sorted(set(rows)):
            twin = copy.deepcopy(self._project.images[row])
            twin.name = self._free_name(twin.name)
            copies.append(twin)
        self.add_images(copies)

    def _free_name(self, name: str) -> str:
        taken = {image.name for image in self._project.images}
        number = 2
        while f"{name}-{number}" in taken:
            number += 1
        return f"{name}-{number}"

    def set_enabled(self, rows: list[int], enabled: bool) -> None:
        for row in rows:
            self._project.images[row].enabled = enabled
        self._edited()

    def update_details(self, row: int, build_args: dict[str, str], target: str) -> None:
        image = self._project.images[row]
        if (image.build_args, image.target) != (build_args, target):
            image.build_args, image.target = build_args, target
            self._edited()

    # --- run state ---------------------------------------------------------------------------

    def reset_states(self, rows: list[int]) -> None:
        for row in rows:
            self._states[row] = RowState(status=ev.Status.QUEUED)
        self._emit_rows(rows)

    def mark_push_only(self, rows: list[int]) -> None:
        """Rows whose build already succeeded: keep their build, queue a push."""
        for row in rows:
            state = self._states[row]
            state.status, state.error, state.note = ev.Status.BUILT_WAITING, None, ""
            state.push_start = state.push_end = None
            state.pushed = state.push_total = 0
        self._emit_rows(rows)

    def apply_events(self, records: list[Any], keys: dict[str, int]) -> list[int]:
        """Fold a batch of engine records in; returns the rows that changed."""
        changed: set[int] = set()
        for record in records:
            row = keys.get(getattr(record, "image", ""))
            if row is None or row >= len(self._states):
                continue
            apply(self._states[row], record)
            changed.add(row)
        self._emit_rows(sorted(changed))
        return sorted(changed)

    def tick_elapsed(self) -> None:
        """Running rows' elapsed time moves without events."""
        running = [row for row, state in enumerate(self._states)
                   if state.status is not None and not state.status.final and state.status is not ev.Status.QUEUED]
        for row in running:
            self.dataChanged.emit(self.index(row, COL_ELAPSED), self.index(row, COL_ELAPSED))

    def _emit_rows(self, rows: list[int]) -> None:
        for row in rows:
            self.dataChanged.emit(self.index(row, COL_STATUS), self.index(row, COL_ELAPSED))

    def counts(self) -> dict[str, int]:
        result = {"built": 0, "pushed": 0, "failed": 0, "cancelled": 0, "active": 0}
        for state in self._states:
            if state.build_end and state.image_id:
                result["built"] += 1
            if state.status is ev.Status.PUSHED:
                result["pushed"] += 1
            elif state.status is ev.Status.FAILED:
                result["failed"] += 1
            elif state.status is ev.Status.CANCELLED:
                result["cancelled"] += 1
            elif state.status is not None and state.status is not ev.Status.BUILT:
                result["active"] += 1
        return result
