"""The image table as the user sees it: sortable, filterable, with a context menu.

The view shows the model through a proxy (filter text, "failed only", sorting
by each column's own values), so everything here speaks in row uids, never in
the view's row numbers. Typing in the table searches the names; it starts no
edit (F2, a double-click or the context menu do), so a stray key never
overwrites a cell. An empty table says what to do: drop folders here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QModelRoleDataSpan, QPersistentModelIndex, \
    QSortFilterProxyModel, Qt, Signal
from PySide6.QtGui import QAction, QContextMenuEvent, QDragEnterEvent, QDropEvent, QPainter
from PySide6.QtWidgets import QAbstractItemDelegate, QAbstractItemView, QApplication, QHeaderView, QMenu, QTableView, QWidget

from ..pipeline import events as ev
from .image_model import (COL_BUILD, COL_CONTEXT, COL_ELAPSED, COL_ENABLED, COL_NAME, COL_PUSH, COL_STATUS,
                          COL_TAGS, COLUMN_FLAGS, SORT_ROLE, UID_ROLE, ImageTableModel)
from .progress_delegate import ProgressDelegate


class ImageFilter(QSortFilterProxyModel):
    """Rows whose name, tags, context or status contain the filter text; optionally only
    those that failed or were cancelled; sorted by each column's own values."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._failed_only = False
        self.setSortRole(SORT_ROLE)
        self.setDynamicSortFilter(False)  # rows do not jump while a run updates them

    def setSourceModel(self, model: ImageTableModel) -> None:  # type: ignore[override]
        self._source = model  # the Python object, without a lookup through the binding per cell
        super().setSourceModel(model)

    def multiData(self, index: QModelIndex | QPersistentModelIndex, roles: QModelRoleDataSpan) -> None:
        """A painted cell's roles in one call to the model (see ImageTableModel.index)."""
        self._source.multiData(self.mapToSource(index), roles)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        return COLUMN_FLAGS[index.column()] if index.isValid() else Qt.ItemFlag.NoItemFlags  # columns map 1:1

    def set_text(self, text: str) -> None:
        self._refilter(lambda: setattr(self, "_text", text.strip().lower()))

    def set_failed_only(self, failed_only: bool) -> None:
        self._refilter(lambda: setattr(self, "_failed_only", failed_only))

    def outcomes_changed(self) -> None:
        """Rows reached an outcome during a run: with "Failed only" on or a filter typed,
        which rows match changed (sorting stays put: rows do not jump under the pointer)."""
        if self._failed_only or self._text:
            self._refilter(lambda: None)

    def _refilter(self, change: Any) -> None:
        """Qt 6.10 replaced invalidateFilter() with a begin/end pair around the change."""
        if hasattr(self, "beginFilterChange"):
            self.beginFilterChange()
            change()
            self.endFilterChange(QSortFilterProxyModel.Direction.Rows)
        else:
            change()
            self.invalidateFilter()

    def filterAcceptsRow(self, source_row: int, source_parent: QModelIndex | QPersistentModelIndex) -> bool:
        model: ImageTableModel = self.sourceModel()  # type: ignore[assignment]
        if self._failed_only and model.state(source_row).status not in (ev.Status.FAILED, ev.Status.CANCELLED):
            return False
        if not self._text:
            return True
        image, state = model.image(source_row), model.state(source_row)
        haystack = " ".join([image.name, ", ".join(image.tags), image.context, state.status_text()]).lower()
        return self._text in haystack


