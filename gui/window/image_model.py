"""The image table: a QAbstractTableModel over the project's plain list of ImageSpec.

The project list stays the single source of truth (it is what Save writes); run
state and validation results live beside it, per row. Each row has a stable
identity (`uid`) that survives sorting, filtering, inserts and removals, so
run records, undo commands and the views never hold on to a row number.

Edits from the views become undo commands (commands.py); the model only
applies them. Validation is incremental: an edit re-checks its own row, plus
the rows whose duplicate status changed (one linear pass), and Dockerfiles are
parsed once per change on disk (project.DockerfileCache). Engine records arrive
in batches from the controller; each batch ends in one dataChanged per range of
adjacent rows it changed, log lines aside (they change no cell).
"""

from __future__ import annotations

import copy
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QModelRoleDataSpan, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QGuiApplication
from PySide6.QtWidgets import QApplication, QStyle

from ..pipeline import events as ev
from ..pipeline.project import DockerfileCache, ImageSpec, Project, duplicate_refs, image_problems
from . import theme
from .run_state import RowState, apply

COL_ENABLED, COL_NAME, COL_TAGS, COL_CONTEXT, COL_DOCKERFILE, COL_STATUS, COL_BUILD, COL_PUSH, COL_ELAPSED = range(9)
HEADERS = ["", "Name", "Tags", "Context", "Dockerfile", "Status", "Build", "Push", "Elapsed"]
EDITABLE = {COL_NAME: "name", COL_TAGS: "tags", COL_CONTEXT: "context", COL_DOCKERFILE: "dockerfile"}
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1  # float 0..1, or None for "no bar"
PROBLEMS_ROLE = Qt.ItemDataRole.UserRole + 2  # list[str]
SORT_ROLE = Qt.ItemDataRole.UserRole + 3  # a value that sorts as the column should
UID_ROLE = Qt.ItemDataRole.UserRole + 4  # the row's stable identity
_LOG_RECORDS = (ev.LogLine, ev.LogGap)  # records that change no cell of a row
_SELECTABLE = Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable
COLUMN_FLAGS = [_SELECTABLE | Qt.ItemFlag.ItemIsUserCheckable if column == COL_ENABLED
                else _SELECTABLE | Qt.ItemFlag.ItemIsEditable if column in EDITABLE else _SELECTABLE
                for column in range(len(HEADERS))]

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
COUNTED = ("enabled", "built", "pushed", "failed", "cancelled", "active", "retryable", "run", "run_done",
           "run_failed")
_STATUS_ORDER = {status: order for order, status in enumerate(
    (ev.Status.FAILED, ev.Status.BUILDING, ev.Status.PUSHING, ev.Status.BUILT_WAITING, ev.Status.QUEUED,
     ev.Status.CANCELLED, ev.Status.BUILT, ev.Status.PUSHED))}
_Index = QModelIndex | QPersistentModelIndex
_uids = itertools.count(1)


@dataclass
class Row:
    """An image of the project and what the window knows about it."""

    spec: ImageSpec
    uid: int = field(default_factory=lambda: next(_uids))
    state: RowState = field(default_factory=RowState)
    problems: list[str] = field(default_factory=list)


def _ticks(row: Row) -> bool:
    """Whether the row's elapsed time moves: under way, not waiting in the queue."""
    status = row.state.status
    return status is not None and not status.final and status is not ev.Status.QUEUED


def display_tags(tags: list[str]) -> str:
    return ", ".join(tags)


def parse_tags(text: str) -> list[str]:
    return [tag.strip() for tag in str(text).replace(" ", ",").split(",") if tag.strip()]


