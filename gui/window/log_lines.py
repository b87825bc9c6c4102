"""A read-only view of many log lines that costs only the lines in sight.

QPlainTextEdit keeps its text in a QTextDocument: each appended line costs about
25 µs of the GUI thread (inserted as a block, laid out, shaped), so an image
printing 2,000 lines a second took 5 ms of every 100 ms batch, and the window's
heartbeat ran late while it streamed (the window bench: p99 26 ms with the log
view, 13 ms without). Here lines are a Python list; appending costs a list
extend, and a paint draws the thirty or so lines on screen, and of a long line
only the part in sight (in a fixed-pitch font, the log's, for plain ASCII lines).

What a user does with a log still works: scroll (wheel, keys, bars, Space),
zoom (Ctrl+wheel), select with the mouse (across lines, to the character;
dragging past an edge scrolls on), copy (Ctrl+C, the context menu, X11's primary
selection), select all, find (the match is selected and scrolled to), follow the
end while it is at the end. Lines keep their tabs (what is copied is what the log
has); tabs show as stops every 8 columns. Error lines take the palette's error
colour, push lines its success colour. Screen readers get the view's name, its
line count and the selected text; the whole log is one click away in the
system's editor ("Open log file").
"""

from __future__ import annotations

import math
import re

from PySide6.QtCore import QEvent, QPoint, QPointF, QRect, QRectF, Qt, QTimer
from PySide6.QtGui import (QClipboard, QColor, QContextMenuEvent, QFocusEvent, QFontDatabase, QFontInfo, QFontMetricsF,
                           QGuiApplication, QKeyEvent, QKeySequence, QMouseEvent, QPainter, QPaintEvent,
                           QResizeEvent, QWheelEvent)
from PySide6.QtWidgets import QAbstractScrollArea, QAbstractSlider, QMenu, QWidget

from . import theme

MARGIN = 4  # pixels left of the text
Position = tuple[int, int]  # (line, column), the column in the line's own text (tabs kept)


