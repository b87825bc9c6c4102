"""The log view's line display, driven as a user drives it (mouse, keys, wheel, find,
following), and checked on the pixels it paints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt, QTimer
from PySide6.QtGui import (QClipboard, QContextMenuEvent, QFont, QFontMetricsF, QGuiApplication, QImage,
                           QMouseEvent, QWheelEvent)
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from gui.pipeline.runlogs import format_line
from gui.window import theme
from gui.window.log_lines import LogLines


@pytest.fixture
def view(qtbot) -> LogLines:
    lines = LogLines(limit=100)
    font = lines.font()
    font.setStyleStrategy(QFont.StyleStrategy.NoAntialias)  # glyphs in their exact colour, on every platform
    lines.setFont(font)
    lines.resize(400, 200)
    qtbot.addWidget(lines)
    lines.show()
    qtbot.waitExposed(lines)
    return lines


def at(view: LogLines, line: int, column: int) -> QPoint:
    """Where a character starts on screen, half a line down."""
    return QPoint(round(view.x_of((line, column))), view.line_rect(line).center().y())


def mouse(view: LogLines, kind: QEvent.Type, point: QPoint, held: bool) -> None:
    port = view.viewport()
    button = Qt.MouseButton.NoButton if kind == QEvent.Type.MouseMove else Qt.MouseButton.LeftButton
    buttons = Qt.MouseButton.LeftButton if held else Qt.MouseButton.NoButton
    QApplication.sendEvent(port, QMouseEvent(kind, QPointF(point), QPointF(port.mapToGlobal(point)), button, buttons,
                                             Qt.KeyboardModifier.NoModifier))


def drag(view: LogLines, start: QPoint, end: QPoint) -> None:
    mouse(view, QEvent.Type.MouseButtonPress, start, True)
    mouse(view, QEvent.Type.MouseMove, end, True)
    mouse(view, QEvent.Type.MouseButtonRelease, end, False)


def rendered(view: LogLines) -> QImage:
    """The viewport as painted, one pixel per logical pixel whatever the screen's scale."""
    image = QImage(view.viewport().size(), QImage.Format.Format_RGB32)
    view.viewport().render(image)
    return image


def painted(view: LogLines, line: int) -> set[str]:
    """The colours of the pixels painted in a line's row, as names."""
    image = rendered(view)
    rect = view.line_rect(line).intersected(image.rect())
    return {image.pixelColor(x, y).name() for y in range(rect.top(), rect.bottom() + 1)
            for x in range(rect.left(), rect.right() + 1)}


def test_a_drag_selects_to_the_character_across_lines_and_ctrl_c_copies_it(qtbot, view) -> None:
    view.set_lines(["alpha one", "beta two", "gamma three"])
    drag(view, at(view, 0, 6), at(view, 2, 5))
    assert view.selected_text() == "one\nbeta two\ngamma"
    QGuiApplication.clipboard().clear()
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "one\nbeta two\ngamma"
    if os.environ.get("EXPECT_PRIMARY_SELECTION"):  # set by the run on a real X server below
        assert QGuiApplication.clipboard().supportsSelection()
    if QGuiApplication.clipboard().supportsSelection():  # X11: a middle click pastes it
        assert QGuiApplication.clipboard().text(QClipboard.Mode.Selection) == "one\nbeta two\ngamma"
    # Shift+click moves the end of the selection; a double-click takes the whole line; a
    # click below the last line is its end.
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier, at(view, 1, 4))
    assert view.selected_text() == "one\nbeta"
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=at(view, 1, 2))
    assert view.selected_text() == "beta two"
    qtbot.mouseDClick(view.viewport(), Qt.MouseButton.RightButton, pos=at(view, 0, 2))
    assert view.selected_text() == "beta two", "a right double-click selects nothing"
    drag(view, at(view, 1, 0), QPoint(5, view.viewport().height() - 3))
    assert view.selected_text() == "beta two\ngamma three"
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    assert view.selected_text() == "alpha one\nbeta two\ngamma three"