class ImageTableModel(QAbstractTableModel):
    editRequested = Signal(int, str, object)  # uid, field, new value: the document makes it a command

    def __init__(self, project: Project, parent: Any = None) -> None:
        super().__init__(parent)
        self._project = project
        self._rows = [Row(spec) for spec in project.images]
        self._by_uid: dict[int, int] = {}
        self._duplicates: dict[int, str] = {}
        self._run: set[int] = set()  # uids of the latest run's rows
        self._counts: Counter[str] = Counter()
        self._ticking: set[int] = set()  # uids of rows whose elapsed time moves (see tick_elapsed)
        self.backend = "buildkit"  # "classic" makes BuildKit-only lines problems
        self._dockerfiles = DockerfileCache()
        self._reindex()
        self._revalidate_all()

    # --- the project ------------------------------------------------------------------------

    @property
    def project(self) -> Project:
        return self._project

    def set_project(self, project: Project) -> None:
        """Show another project."""
        self.beginResetModel()
        self._project = project
        self._rows = [Row(spec) for spec in project.images]
        self._run = set()
        self._reindex()
        self._revalidate_all()
        self.endResetModel()

    def _reindex(self) -> None:
        self._by_uid = {row.uid: index for index, row in enumerate(self._rows)}
        self._recount()

    def row_of(self, uid: int) -> int | None:
        return self._by_uid.get(uid)

    def uid(self, row: int) -> int:
        return self._rows[row].uid

    def uids(self) -> list[int]:
        return [row.uid for row in self._rows]

    def image(self, row: int) -> ImageSpec:
        return self._rows[row].spec

    def image_by_uid(self, uid: int) -> ImageSpec:
        return self._rows[self._by_uid[uid]].spec

    def state(self, row: int) -> RowState:
        return self._rows[row].state

    def state_by_uid(self, uid: int) -> RowState:
        return self._rows[self._by_uid[uid]].state

    def problems(self, row: int) -> list[str]:
        return self._rows[row].problems

    # --- validation ---------------------------------------------------------------------------

    def _revalidate_all(self) -> None:
        self._duplicates = self._duplicate_uids()
        for index, row in enumerate(self._rows):
            row.problems = self._problems_of(index)

    def _duplicate_uids(self) -> dict[int, str]:
        """duplicate_refs() keyed by row identity, so it stays true across inserts and removals."""
        return {self._rows[index].uid: ref for index, ref in duplicate_refs(self._project.images).items()}

    def _problems_of(self, index: int) -> list[str]:
        duplicates = {index: self._duplicates[uid]} if (uid := self._rows[index].uid) in self._duplicates else {}
        return image_problems(self._project, index, duplicates=duplicates, backend=self.backend,
                              cache=self._dockerfiles)

    def revalidate(self, rows: list[int] | None = None) -> None:
        """Check `rows` again (None: all), and every row whose duplicate status changed."""
        before = self._duplicates
        self._duplicates = self._duplicate_uids()
        if rows is None:
            targets = set(range(len(self._rows)))
        else:
            changed = {uid for uid in before.keys() | self._duplicates.keys()
                       if before.get(uid) != self._duplicates.get(uid)}
            targets = {r for r in rows if 0 <= r < len(self._rows)}
            targets |= {index for uid in changed if (index := self._by_uid.get(uid)) is not None}
        for index in sorted(targets):
            problems = self._problems_of(index)
            if problems != self._rows[index].problems:
                self._rows[index].problems = problems
                self.dataChanged.emit(self.index(index, 0), self.index(index, COL_DOCKERFILE))

    def paths_changed(self) -> None:
        """The images' paths were rewritten in place (the project was saved in another folder)."""
        self.revalidate()
        if self._rows:
            self.dataChanged.emit(self.index(0, COL_CONTEXT), self.index(len(self._rows) - 1, COL_CONTEXT))

    def set_backend(self, kind: str) -> None:
        """The builder that will build is known: classic makes BuildKit-only lines problems."""
        if kind != self.backend:
            self.backend = kind
            self.revalidate()

    def invalid_enabled_rows(self) -> list[tuple[int, list[str]]]:
        return [(index, row.problems) for index, row in enumerate(self._rows) if row.problems and row.spec.enabled]

    # --- Qt's table interface ----------------------------------------------------------------

    def rowCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: _Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation is not Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        if role in (Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.AccessibleTextRole) and section == COL_ENABLED:
            return "Enabled: only enabled images are built and pushed"
        return None

    # The table paints each visible cell through the proxy, asking for seven roles and the
    # flags; every call into Python costs microseconds, and a full repaint of the table's
    # visible rows took 22 ms of the GUI thread, two thirds of it in these calls. So: no
    # hasIndex() (it asks rowCount() and columnCount() back through Python), no checkIndex()
    # in data(), flags from a table, and all the roles of a cell in one multiData() call.

    def index(self, row: int, column: int, parent: _Index = QModelIndex()) -> QModelIndex:
        if parent.isValid() or not (0 <= row < len(self._rows) and 0 <= column < len(HEADERS)):
            return QModelIndex()
        return self.createIndex(row, column)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        return COLUMN_FLAGS[index.column()] if index.isValid() else Qt.ItemFlag.NoItemFlags

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        return self._value(self._rows[index.row()], index.column(), role)

    def multiData(self, index: _Index, roles: QModelRoleDataSpan) -> None:
        """Every role a delegate asks of one cell, in one call (Qt's own asks data() per role)."""
        row = self._rows[index.row()] if index.isValid() and index.row() < len(self._rows) else None
        for position in range(len(roles)):
            slot = roles[position]
            value = None if row is None else self._value(row, index.column(), slot.role())
            if value is None:
                slot.clearData()
            else:
                slot.setData(value)

    def _value(self, row: Row, column: int, role: int) -> Any:
        image, state, problems = row.spec, row.state, row.problems
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return self._text(image, state, column)
        if role == Qt.ItemDataRole.CheckStateRole and column == COL_ENABLED:
            return Qt.CheckState.Checked if image.enabled else Qt.CheckState.Unchecked
        if role == PROGRESS_ROLE:
            return {COL_BUILD: state.build_fraction, COL_PUSH: state.push_fraction}.get(column)
        if role == PROBLEMS_ROLE:
            return problems
        if role == UID_ROLE:
            return row.uid
        if role == SORT_ROLE:
            return self._sort_value(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(row, column)
        if role == Qt.ItemDataRole.AccessibleTextRole and column == COL_ENABLED:
            return f"{image.name} {'enabled' if image.enabled else 'disabled'}"
        if role == Qt.ItemDataRole.BackgroundRole and problems and image.enabled and column <= COL_DOCKERFILE:
            return QBrush(theme.invalid_background(QGuiApplication.palette()))
        if role == Qt.ItemDataRole.DecorationRole:
            if column == COL_NAME and problems and image.enabled:
                return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
            if column == COL_STATUS and state.status is not None:
                return QApplication.style().standardIcon(_STATUS_ICONS[state.status])
        if role == Qt.ItemDataRole.ForegroundRole and column == COL_STATUS \
                and state.status is ev.Status.FAILED:
            return QBrush(theme.error_text(QGuiApplication.palette()))
        return None

    def _text(self, image: ImageSpec, state: RowState, column: int) -> Any:
        if column == COL_NAME:
            return image.name
        if column == COL_TAGS:
            return display_tags(image.tags)
        if column == COL_CONTEXT:
            return image.context
        if column == COL_DOCKERFILE:
            return image.dockerfile
        if column == COL_STATUS:
            return state.status_text()
        if column == COL_ELAPSED:
            seconds = state.elapsed()
            return "" if seconds is None else f"{int(seconds) // 60}:{int(seconds) % 60:02d}"
        return None

    def _tooltip(self, row: Row, column: int) -> str | None:
        state = row.state
        if row.problems and column <= COL_DOCKERFILE:
            return "Invalid:\n" + "\n".join(row.problems)
        if column == COL_STATUS and state.error:
            return f"{state.error}\nWhat to do: {state.hint}" if state.hint else state.error
        if column == COL_STATUS and state.digest:
            return state.digest
        return None

    @staticmethod
    def _sort_value(row: Row, column: int) -> Any:
        image, state = row.spec, row.state
        if column == COL_ENABLED:
            return int(image.enabled)
        if column == COL_STATUS:
            return (_STATUS_ORDER.get(state.status, 99) if state.status else 100, state.status_text())
        if column in (COL_BUILD, COL_PUSH):
            fraction = state.build_fraction if column == COL_BUILD else state.push_fraction
            return -1.0 if fraction is None else fraction
        if column == COL_ELAPSED:
            return state.elapsed() or 0.0
        return str({COL_NAME: image.name, COL_TAGS: display_tags(image.tags), COL_CONTEXT: image.context,
                    COL_DOCKERFILE: image.dockerfile}[column]).lower()

    def setData(self, index: _Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """A view's edit: asks for an undoable command (nothing happens when nothing changes)."""
        if not index.isValid():
            return False
        row, column = self._rows[index.row()], index.column()
        if column == COL_ENABLED and role == Qt.ItemDataRole.CheckStateRole:
            new: Any = Qt.CheckState(value) == Qt.CheckState.Checked
            name = "enabled"
        elif role == Qt.ItemDataRole.EditRole and column in EDITABLE:
            name = EDITABLE[column]
            text = str(value).strip()
            new = parse_tags(text) if name == "tags" else (text or "Dockerfile" if name == "dockerfile" else text)
        else:
            return False
        if getattr(row.spec, name) == new:
            return False
        self.editRequested.emit(row.uid, name, new)
        return True

    # --- applying edits (the undo commands call these) ------------------------------------------

    def set_field(self, uid: int, name: str, value: Any) -> None:
        index = self._by_uid[uid]
        before = self._tally(self._rows[index])
        setattr(self._rows[index].spec, name, copy.deepcopy(value))
        self._counted(before, self._rows[index])
        self.revalidate([index])
        self.dataChanged.emit(self.index(index, 0), self.index(index, self.columnCount() - 1))

    def insert_rows(self, position: int, rows: list[Row]) -> None:
        """Put rows (new, or removed earlier and brought back by undo) at `position`."""
        if not rows:
            return
        position = max(0, min(position, len(self._rows)))
        self.beginInsertRows(QModelIndex(), position, position + len(rows) - 1)
        self._rows[position:position] = rows
        self._project.images[position:position] = [row.spec for row in rows]
        self._reindex()
        self.endInsertRows()
        self.revalidate(list(range(position, position + len(rows))))

    def take_rows(self, uids: list[int]) -> list[tuple[int, Row]]:
        """Remove rows; returns (position, row) of each, for undo to put them back."""
        taken = []
        for index in sorted((self._by_uid[uid] for uid in uids if uid in self._by_uid), reverse=True):
            self.beginRemoveRows(QModelIndex(), index, index)
            row = self._rows.pop(index)
            del self._project.images[index]
            # Up to date before rowsRemoved: its handlers look rows up by uid.
            del self._by_uid[row.uid]
            for later in range(index, len(self._rows)):
                self._by_uid[self._rows[later].uid] = later
            self._counts.subtract(self._tally(row))
            self.endRemoveRows()
            taken.append((index, row))
        self.revalidate([])
        return sorted(taken, key=lambda item: item[0])

    def free_name(self, name: str) -> str:
        taken = {row.spec.name for row in self._rows}
        number = 2
        while f"{name}-{number}" in taken:
            number += 1
        return f"{name}-{number}"

    # --- run state ---------------------------------------------------------------------------

    def start_rows(self, uids: list[int], push_only: list[int], refs: dict[int, tuple[str, ...]],
                   will_push: bool = True, inputs: dict[int, str] | None = None) -> None:
        """A run is about to work on these rows: queued (built from `inputs`), or
        (push_only) waiting to push again."""
        for uid in uids:
            index = self._by_uid[uid]
            old = self._rows[index].state
            if uid in push_only:
                old.push_again()
            else:
                self._rows[index].state = RowState(status=ev.Status.QUEUED, log_files=old.log_files,
                                                   built_from=(inputs or {}).get(uid, ""))
            self._rows[index].state.refs = refs.get(uid, ())
            self._rows[index].state.log_lines = 0
            self._rows[index].state.will_push = will_push
        self._run = set(uids)
        self._recount()
        self._emit_rows([self._by_uid[uid] for uid in uids])

    def add_log_file(self, uid: int, path: Any) -> None:
        if uid in self._by_uid:
            self._rows[self._by_uid[uid]].state.log_files.append(path)

    def apply_events(self, records: list[Any], keys: dict[str, int]) -> set[int]:
        """Fold a batch of engine records in; returns the uids that changed. Log lines
        change no cell (only the row's line count), so a chatty build does not repaint
        its row ten times a second for them."""
        changed: set[int] = set()
        shown: set[int] = set()
        for record in records:
            uid = keys.get(getattr(record, "image", ""))
            if uid is None or uid not in self._by_uid:
                continue
            row = self._rows[self._by_uid[uid]]
            changed.add(uid)
            if isinstance(record, _LOG_RECORDS):
                apply(row.state, record)
                continue
            before = self._tally(row)
            apply(row.state, record)
            self._counted(before, row)
            shown.add(uid)
        self._emit_rows([self._by_uid[uid] for uid in shown])
        return changed

    def tick_elapsed(self) -> None:
        """Running rows' elapsed time moves without events: once a second, for the rows
        under way only, however many rows the project has."""
        for uid in list(self._ticking):
            index = self._by_uid.get(uid)
            if index is None:
                self._ticking.discard(uid)  # removed meanwhile
            else:
                self.dataChanged.emit(self.index(index, COL_ELAPSED), self.index(index, COL_ELAPSED))

    def _emit_rows(self, indexes: list[int]) -> None:
        """One dataChanged per run of adjacent rows: a run's start changes 1,000 rows at once."""
        ordered = sorted(set(indexes))
        first = 0
        for position, index in enumerate(ordered):
            if position + 1 == len(ordered) or ordered[position + 1] != index + 1:
                self.dataChanged.emit(self.index(ordered[first], COL_STATUS), self.index(index, COL_ELAPSED))
                first = position + 1

    # --- counts: kept as rows change, never by walking every row -------------------------------

    def _tally(self, row: Row) -> list[str]:
        """What one row adds to the counts (the status bar, the Retry action)."""
        state, status = row.state, row.state.status
        keys = ["enabled"] if row.spec.enabled else []
        if state.build_end and state.image_id:
            keys.append("built")
        if status is ev.Status.PUSHED:
            keys.append("pushed")
        elif status in (ev.Status.FAILED, ev.Status.CANCELLED):
            keys.append(status.value)
            if row.spec.enabled:
                keys.append("retryable")
        elif status is not None and status is not ev.Status.BUILT:
            keys.append("active")
        if row.uid in self._run:
            keys.append("run")
            if status is not None and status.final:
                keys.append("run_done")
            if status is ev.Status.FAILED:
                keys.append("run_failed")
        return keys

    def _counted(self, before: list[str], row: Row) -> None:
        self._counts.subtract(before)
        self._counts.update(self._tally(row))
        if _ticks(row):
            self._ticking.add(row.uid)
        else:
            self._ticking.discard(row.uid)

    def _recount(self) -> None:
        self._counts = Counter(key for row in self._rows for key in self._tally(row))
        self._ticking = {row.uid for row in self._rows if _ticks(row)}

    def counts(self) -> dict[str, int]:
        """enabled rows; built, pushed, failed, cancelled, active (queued to pushing);
        retryable (failed or cancelled, and enabled); run, run_done, run_failed (the latest
        run's rows, those ended, those failed). Kept up to date as events arrive: 1,000
        rows cost nothing per batch."""
        return {key: self._counts[key] for key in COUNTED}
