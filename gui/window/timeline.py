"""A timeline of the run: each image's build and push drawn as bars along time.

It shows at a glance where the pipeline waits (gaps between an image's build and
its push are time spent waiting for a pusher slot) and how the push limit shapes
the run. It scrolls (TimelineArea) so a hundred images stay readable, takes its
colours from the palette and its row height from the font (high-DPI screens).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QScrollArea, QWidget

from ..pipeline import events as ev
from . import theme
from .image_model import ImageTableModel


class TimelineView(QWidget):
    def __init__(self, model: ImageTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        for signal in (model.modelReset, model.rowsInserted, model.rowsRemoved):
            signal.connect(self._resized)
        model.dataChanged.connect(lambda *_: self.update())  # same rows: a repaint, no new size

    @property
    def row_height(self) -> int:
        return self.fontMetrics().height() + 4

    @property
    def label_width(self) -> int:
        return self.fontMetrics().averageCharWidth() * 22

    def _resized(self, *_: object) -> None:
        self.updateGeometry()
        self.adjustSize()
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(600, self.row_height * (max(3, self._model.rowCount()) + 1) + 4)

    def minimumSizeHint(self) -> QSize:
        return self.sizeHint()

    def _span(self) -> tuple[float, float] | None:
        starts, ends = [], []
        for row in range(self._model.rowCount()):
            state = self._model.state(row)
            for start, end in ((state.build_start, state.build_end), (state.push_start, state.push_end)):
                if start:
                    starts.append(start)
                    ends.append(end or time.time())
        if not starts:
            return None
        return min(starts), max(max(ends), min(starts) + 1.0)

    def paintEvent(self, _event: object) -> None:
        painter = QPainter(self)
        palette = self.palette()
        painter.fillRect(self.rect(), palette.base())
        span = self._span()
        if span is None:
            painter.setPen(palette.placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                             "The timeline fills in when a run starts: blue = build, green = push, "
                             "grey = waiting for a pusher")
            return
        colours = theme.stage_colours(palette)
        first, last = span
        height, labels = self.row_height, self.label_width
        width = max(1.0, self.width() - labels - 10)
        scale = width / (last - first)
        self._draw_axis(painter, first, last, scale)
        now = time.time()
        for row in range(self._model.rowCount()):
            state = self._model.state(row)
            top = height * (row + 1)
            painter.setPen(palette.text().color())
            painter.drawText(QRectF(4, top, labels - 8, height), Qt.AlignmentFlag.AlignVCenter,
                             self.fontMetrics().elidedText(self._model.image(row).name,
                                                           Qt.TextElideMode.ElideMiddle, labels - 8))

            def bar(start: float | None, end: float | None, colour: QColor) -> None:
                if not start:
                    return
                x = labels + (start - first) * scale
                w = max(2.0, ((end or now) - start) * scale)
                painter.fillRect(QRectF(x, top + 2, w, height - 4), colour)

            failed = state.status is ev.Status.FAILED
            if state.build_end and state.push_start:
                bar(state.build_end, state.push_start, colours["wait"])
            elif state.build_end and state.status is ev.Status.BUILT_WAITING:
                bar(state.build_end, None, colours["wait"])
            bar(state.build_start, state.build_end,
                colours["failed"] if failed and state.failed_stage is ev.Stage.BUILD else colours["build"])
            bar(state.push_start, state.push_end,
                colours["failed"] if failed and state.failed_stage is ev.Stage.PUSH else colours["push"])

    def _draw_axis(self, painter: QPainter, first: float, last: float, scale: float) -> None:
        painter.setPen(QPen(self.palette().mid().color()))
        total = last - first
        step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 1e9) if total / s <= 10)
        tick = 0.0
        while tick <= total:
            x = self.label_width + tick * scale
            painter.drawLine(int(x), self.row_height - 4, int(x), self.height())
            label = f"{int(tick)}s" if tick < 60 else f"{int(tick) // 60}m{int(tick) % 60:02d}"
            painter.drawText(int(x) + 2, self.row_height - 6, label)
            tick += step


class TimelineArea(QScrollArea):
    """The timeline in a scroll area: as wide as the tab, as tall as its rows need."""

    def __init__(self, model: ImageTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = TimelineView(model)
        self.setWidget(self.view)
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setAccessibleName("Timeline")

    def update(self) -> None:  # type: ignore[override]
        self.view.update()