def test_each_line_is_painted_in_its_colour_and_the_selection_in_the_highlight(qtbot, view) -> None:
    view.set_lines([format_line("build", "step one", error=False), format_line("build", "it broke", error=True),
                    format_line("push", "pushed", error=False), "x" * 30])
    palette = view.palette()
    for line, colour in ((0, palette.color(palette.ColorRole.Text)), (1, theme.error_text(palette)),
                         (2, theme.success_text(palette)), (3, palette.color(palette.ColorRole.Text))):
        assert colour.name() in painted(view, line), f"line {line} is not painted in {colour.name()}"
    highlight = palette.color(palette.ColorRole.Highlight).name()
    assert not any(highlight in painted(view, line) for line in range(4))
    drag(view, at(view, 0, 3), at(view, 2, 4))
    assert all(highlight in painted(view, line) for line in range(3)), "every selected line shows it"
    assert highlight not in painted(view, 3)


def test_the_last_line_can_be_reached_and_is_painted(qtbot, view) -> None:
    view.append([f"line {n}" for n in range(60)] + ["x" * 20])
    last = view.line_count() - 1
    assert view.verticalScrollBar().value() == view.verticalScrollBar().maximum()
    assert view.line_rect(last).bottom() < view.viewport().height(), "the last line is cut off at the end"
    text = view.palette().color(view.palette().ColorRole.Text).name()
    assert text in painted(view, last)
    # Scrolled up, the line cut by the bottom edge is painted as far as it shows.
    height = view.fontMetrics().lineSpacing()
    view.resize(400, view.height() - view.viewport().height() + 5 * height + height * 2 // 3)
    view.verticalScrollBar().setValue(0)
    assert view.line_rect(5).top() < view.viewport().height() < view.line_rect(5).bottom()
    assert text in painted(view, 5)


def test_find_goes_to_the_next_match_and_wraps_around(qtbot, view) -> None:
    lines = [f"line {n}" for n in range(100)]
    lines[10] += " Needle"
    lines[90] += " needle again"
    lines[95] = "İİİ then error here"  # "İ".lower() is two characters: columns must stay true
    view.set_lines(lines)
    view.verticalScrollBar().setValue(0)
    assert view.find("NEEDLE")  # case does not matter
    assert view.selection() == ((10, 8), (10, 14))
    assert view.find("needle") and view.selection()[0] == (90, 8)
    assert view.first_visible_line() <= 90 < view.first_visible_line() + view.viewport().height() // view.fontMetrics().lineSpacing()
    assert view.find("needle") and view.selection()[0] == (10, 8)  # wrapped around
    assert view.find("needle", backwards=True) and view.selection()[0] == (90, 8)  # wrapped back
    assert view.find("needle", backwards=True) and view.selection()[0] == (10, 8)
    assert not view.find("haystack")
    assert view.selection()[0] == (10, 8), "a failed search keeps the selection"
    assert view.find("error") and view.selected_text() == "error"
    # One line with two matches: on from the second wraps to the first.
    view.set_lines(["needle, hay, needle"])
    assert view.find("needle") and view.find("needle") and view.selection() == ((0, 13), (0, 19))
    assert view.find("needle") and view.selection() == ((0, 0), (0, 6))
    assert view.find("needle", backwards=True) and view.selection() == ((0, 13), (0, 19))
    # After a click, the search starts from the caret.
    view.set_lines(["needle 1", "hay", "needle 2"])
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=at(view, 1, 0))
    assert view.find("needle") and view.selection()[0] == (2, 0)


def test_a_match_far_along_a_long_line_is_scrolled_into_sight(qtbot, view) -> None:
    view.set_lines(["x" * 400 + "needle"])
    across = view.horizontalScrollBar()
    assert across.value() == 0
    assert view.find("needle")
    assert 0 <= view.x_of((0, 400)) < view.viewport().width()
    assert across.value() > 0


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
    qtbot.keyClick(view, Qt.Key.Key_End)  # End alone too, as in a read-only text view: back to following
    assert bar.value() == bar.maximum()
    qtbot.keyClick(view, Qt.Key.Key_Home)
    assert bar.value() == 0
    qtbot.keyClick(view, Qt.Key.Key_Space, Qt.KeyboardModifier.ControlModifier)
    assert bar.value() == 0, "Ctrl+Space (an input method's key) does not page"
    qtbot.keyClick(view, Qt.Key.Key_Space)
    assert view.first_visible_line() == bar.pageStep() > 1
    qtbot.keyClick(view, Qt.Key.Key_Space, Qt.KeyboardModifier.ShiftModifier)
    assert view.first_visible_line() == 0