class ImageTable(QTableView):
    foldersDropped = Signal(object)  # list[Path]
    menuAboutToShow = Signal()  # a row's context menu opens: its actions' state is brought up to date first

    def __init__(self, model: ImageTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.source = model
        self.filter = ImageFilter(self)
        self.filter.setSourceModel(model)
        self.setModel(self.filter)
        self.setAcceptDrops(True)
        self._drop_action: QAction | None = None
        self.setSortingEnabled(True)
        self.sortByColumn(-1, Qt.SortOrder.AscendingOrder)  # the project's own order until a header is clicked
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QAbstractItemView.EditTrigger.DoubleClicked
                             | QAbstractItemView.EditTrigger.EditKeyPressed)
        self.verticalHeader().hide()
        self.setWordWrap(False)
        self.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # paths: keep both ends
        self.setItemDelegateForColumn(COL_BUILD, ProgressDelegate(self))
        self.setItemDelegateForColumn(COL_PUSH, ProgressDelegate(self))
        self.setAccessibleName("Images")
        header = self.horizontalHeader()
        header.setSectionsMovable(True)
        header.setHighlightSections(False)
        self._size_columns()
        # The selection is asked for once per updated row during a run (hundreds a second):
        # kept until the selection or the rows shown change.
        self._selected: list[int] | None = None
        self._menu_actions: list[QAction | None] = []
        self.selectionModel().selectionChanged.connect(self._forget_selection)
        for changed in (self.filter.layoutChanged, self.filter.modelReset, self.filter.rowsInserted,
                        self.filter.rowsRemoved):
            changed.connect(self._forget_selection)

    def _size_columns(self) -> None:
        metrics = self.fontMetrics()
        self.verticalHeader().setDefaultSectionSize(metrics.height() + 10)
        header = self.horizontalHeader()
        for column, chars in ((COL_ENABLED, 3), (COL_NAME, 18), (COL_TAGS, 13), (COL_CONTEXT, 18),
                              (COL_STATUS, 24), (COL_BUILD, 12), (COL_PUSH, 12), (COL_ELAPSED, 7)):
            header.resizeSection(column, metrics.averageCharWidth() * chars + 16)
        header.setSectionResizeMode(COL_STATUS, QHeaderView.ResizeMode.Stretch)

    # --- rows by uid -------------------------------------------------------------------------

    def selected_uids(self) -> list[int]:
        if self._selected is None:
            rows = {index.row() for index in self.selectionModel().selectedRows()}
            self._selected = [self.filter.index(row, 0).data(UID_ROLE) for row in sorted(rows)]
        return list(self._selected)

    def _forget_selection(self, *_: Any) -> None:
        self._selected = None

    def current_uid(self) -> int | None:
        index = self.currentIndex()
        return index.data(UID_ROLE) if index.isValid() else None

    def select_uid(self, uid: int) -> None:
        row = self.source.row_of(uid)
        if row is None:
            return
        index = self.filter.mapFromSource(self.source.index(row, 0))
        if index.isValid():
            # The selection model's setCurrentIndex, not the view's: the view's would read the
            # keyboard modifiers held right now and could toggle the row off again.
            self.selectionModel().setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                                                  | QItemSelectionModel.SelectionFlag.Rows)
            self.scrollTo(index)

    def commit_editor(self) -> None:
        """Finish an edit in progress, so what is typed is what Start, Save and close use."""
        if self.state() is not QAbstractItemView.State.EditingState:
            return
        editor = QApplication.focusWidget()
        if editor is not None and self.viewport().isAncestorOf(editor):
            self.commitData(editor)
            self.closeEditor(editor, QAbstractItemDelegate.EndEditHint.NoHint)

    # --- empty table, drops, context menu -------------------------------------------------------

    def paintEvent(self, event: Any) -> None:
        super().paintEvent(event)
        if self.source.rowCount() == 0:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.viewport().rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "Drop folders with Dockerfiles here\n(or use Add folder… to scan a tree)")

    def set_drop_action(self, action: QAction) -> None:
        """Dropped folders are added as this action adds them, and only while it is enabled
        (not during a run): the cursor says so as the drag enters."""
        self._drop_action = action

    def _takes(self, event: QDragEnterEvent | QDropEvent) -> bool:
        return event.mimeData().hasUrls() and (self._drop_action is None or self._drop_action.isEnabled())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._takes(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: Any) -> None:
        if self._takes(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:
        if not self._takes(event):
            event.ignore()
            return
        folders = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        folders = [folder for folder in folders if folder.is_dir()]
        if folders:
            self.foldersDropped.emit(folders)
            event.acceptProposedAction()

    def set_menu_actions(self, actions: list[QAction | None]) -> None:
        """The row context menu's commands, in order (None: a separator)."""
        self._menu_actions = actions

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        """Right-click (or the menu key) on a row that is not selected selects it first, as
        file managers do: the commands then act on what the menu was opened on."""
        index = self.indexAt(event.pos())
        if index.isValid() and not self.selectionModel().isRowSelected(index.row(), QModelIndex()):
            self.select_uid(index.data(UID_ROLE))  # replaces the selection whatever keys are held
        self.menuAboutToShow.emit()
        menu = QMenu(self)
        menu.setObjectName("row-menu")
        for act in self._menu_actions:
            menu.addSeparator() if act is None else menu.addAction(act)
        if not menu.isEmpty():
            menu.exec(event.globalPos())
        menu.deleteLater()