class LogLines(QAbstractScrollArea):
    """Lines, oldest first, at most `limit` of them (the oldest go first)."""

    def __init__(self, limit: int, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.limit = limit
        self._lines: list[str] = []
        self._widest = 0.0  # pixels, for the horizontal range; it does not shrink as old lines go
        self._cell = 0.0  # a character's width when the font is fixed-pitch, else 0
        self._anchor: Position | None = None  # the selection runs from the anchor to the caret
        self._caret: Position | None = None
        self._drag_at = QPoint()
        self._drag_timer = QTimer(self, interval=50, timeout=self._drag_step)
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        font.setKerning(False)  # every character one cell wide, as a terminal shows a log
        self.setFont(font)
        self._measure_font()  # (setFont told it already, unless the font was the same)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.viewport().setCursor(Qt.CursorShape.IBeamCursor)
        self.verticalScrollBar().setSingleStep(1)  # in lines; the wheel scrolls three

    # --- content ----------------------------------------------------------------------------------

    def set_lines(self, lines: list[str]) -> None:
        self._lines = list(lines[-self.limit:])
        self._widest = self._widest_of(self._lines)
        self._anchor = self._caret = None
        self._update_ranges()
        self.scroll_to_end()
        self.viewport().update()
        self._describe()

    def append(self, lines: list[str]) -> None:
        """New lines at the end; the view follows them if it was at the end."""
        if not lines:
            return
        bar = self.verticalScrollBar()
        following = self._at_end()
        self._lines.extend(lines)
        self._widest = max(self._widest, self._widest_of(lines))
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

    def _at_end(self) -> bool:
        """Whether the view shows the last line (and so follows new ones)."""
        return self.verticalScrollBar().value() >= self.verticalScrollBar().maximum()

    def scroll_to_end(self) -> None:
        self.verticalScrollBar().setValue(self.verticalScrollBar().maximum())

    def first_visible_line(self) -> int:
        return self.verticalScrollBar().value()

    def line_rect(self, number: int) -> QRect:
        """Where a line is in the viewport (it may be out of sight)."""
        height = self._line_height()
        return QRect(0, (number - self.first_visible_line()) * height, self.viewport().width(), height)

    def x_of(self, position: Position) -> float:
        """Where a character starts in the viewport."""
        return MARGIN - self.horizontalScrollBar().value() + self._text_x(*position)

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
        self._describe()

    def select_all(self) -> None:
        if self._lines:
            self.select((0, 0), (len(self._lines) - 1, len(self._lines[-1])))
            self._share_selection()

    def copy(self) -> None:
        if text := self.selected_text():
            QGuiApplication.clipboard().setText(text)

    def find(self, needle: str, backwards: bool = False) -> bool:
        """Select the next match of `needle` (any case) after the selection or the caret, or
        the one before, wrapping around once; scroll it into sight. With neither, from the
        lines in sight. False when the log has none (the selection stays)."""
        if not needle or not self._lines:
            return False
        pattern = re.compile(re.escape(needle), re.IGNORECASE)  # on the text itself: columns stay true
        count = len(self._lines)
        chosen = self.selection()
        top = self.first_visible_line()
        if backwards:  # the last match that starts before the selection's start
            bottom = min(count - 1, top + self._page() - 1)
            line, column = chosen[0] if chosen else self._caret or (bottom, len(self._lines[bottom]) + 1)
            for step in range(count + 1):
                number = (line - step) % count
                before = [match for match in pattern.finditer(self._lines[number])
                          if step > 0 or match.start() < column]
                if before:
                    return self._show_match(number, before[-1].start(), before[-1].end())
        else:  # the first match that starts at the selection's end or after
            line, column = chosen[1] if chosen else self._caret or (top, 0)
            for step in range(count + 1):
                number = (line + step) % count
                match = pattern.search(self._lines[number], column if step == 0 else 0)
                if match:
                    return self._show_match(number, match.start(), match.end())
        return False

    def _show_match(self, line: int, start: int, end: int) -> bool:
        self.select((line, start), (line, end))
        self._share_selection()
        bar = self.verticalScrollBar()
        if not bar.value() <= line < bar.value() + self._page():
            bar.setValue(line - self._page() // 2)
        left, right = self._text_x(line, start), self._text_x(line, end)
        across = self.horizontalScrollBar()
        if left < across.value() or right > across.value() + self.viewport().width() - 2 * MARGIN:
            across.setValue(max(0, left - self.viewport().width() // 3))
        return True

    def _shift_selection(self, removed: int) -> None:
        """The oldest `removed` lines went: the selection moves with its lines; a selection
        that started in them now starts at the first line; one that ended in them goes."""
        if self._anchor is None or self._caret is None:
            return
        if max(self._anchor, self._caret)[0] < removed:
            self._anchor = self._caret = None
        else:
            self._anchor, self._caret = ((line - removed, column) if line >= removed else (0, 0)
                                         for line, column in (self._anchor, self._caret))

    def _share_selection(self) -> None:
        """On X11 the selected text is also the primary selection (a middle click pastes it)."""
        clipboard = QGuiApplication.clipboard()
        if clipboard.supportsSelection() and (text := self.selected_text()):
            clipboard.setText(text, QClipboard.Mode.Selection)

    def _describe(self) -> None:
        """What a screen reader can say of a view that paints its lines itself."""
        chosen = self.selected_text()[:200]
        self.setAccessibleDescription(f"{len(self._lines):,} lines" + (f"; selected: {chosen}" if chosen else "")
                                      + "; Open log file shows them all in the system's editor")

    # --- geometry ---------------------------------------------------------------------------------

    def _line_height(self) -> int:
        return self.fontMetrics().lineSpacing()

    def _page(self) -> int:
        return max(1, self.viewport().height() // self._line_height())

    def _fast(self, text: str) -> bool:
        """Whether a shown line's geometry is plain arithmetic: a fixed-pitch font and
        printable ASCII (no wide or combining characters)."""
        return bool(self._cell) and text.isascii() and text.isprintable()

    def _x(self, text: str, column: int, fast: bool | None = None) -> float:
        """Pixels from a shown line's start to its column (`fast`: _fast(text), if known)."""
        if self._fast(text) if fast is None else fast:
            return column * self._cell
        return self._metrics.horizontalAdvance(text[:column])

    def _text_x(self, line: int, column: int) -> float:
        """Pixels from a line's start to a column of its text (tabs kept)."""
        text = self._lines[line]
        return self._x(_shown(text), _shown_column(text, column))

    def _widest_of(self, lines: list[str]) -> float:
        """The widest of `lines` in pixels: measured for the few that need it, counted for the rest."""
        longest = _shown(max(lines, key=len, default=""))
        widest = self._x(longest, len(longest))
        for text in lines:
            if not self._fast(text):  # a tab is not printable: tabbed lines are measured too
                shown = _shown(text)
                widest = max(widest, self._x(shown, len(shown)))
        return widest

    def _update_ranges(self) -> None:
        page = self._page()
        self.verticalScrollBar().setRange(0, max(0, len(self._lines) - page))
        self.verticalScrollBar().setPageStep(page)
        width = math.ceil(self._widest) + 2 * MARGIN
        self.horizontalScrollBar().setRange(0, max(0, width - self.viewport().width()))
        self.horizontalScrollBar().setPageStep(self.viewport().width())
        self.horizontalScrollBar().setSingleStep(self.fontMetrics().averageCharWidth() * 4)

    def _position_at(self, point: QPoint) -> Position:
        """The (line, column) under a point of the viewport, clamped to the text; below the
        last line, the end of the last line."""
        if not self._lines:
            return (0, 0)
        line = self.first_visible_line() + point.y() // self._line_height()
        if line >= len(self._lines):
            return (len(self._lines) - 1, len(self._lines[-1]))
        line = max(0, line)
        text = self._lines[line]
        shown = _shown(text)
        x = point.x() + self.horizontalScrollBar().value() - MARGIN
        if self._fast(shown):
            column = max(0, min(len(shown), round(x / self._cell)))
        else:
            low, high = 0, len(shown)  # the column whose left edge is nearest x, by bisection
            while low < high:
                middle = (low + high) // 2
                if (self._x(shown, middle, False) + self._x(shown, middle + 1, False)) / 2 < x:
                    low = middle + 1
                else:
                    high = middle
            column = low
        return (line, _text_column(text, column))

    # --- events -----------------------------------------------------------------------------------

    def changeEvent(self, event: QEvent) -> None:
        if event.type() == QEvent.Type.FontChange:
            following = self._at_end()
            self._measure_font()
            self._update_ranges()
            if following:
                self.scroll_to_end()
        super().changeEvent(event)

    def _measure_font(self) -> None:
        self._metrics = QFontMetricsF(self.font())
        self._cell = self._metrics.horizontalAdvance("x") if QFontInfo(self.font()).fixedPitch() else 0.0
        self._widest = self._widest_of(self._lines)

    def resizeEvent(self, event: QResizeEvent) -> None:
        following = self._at_end()
        super().resizeEvent(event)
        self._update_ranges()
        if following:
            self.scroll_to_end()

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        self.viewport().update()

    def focusInEvent(self, event: QFocusEvent) -> None:
        self._describe()  # the line count as it is now, not at the last selection
        super().focusInEvent(event)

    def _colours(self) -> dict[str, QColor]:
        palette = self.palette()  # read at each paint: a change of colour scheme shows at once
        return {"error": theme.error_text(palette), "push": theme.success_text(palette),
                "text": palette.color(palette.ColorRole.Text)}

    def line_colour(self, number: int) -> QColor:
        """The colour a line is painted in."""
        return self._colours()[line_kind(self._lines[number])]

    def paintEvent(self, event: QPaintEvent) -> None:
        height, ascent = self._line_height(), self.fontMetrics().ascent()
        top_line = self.first_visible_line()
        first = top_line + event.rect().top() // height
        last = min(len(self._lines), top_line + event.rect().bottom() // height + 1)
        scrolled = self.horizontalScrollBar().value()
        colours = self._colours()
        chosen = self.selection()
        highlight = self.palette().color(self.palette().ColorRole.Highlight)
        on_highlight = self.palette().color(self.palette().ColorRole.HighlightedText)
        with QPainter(self.viewport()) as painter:
            pen = None
            for number in range(first, last):
                text = self._lines[number]
                shown = _shown(text)
                y = (number - top_line) * height
                colour = colours[line_kind(text)]
                if colour is not pen:  # a pen change only where the colour changes
                    painter.setPen(colour)
                    pen = colour
                fast = self._fast(shown)  # once a line: on a 1 MB line it is a scan
                self._draw(painter, shown, fast, 0, len(shown), y + ascent, scrolled)
                if chosen and chosen[0][0] <= number <= chosen[1][0]:
                    start = _shown_column(text, chosen[0][1]) if number == chosen[0][0] else 0
                    end = _shown_column(text, chosen[1][1]) if number == chosen[1][0] else len(shown)
                    left = self._x(shown, start, fast)
                    x = MARGIN - scrolled + left
                    span = self._x(shown, end, fast) - left
                    if number != chosen[1][0]:
                        span = max(span, self.viewport().width() - x)  # the line break selected too
                    painter.fillRect(QRectF(x, y, span, height), highlight)
                    painter.setPen(on_highlight)
                    pen = None
                    self._draw(painter, shown, fast, start, end, y + ascent, scrolled)

    def _draw(self, painter: QPainter, shown: str, fast: bool, start: int, end: int, baseline: int,
              scrolled: int) -> None:
        """Columns start..end of a shown line; of a long one, only what is in sight."""
        if fast:
            start = max(start, int((scrolled - MARGIN) // self._cell))
            end = min(end, start + int(self.viewport().width() // self._cell) + 2)
            if start >= end:
                return
        painter.drawText(QPointF(MARGIN - scrolled + self._x(shown, start, fast), baseline), shown[start:end])

    def wheelEvent(self, event: QWheelEvent) -> None:
        """Ctrl+wheel zooms, as in Qt's text views; the wheel alone scrolls."""
        if not event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            return super().wheelEvent(event)
        notches = event.angleDelta().y() / 120  # a touchpad sends fractions of a notch
        if not notches:
            return
        font = self.font()
        size = font.pointSizeF() if font.pointSizeF() > 0 else QFontInfo(font).pointSizeF()  # (a font set in pixels)
        font.setPointSizeF(max(6.0, min(48.0, size + notches)))
        self.setFont(font)

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
        self._drag_at = event.position().toPoint()
        if self.viewport().rect().contains(self._drag_at):
            self._drag_timer.stop()
        elif not self._drag_timer.isActive():
            self._drag_timer.start()  # past an edge: scroll on while the button is held
        self.select(self._anchor, self._position_at(self._drag_at))

    def _drag_step(self) -> None:
        if not QGuiApplication.mouseButtons() & Qt.MouseButton.LeftButton or self._anchor is None:
            self._drag_timer.stop()
            return
        point, port = self._drag_at, self.viewport().rect()
        down, across = self.verticalScrollBar(), self.horizontalScrollBar()
        if point.y() < port.top():
            down.setValue(down.value() - 1 - (port.top() - point.y()) // self._line_height())
        elif point.y() > port.bottom():
            down.setValue(down.value() + 1 + (point.y() - port.bottom()) // self._line_height())
        if point.x() < port.left():
            across.setValue(across.value() - across.singleStep())
        elif point.x() > port.right():
            across.setValue(across.value() + across.singleStep())
        self.select(self._anchor, self._position_at(point))

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            return super().mouseReleaseEvent(event)
        self._drag_timer.stop()
        self._share_selection()

    def mouseDoubleClickEvent(self, event: QMouseEvent) -> None:
        """A double-click selects the whole line (a log's unit), not a word."""
        if event.button() != Qt.MouseButton.LeftButton or not self._lines:
            return  # taken, and nothing done
        line, _ = self._position_at(event.position().toPoint())
        self.select((line, 0), (line, len(self._lines[line])))
        self._share_selection()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        down = self.verticalScrollBar()
        if event.matches(QKeySequence.StandardKey.Copy):
            self.copy()
        elif event.matches(QKeySequence.StandardKey.SelectAll):
            self.select_all()
        elif event.key() in (Qt.Key.Key_Home, Qt.Key.Key_End):  # the first line, the last (following again)
            down.setValue(0 if event.key() == Qt.Key.Key_Home else down.maximum())
        elif event.key() == Qt.Key.Key_Space and not event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier:
            back = event.modifiers() & Qt.KeyboardModifier.ShiftModifier  # as in a pager: Space on, Shift+Space back
            down.triggerAction(QAbstractSlider.SliderAction.SliderPageStepSub if back
                               else QAbstractSlider.SliderAction.SliderPageStepAdd)
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
        menu.deleteLater()


def line_kind(text: str) -> str:
    """"error" for an error line, "push" for a push line, else "text" (runlogs' format)."""
    if "!] " in text[:22]:
        return "error"
    if "[push] " in text[:18]:
        return "push"
    return "text"


def _shown(text: str) -> str:
    """A line as it is drawn: tabs as spaces to the next stop of 8."""
    return text.expandtabs() if "\t" in text else text


def _shown_column(text: str, column: int) -> int:
    """A column of a line's text as a column of the line drawn."""
    return len(text[:column].expandtabs()) if "\t" in text else min(column, len(text))


def _text_column(text: str, shown_column: int) -> int:
    """The column of a line's text nearest a column of the line drawn (inside a tab: the
    nearer of its two edges)."""
    if "\t" not in text:
        return min(shown_column, len(text))
    reach = 0
    for column, character in enumerate(text):
        after = (reach // 8 + 1) * 8 if character == "\t" else reach + 1
        if shown_column < after:
            return column if shown_column - reach <= after - shown_column else column + 1
        reach = after
    return len(text)