def test_a_resize_or_a_zoom_keeps_following_the_end(qtbot, view) -> None:
    view.append([f"line {n}" for n in range(80)])
    bar = view.verticalScrollBar()
    view.resize(400, 120)
    QApplication.processEvents()
    assert bar.value() == bar.maximum()
    size = view.font().pointSizeF()
    port = view.viewport()

    def wheel(x: int, y: int) -> None:
        centre = QPointF(port.rect().center())
        QApplication.sendEvent(port, QWheelEvent(centre, QPointF(port.mapToGlobal(centre.toPoint())), QPoint(),
                                                 QPoint(x, y), Qt.MouseButton.NoButton,
                                                 Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase,
                                                 False))

    wheel(0, 120)  # one notch of a wheel
    assert view.font().pointSizeF() == pytest.approx(size + 1), "Ctrl+wheel zooms"
    for _ in range(8):
        wheel(0, 15)  # a touchpad: eight eighths of a notch
    assert view.font().pointSizeF() == pytest.approx(size + 2, abs=0.15)
    wheel(120, 0)  # sideways: no zoom
    assert view.font().pointSizeF() == pytest.approx(size + 2, abs=0.15)
    assert bar.value() == bar.maximum()
    view.append(["one more"])
    assert bar.value() == bar.maximum() and view.line_rect(view.line_count() - 1).bottom() < port.height()


def test_at_the_limit_the_oldest_lines_go_and_what_is_read_stays_in_sight(qtbot, view) -> None:
    view.append([f"line {n}" for n in range(100)])
    view.verticalScrollBar().setValue(40)
    view.select((45, 0), (45, 7))
    view.append([f"line {n}" for n in range(100, 120)])
    assert view.line_count() == 100 and view.line(0) == "line 20"
    assert view.line(view.first_visible_line()) == "line 40"
    assert view.selected_text() == "line 45", "the selection moves with its line"
    qtbot.keyClick(view, Qt.Key.Key_A, Qt.KeyboardModifier.ControlModifier)
    view.append(["line 120"])  # Select all, then Copy while the log streams: what is left of it
    assert view.selected_text().startswith("line 21\n") and view.selected_text().endswith("\nline 119")
    view.select((5, 0), (5, 7))
    view.append([f"line {n}" for n in range(121, 131)])
    assert view.selection() is None, "the selected line went: so does the selection"


def test_what_is_hit_and_highlighted_is_where_the_glyph_is_painted(qtbot, view) -> None:
    """A fixed-pitch glyph is 7.22 px wide at 9 pt, not 7: columns counted in whole pixels
    drift a character every 4 or 5 (the 51st character was drawn 11 px right of where a
    click hit it)."""
    view.set_lines([" " * 50 + "#", "#" * 51])
    image = view.viewport().grab().toImage()
    row = view.line_rect(0)
    background = image.pixelColor(1, row.center().y())
    inked = [x for x in range(image.width()) for y in range(row.top(), row.bottom() + 1)
             if image.pixelColor(x, y) != background]
    cell = view.x_of((1, 1)) - view.x_of((1, 0))
    assert abs(min(inked) - view.x_of((0, 50))) < cell / 2, (min(inked), view.x_of((0, 50)))
    drag(view, at(view, 1, 0), at(view, 1, 50))
    assert view.selected_text() == "#" * 50


def test_tabs_are_kept_in_the_text_and_shown_as_stops(qtbot, view) -> None:
    view.set_lines(["a\tb\tc", "x" * 500])
    assert view.line(0) == "a\tb\tc"
    assert view.x_of((0, 2)) - view.x_of((0, 0)) == view.x_of((1, 8)) - view.x_of((1, 0)), "b is at column 8"
    drag(view, at(view, 0, 0), at(view, 0, 3))
    assert view.selected_text() == "a\tb"
    qtbot.keyClick(view, Qt.Key.Key_C, Qt.KeyboardModifier.ControlModifier)
    assert QGuiApplication.clipboard().text() == "a\tb"
    assert view.find("b\tc") and view.selection() == ((0, 2), (0, 5))


@pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen: no raise, no keyboard grab
def test_the_context_menu_copies_and_leaves_nothing_behind(qtbot, view) -> None:
    view.set_lines(["alpha", "beta"])
    view.select((0, 0), (0, 5))
    shown: list[list[str]] = []

    def pick_copy() -> None:
        menu = view.findChild(QMenu)
        try:
            shown.append([action.text() for action in menu.actions()])
            next(action for action in menu.actions() if action.text() == "&Copy").trigger()
        finally:
            if menu is not None:
                menu.close()

    QGuiApplication.clipboard().clear()
    QTimer.singleShot(100, pick_copy)
    point = at(view, 0, 1)  # a right click's menu event, as the platform sends it
    QApplication.sendEvent(view.viewport(), QContextMenuEvent(QContextMenuEvent.Reason.Mouse, point,
                                                              view.viewport().mapToGlobal(point)))
    assert shown == [["&Copy", "Select &all"]]
    assert QGuiApplication.clipboard().text() == "alpha"
    qtbot.waitUntil(lambda: not view.findChildren(QMenu), timeout=2000)


def test_the_accessible_description_names_the_lines_and_the_selection(qtbot, view) -> None:
    view.set_lines(["alpha", "beta"])
    assert view.accessibleDescription().startswith("2 lines")
    view.select((1, 0), (1, 4))
    assert "selected: beta" in view.accessibleDescription()


def test_columns_are_measured_as_the_font_lays_them_out(qtbot, view) -> None:
    """On any platform and at any size: 500 characters are as wide as the font says."""
    view.set_lines(["#" * 500])
    for size in (7, 9, 10, 13):
        font = view.font()
        font.setPointSizeF(size)
        view.setFont(font)
        assert view.x_of((0, 500)) - view.x_of((0, 0)) == pytest.approx(
            QFontMetricsF(view.font()).horizontalAdvance("#" * 500), abs=0.5)


def test_a_tab_moves_what_follows_to_the_next_stop_on_screen(qtbot, view) -> None:
    view.set_lines(["\t#"])
    image = rendered(view)
    row = view.line_rect(0)
    background = image.pixelColor(1, row.center().y())
    inked = [x for x in range(image.width()) for y in range(row.top(), row.bottom() + 1)
             if image.pixelColor(x, y) != background]
    cell = QFontMetricsF(view.font()).horizontalAdvance("#")
    assert abs(min(inked) - view.x_of((0, 1))) < cell / 2 and view.x_of((0, 1)) - view.x_of((0, 0)) == \
        pytest.approx(8 * cell)


def test_a_selected_short_line_shows_selected_while_scrolled_sideways(qtbot, view) -> None:
    view.set_lines(["first", "", "x" * 600])
    view.select((0, 2), (2, 3))
    view.horizontalScrollBar().setValue(1000)
    highlight = view.palette().color(view.palette().ColorRole.Highlight).name()
    assert highlight in painted(view, 0) and highlight in painted(view, 1), "its line break is selected"
    assert highlight not in painted(view, 2)


def test_dragging_past_the_bottom_edge_scrolls_on_while_the_button_is_held(qtbot, view) -> None:
    view.set_lines([f"line {n}" for n in range(100)])
    view.verticalScrollBar().setValue(0)
    port = view.viewport()
    QTest.mousePress(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, at(view, 0, 0))
    below = QPoint(10, port.height() + 20)
    QApplication.sendEvent(port, QMouseEvent(QEvent.Type.MouseMove, QPointF(below), QPointF(port.mapToGlobal(below)),
                                             Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton,
                                             Qt.KeyboardModifier.NoModifier))
    qtbot.waitUntil(lambda: view.first_visible_line() > 10, timeout=3000)  # no further mouse move
    QTest.mouseRelease(port, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, below)
    reached = view.first_visible_line()
    qtbot.wait(200)
    assert view.first_visible_line() == reached, "released: the scrolling stops"
    assert view.selection()[0] == (0, 0) and view.selection()[1][0] >= reached


def test_the_same_on_a_real_x_server() -> None:
    """Offscreen has no primary selection and renders text its own way: these tests run
    once more on Qt's xcb platform under Xvfb, as on a Linux desktop."""
    result = subprocess.run(
        ["xvfb-run", "-a", sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__,
         "-k", "not real_x_server"],
        env={**os.environ, "QT_QPA_PLATFORM": "xcb", "EXPECT_PRIMARY_SELECTION": "1"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
