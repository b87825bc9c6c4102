"""A read-only view of many log lines that costs only the lines in sight.

QPlainTextEdit keeps its text in a QTextDocument: each appended line costs about
25 µs of the GUI thread (inserted as a block, laid out, shaped), so an image
printing 2,000 lines a second took 5 ms of every 100 ms batch, and the window's
heartbeat ran late while it streamed (the window bench: p99 26 ms with the log
view, 13 ms without). Here lines are a Python list; appending costs a list
extend, and a paint draws the thirty or so lines on screen.

What a user does with a log still works: scroll (wheel, keys, bars), select with
the mouse (across lines, to the character), copy (Ctrl+C, the context menu),
select all, find (the match is selected and scrolled to), follow the end while
it is at the end. Error lines take the palette's error colour, push lines its
success colour. Screen readers get the view's name and its line count; the whole
log is one click away in the system's editor ("Open log file").
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QPoint, QRect, Qt, Signal
from PySide6.QtGui import (QClipboard, QColor, QContextMenuEvent, QFontDatabase, QGuiApplication, QKeyEvent, QKeySequence,
                           QMouseEvent, QPainter, QPaintEvent, QResizeEvent)
from PySide6.QtWidgets import QAbstractScrollArea, QMenu, QWidget

from . import theme

MARGIN = 4  # pixels left of the text
Position = tuple[int, int]  # (line, column)


class LogLines(QAbstractScrollArea):
    """Lines, oldest first, at most `limit` of them (the oldest go first)."""

    selectionChanged = Signal()

    def __init__(self, limit: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.limit = limit
        self._lines: list[str] = []
        self._longest = ""  # sets the horizontal range (cheaper than measuring every line)
        self._longest_width = 0
        self._anchor: Position | None = None  # the selection: from the anchor to the caret
        self._caret: Position | None = None
        self.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setCursor(Qt.CursorShape.IBeamCursor)
        self.verticalScrollBar().setSingleStep(1)  # in lines; the wheel scrolls three

    # --- content ----------------------------------------------------------------------------------

    def set_lines(self, lines: list[str]) -> None:
        self._lines = [line.expandtabs() for line in lines[-self.limit:]]
        self._longest = max(self._lines, key=len, default="")
        self._longest_width = self.fontMetrics().horizontalAdvance(self._longest)
        self._anchor = self._caret = None
        self._update_ranges()
        self.scroll_to_end()
        self.viewport().update()
        self.selectionChanged.emit()

    def append(self, lines: list[str]) -> None:
        """New lines at the end; the view follows them if it was at the end."""
        if not lines:
            return
        bar = self.verticalScrollBar()
        following = bar.value() >= bar.maximum()
        added = [line.expandtabs() for line in lines]
        self._lines.extend(added)
        longest = max(added, key=len)
        if len(longest) > len(self._longest):
            self._longest = longest
            self._longest_width = self.fontMetrics().horizontalAdvance(longest)
        excess = len(self._lines) - self.limit
        if excess > 0:
            del self._lines[:excess]
            self._shift_selection(excess)
            if not following:
                bar.setValue(bar.value() - excess)  # the same lines stay in sight
        self._update_ranges()
        if following:
            self.scroll_to_end()
        self.viewport().update()

    def clear(self) -> None:
        self.set_lines([])

    def line_count(self) -> int:
        return len(self._lines)

    def line(self, number: int) -> str:
        return self._lines[number]

    def plain_text(self) -> str:
        return "\n".join(self._lines)

    def scroll_to_end(self) -> None:
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    def first_visible_line(self) -> int:
        return self.verticalScrollBar().value()

    # --- selection and find --------------------------------------------------------------------------

    def selection(self) -> tuple[Position, Position] | None:
        """(start, end) in reading order, or None when nothing is selected."""
        if self._anchor is None or self._caret is None or self._anchor == self._caret:
            return None
        return min(self._anchor, self._caret), max(self._anchor, self._caret)

    def selected_text(self) -> str:
        chosen = self.selection()
        if chosen is None:
            return ""
        (first, start), (last, end) = chosen
        if first == last:
            return self._lines[first][start:end]
        return "\n".join([self._lines[first][start:], *self._lines[first + 1:last], self._lines[last][:end]])

    def select(self, start: Position, end: Position) -> None:
        self._anchor, self._caret = start, end
        self.viewport().update()
        self.selectionChanged.emit()

    def select_all(self) -> None:
        if self._lines:
            self.select((0, 0), (len(self._lines) - 1, len(self._lines[-1])))

    def copy(self) -> None:
        if text := self.selected_text():
            QGuiApplication.clipboard().setText(text)

    def find(self, needle: str, backwards: bool = False) -> bool:
        """Select the next match of `needle` (case-insensitive) after the selection, or before
        it, wrapping around once; scroll it into sight. False when the log has none."""
        if not needle or not self._lines:
            return False
        needle = needle.lower()
        chosen = self.selection()
        count = len(self._lines)
        top = self.verticalScrollBar().value()  # with nothing selected: from what is in sight
        if backwards:  # a match that starts before the selection's start
            bottom = min(count - 1, top + self._page() - 1)
            line, column = chosen[0] if chosen else (bottom, len(self._lines[bottom]) + 1)
            for step in range(count + 1):
                number = (line - step) % count
                text = self._lines[number].lower()
                found = text.rfind(needle, 0, column - 1 + len(needle) if step == 0 else len(text))
                if found >= 0:
                    return self._show_match(number, found, len(needle))
        else:  # a match that starts at the selection's end or after
            line, column = chosen[1] if chosen else (top, 0)
            for step in range(count + 1):
                number = (line + step) % count
                found = self._lines[number].lower().find(needle, column if step == 0 else 0)
                if found >= 0:
                    return self._show_match(number, found, len(needle))
        return False

    def _show_match(self, line: int, column: int, length: int) -> bool:
        self.select((line, column), (line, column + length))
        self.ensure_visible(line, column, column + length)
        return True

    def ensure_visible(self, line: int, start: int = 0, end: int = 0) -> None:
        bar = self.verticalScrollBar()
        if not bar.value() <= line < bar.value() + self._page():
            bar.setValue(line - self._page() // 2)
        metrics = self.fontMetrics()
        left = metrics.horizontalAdvance(self._lines[line][:start])
        right = metrics.horizontalAdvance(self._lines[line][:end])
        across = self.horizontalScrollBar()
        if left < across.value() or right > across.value() + self.viewport().width() - 2 * MARGIN:
            across.setValue(max(0, left - self.viewport().width() // 3))

    def _shift_selection(self, removed: int) -> None:
        """The oldest `removed` lines went: the selection moves with its lines, or goes."""
        if self._anchor is None or self._caret is None:
            return
        if min(self._anchor, self._caret)[0] < removed:
            self._anchor = self._caret = None
            self.selectionChanged.emit()
        else:
            self._anchor = (self._anchor[0] - removed, self._anchor[1])
            self._caret = (self._caret[0] - removed, self._caret[1])

    # --- geometry ---------------------------------------------------------------------------------

    def _line_height(self) -> int:
        return self.fontMetrics().lineSpacing()

    def _page(self) -> int:
        return max(1, self.viewport().height() // self._line_height())

    def _update_ranges(self) -> None:
        page = self._page()
        self.verticalScrollBar().setRange(0, max(0, len(self._lines) - page))
        self.verticalScrollBar().setPageStep(page)
        width = self._longest_width + 2 * MARGIN
        self.horizontalScrollBar().setRange(0, max(0, width - self.viewport().width()))
        self.horizontalScrollBar().setPageStep(self.viewport().width())
        self.horizontalScrollBar().setSingleStep(self.fontMetrics().averageCharWidth() * 4)

    def _position_at(self, point: QPoint) -> Position:
        """The (line, column) under a point of the viewport, clamped to the text."""
        if not self._lines:
            return (0, 0)
        line = self.verticalScrollBar().value() + point.y() // self._line_height()
        line = max(0, min(len(self._lines) - 1, line))
        text = self._lines[line]
        x = point.x() + self.horizontalScrollBar().value() - MARGIN
        metrics = self.fontMetrics()
        low, high = 0, len(text)  # the column whose left edge is nearest x, by bisection
        while low < high:
            middle = (low + high) // 2
            edge = (metrics.horizontalAdvance(text[:middle]) + metrics.horizontalAdvance(text[:middle + 1])) / 2
            if edge < x:
                low = middle + 1
            else:
                high = middle
        return (line, low)

    # --- events -----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.FontChange:
            self._longest_width = self.fontMetrics().horizontalAdvance(self._longest)
            self._update_ranges()

    def resizeEvent(self, event: QResizeEvent) -> None:
        bar = self.verticalScrollBar()
        following = bar.value() >= bar.maximum()
        super().resizeEvent(event)
        self._update_ranges()
        if following:
            self.scroll_to_end()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        self.viewport().update()

    def _colours(self) -> dict[str, QColor]:
        palette = self.palette()  # read at each paint: a change of colour scheme shows at once
        return {"error": theme.error_text(palette), "push": theme.success_text(palette),
                "text": palette.color(palette.ColorRole.Text)}

    def line_colour(self, number: int) -> QColor:
        return self._colours()[line_kind(self._lines[number])]

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self.viewport())
        metrics = self.fontMetrics()
        height, ascent = metrics.lineSpacing(), metrics.ascent()
        left = MARGIN - self.horizontalScrollBar().value()
        top_line = self.verticalScrollBar().value()
        first = top_line + event.rect().top() // height
        last = min(len(self._lines), top_line + event.rect().bottom() // height + 1)
        colours = self._colours()
        pen = None
        y = (first - top_line) * height + ascent
        for text in self._lines[first:last]:  # a pen change only where the colour changes
            if (colour := colours[line_kind(text)]) is not pen:
                painter.setPen(colour)
                pen = colour
            painter.drawText(left, y, text)
            y += height
        if (chosen := self.selection()) is not None:
            self._paint_selection(painter, chosen, max(first, chosen[0][0]), min(last - 1, chosen[1][0]))

    def _paint_selection(self, painter: QPainter, chosen: tuple[Position, Position], first: int, last: int) -> None:
        """The selected part of lines first..last, over what paintEvent drew."""
        palette = self.palette()
        metrics = self.fontMetrics()
        height, ascent = metrics.lineSpacing(), metrics.ascent()
        left = MARGIN - self.horizontalScrollBar().value()
        top_line = self.verticalScrollBar().value()
        painter.setPen(palette.color(palette.ColorRole.HighlightedText))
        for number in range(first, last + 1):
            text = self._lines[number]
            start = chosen[0][1] if number == chosen[0][0] else 0
            end = chosen[1][1] if number == chosen[1][0] else len(text)
            x = left + metrics.horizontalAdvance(text[:start])
            span = metrics.horizontalAdvance(text[start:end])
            if number != chosen[1][0]:
                span = max(span, self.viewport().width())  # a selected line break reads as selected to the edge
            top = (number - top_line) * height
            painter.fillRect(QRect(x, top, span, height), palette.color(palette.ColorRole.Highlight))
            painter.drawText(x, top + ascent, text[start:end])

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mousePressEvent(event)
        position = self._position_at(event.position().toPoint())
        if not (event.modifiers() & Qt.KeyboardModifier.ShiftModifier and self._anchor is not None):
            self._anchor = position
        self.select(self._anchor, position)

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if not event.buttons() & Qt.MouseButton.LeftButton or self._anchor is None:
            return super().mouseMoveEvent(event)
        point = event.position().toPoint()
        bar = self.verticalScrollBar()
        if point.y() < 0:  # dragging past an edge scrolls on
            bar.setValue(bar.value() - 1)
        elif point.y() > self.viewport().height():
            bar.setValue(bar.value() + 1)
        self.select(self._anchor, self._position_at(point))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """On X11 a selection is also the primary selection (a middle click pastes it)."""
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mouseReleaseEvent(event)
        clipboard = QGuiApplication.clipboard()
        if clipboard.supportsSelection() and (text := self.selected_text()):
            clipboard.setText(text, QClipboard.Mode.Selection)

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """A double-click selects the whole line (a log's unit), not a word."""
        line, _ = self._position_at(event.position().toPoint())
        if self._lines:
            self.select((line, 0), (line, len(self._lines[line])))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy()
        elif event.matches(QKeySequence.StandardKey.SelectAll):
            self.select_all()
        elif event.key() in (Qt.Key.Key_Home, Qt.Key.Key_End) and event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.verticalScrollBar().setValue(0 if event.key() == Qt.Key.Key_Home else self.verticalScrollBar().maximum())
        elif event.key() == Qt.Key.Key_Home:
            self.horizontalScrollBar().setValue(0)
        elif event.key() == Qt.Key.Key_End:
            self.horizontalScrollBar().setValue(self.horizontalScrollBar().maximum())
        else:
            super().keyPressEvent(event)  # arrows and page keys move the scroll bars

    def contextMenuEvent(self, event: QContextMenuEvent) -> None:
        menu = QMenu(self)
        copy = menu.addAction("&Copy", self.copy)
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.setEnabled(self.selection() is not None)
        select_all = menu.addAction("Select &all", self.select_all)
        select_all.setShortcut(QKeySequence.StandardKey.SelectAll)
        menu.exec(event.globalPos())


def line_kind(text: str) -> str:
    """"error" for an error line, "push" for a push line, else "text" (runlogs' format)."""
    if "!] " in text[:22]:
        return "error"
    if "[push] " in text[:18]:
        return "push"
    return "text"
