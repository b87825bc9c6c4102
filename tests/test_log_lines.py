"""The log view's line display, driven as a user drives it: mouse, keys, find, following."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QGuiApplication, QMouseEvent
from PySide6.QtWidgets import QApplication

from gui.pipeline.runlogs import format_line
from gui.window import theme
from gui.window.log_lines import MARGIN, LogLines


@pytest.fixture
def view(qtbot) -> LogLines:
    lines = LogLines(limit=100)
    lines.resize(400, 200)
    qtbot.addWidget(lines)
    lines.show()
    qtbot.waitExposed(lines)
    return lines


def at(view: LogLines, line: int, column: int) -> QPoint:
    """Where a character starts on screen, half a line down."""
    text = view.line(line)
    x = MARGIN + view.fontMetrics().horizontalAdvance(text[:column]) - view.horizontalScrollBar().value()
    y = (line - view.first_visible_line()) * view.fontMetrics().lineSpacing() + view.fontMetrics().lineSpacing() // 2
    return QPoint(x, y)


def drag(view: LogLines, start: QPoint, end: QPoint) -> None:
    port = view.viewport()
    for kind, point, buttons in ((QEvent.Type.MouseButtonPress, start, Qt.MouseButton.LeftButton),
                                 (QEvent.Type.MouseMove, end, Qt.MouseButton.LeftButton),
                                 (QEvent.Type.MouseButtonRelease, end, Qt.MouseButton.NoButton)):
        button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
        QApplication.sendEvent(port, QMouseEvent(kind, QPointF(point), QPointF(port.mapToGlobal(point)), button,
                                                 buttons, Qt.KeyboardModifier.NoModifier))


def test_a_drag_selects_to_the_character_across_lines_and_ctrl_c_copies_it(qtbot, view) -> None:
    view.set_lines(["alpha one", "beta two", "gamma three"])
    drag(view, at(view, 0, 6), at(view, 2, 5))
    assert view.selected_text() == "one\nbeta two\ngamma"
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "one\nbeta two\ngamma"
    # Shift+click moves the end of the selection; a double-click takes the whole line.
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, at(view, 1, 4))
    assert view.selected_text() == "one\nbeta"
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=at(view, 1, 2))
    assert view.selected_text() == "beta two"
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert view.selected_text() == "alpha one\nbeta two\ngamma three"


def test_the_selection_is_painted_in_the_palettes_highlight(qtbot, view) -> None:
    view.set_lines(["x" * 30, "y" * 30])
    image = view.viewport().grab().toImage()
    point = at(view, 0, 3)
    assert image.pixelColor(point) != view.palette().color(view.palette().ColorRole.Highlight)
    drag(view, at(view, 0, 0), at(view, 0, 10))
    image = view.viewport().grab().toImage()
    highlight = view.palette().color(view.palette().ColorRole.Highlight)
    row = [image.pixelColor(x, point.y()) for x in range(at(view, 0, 0).x(), at(view, 0, 10).x())]
    assert row.count(highlight) > len(row) // 2


def test_find_goes_to_the_next_match_and_wraps_around(qtbot, view) -> None:
    lines = [f"line {n}" for n in range(100)]
    lines[10] += " Needle"
    lines[90] += " needle again"
    view.set_lines(lines)
    view.verticalScrollBar().setValue(0)
    assert view.find("NEEDLE")  # case does not matter
    assert view.selection() == ((10, 8), (10, 14))
    assert view.find("needle") and view.selection()[0] == (90, 8)
    assert view.first_visible_line() <= 90 < view.first_visible_line() + 200 // view.fontMetrics().lineSpacing()
    assert view.find("needle") and view.selection()[0] == (10, 8)  # wrapped around
    assert view.find("needle", backwards=True) and view.selection()[0] == (90, 8)  # wrapped back
    assert view.find("needle", backwards=True) and view.selection()[0] == (10, 8)
    assert not view.find("haystack")
    assert view.selection()[0] == (10, 8), "a failed search keeps the selection"


def test_the_view_follows_the_end_only_while_it_is_at_the_end(qtbot, view) -> None:
    view.append([f"line {n}" for n in range(50)])
    bar = view.verticalScrollBar()
    assert bar.value() == bar.maximum() > 0
    view.append([f"line {n}" for n in range(50, 60)])
    assert bar.value() == bar.maximum() and view.line(view.line_count() - 1) == "line 59"
    bar.setValue(20)  # the user scrolled up to read: new lines must not move what is read
    view.append([f"line {n}" for n in range(60, 70)])
    assert view.line(view.first_visible_line()) == "line 20"
    qtbot.keyClick(view, Qt.Key.Key_End, Qt.KeyboardModifier.ControlModifier)
    assert bar.value() == bar.maximum()
    qtbot.keyClick(view, Qt.Key.Key_Home, Qt.KeyboardModifier.ControlModifier)
    assert view.line(view.first_visible_line()) == "line 0"


def test_at_the_limit_the_oldest_lines_go_and_what_is_read_stays_in_sight(qtbot, view) -> None:
    view.append([f"line {n}" for n in range(100)])
    view.verticalScrollBar().setValue(40)
    view.select((45, 0), (45, 7))
    view.append([f"line {n}" for n in range(100, 120)])
    assert view.line_count() == 100 and view.line(0) == "line 20"
    assert view.line(view.first_visible_line()) == "line 40"
    assert view.selected_text() == "line 45", "the selection moves with its line"
    view.select((5, 0), (5, 7))
    view.append([f"line {n}" for n in range(120, 130)])
    assert view.selection() is None, "the selected line went: so does the selection"


def test_error_and_push_lines_take_the_palettes_colours(qtbot, view) -> None:
    view.set_lines([format_line("build", "it broke", error=True), format_line("push", "pushed", error=False),
                    format_line("build", "step", error=False)])
    palette = view.palette()
    assert view.line_colour(0) == theme.error_text(palette)
    assert view.line_colour(1) == theme.success_text(palette)
    assert view.line_colour(2) == palette.color(palette.ColorRole.Text)


def test_tabs_are_expanded_and_long_lines_scroll_sideways(qtbot, view) -> None:
    view.set_lines(["a\tb", "x" * 500])
    assert view.line(0) == "a       b"
    across = view.horizontalScrollBar()
    assert across.maximum() > 0
    drag(view, at(view, 1, 0), at(view, 1, 3))
    assert view.find("x" * 3) and view.selected_text() == "xxx"
    qtbot.keyClick(view, Qt.Key.Key_End)
    assert across.value() == across.maximum()
