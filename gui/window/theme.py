"""Colours derived from the current palette, so light and dark schemes both read well.

Nothing in the window hard-codes a colour: each one here starts from the palette
Qt chose for the system's colour scheme (Qt 6 follows the system's light/dark
setting and signals changes), and only its hue is Dockpool's.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def _blend(base: QColor, tint: QColor, amount: float) -> QColor:
    return QColor(round(base.red() * (1 - amount) + tint.red() * amount),
                  round(base.green() * (1 - amount) + tint.green() * amount),
                  round(base.blue() * (1 - amount) + tint.blue() * amount))


def error_text(palette: QPalette) -> QColor:
    return QColor("#ff7b72") if is_dark(palette) else QColor("#b00020")


def success_text(palette: QPalette) -> QColor:
    return QColor("#7ee787") if is_dark(palette) else QColor("#1b5e20")


def invalid_background(palette: QPalette) -> QColor:
    """Rows that cannot run: the table's own background, tinted red."""
    return _blend(palette.color(QPalette.ColorRole.Base), QColor("#e53935"), 0.22 if is_dark(palette) else 0.14)


def notice_background(palette: QPalette) -> QColor:
    """The banner: the window's background, tinted amber."""
    return _blend(palette.color(QPalette.ColorRole.Window), QColor("#f0b400"), 0.25 if is_dark(palette) else 0.2)


def stage_colours(palette: QPalette) -> dict[str, QColor]:
    """Timeline bars: build, push, failed, and the wait for a pusher."""
    dark = is_dark(palette)
    return {"build": QColor("#5b9bd5" if dark else "#3a7bc8"), "push": QColor("#5cb85c" if dark else "#3c9a3c"),
            "failed": QColor("#e5534b" if dark else "#d32f2f"), "wait": palette.color(QPalette.ColorRole.Mid)}
