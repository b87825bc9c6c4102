"""A timeline of the run: each image's build and push drawn as bars along time.

It shows at a glance where the pipeline waits (gaps between an image's build and
its push are time spent waiting for a pusher slot) and how the push limit shapes
the run (pushes never stack more than `pushers` deep).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QWidget

from ..pipeline import events as ev
from .image_model import ImageTableModel

ROW_HEIGHT = 16
LABEL_WIDTH = 150
AXIS_HEIGHT = 20
COLORS = {"build": QColor("#4a90d9"), "push": QColor("#43a047"), "failed": QColor("#e53935"),
          "wait": QColor("#e0e0e0")}


class TimelineView(QWidget):
    def __init__(self, model: ImageTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._model = model
        self.setMinimumHeight(AXIS_HEIGHT + 3 * ROW_HEIGHT)
        for signal in (model.dataChanged, model.modelReset, model.rowsInserted, model.rowsRemoved):
            signal.connect(self._changed)

    def _changed(self, *_: object) -> None:
        self.updateGeometry()
        self.update()

    def sizeHint(self) -> QSize:
        return QSize(600, AXIS_HEIGHT + ROW_HEIGHT * max(3, self._model.rowCount()) + 4)

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
        painter.fillRect(self.rect(), self.palette().base())
        span = self._span()
        if span is None:
            painter.setPen(self.palette().placeholderText().color())
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "The timeline fills in when a run starts: blue = build, green = push, "
                             "grey = waiting for a pusher")
            return
        first, last = span
        width = max(1.0, self.width() - LABEL_WIDTH - 10)
        scale = width / (last - first)
        self._draw_axis(painter, first, last, scale)
        now = time.time()
        for row in range(self._model.rowCount()):
            state = self._model.state(row)
            top = AXIS_HEIGHT + row * ROW_HEIGHT
            painter.setPen(self.palette().text().color())
            painter.drawText(QRectF(4, top, LABEL_WIDTH - 8, ROW_HEIGHT),
                             Qt.AlignmentFlag.AlignVCenter, self._model.image(row).name)

            def bar(start: float | None, end: float | None, color: QColor) -> None:
                if not start:
                    return
                x = LABEL_WIDTH + (start - first) * scale
                w = max(2.0, ((end or now) - start) * scale)
                painter.fillRect(QRectF(x, top + 2, w, ROW_HEIGHT - 4), color)

            failed = state.status is ev.Status.FAILED
            if state.build_end and state.push_start:
                bar(state.build_end, state.push_start, COLORS["wait"])
            elif state.build_end and state.status is ev.Status.BUILT_WAITING:
                bar(state.build_end, None, COLORS["wait"])
            bar(state.build_start, state.build_end,
                COLORS["failed"] if failed and state.failed_stage is ev.Stage.BUILD else COLORS["build"])
            bar(state.push_start, state.push_end,
                COLORS["failed"] if failed and state.failed_stage is ev.Stage.PUSH else COLORS["push"])

    def _draw_axis(self, painter: QPainter, first: float, last: float, scale: float) -> None:
        painter.setPen(QPen(self.palette().mid().color()))
        total = last - first
        step = next(s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600, 1e9) if total / s <= 10)
        tick = 0.0
        while tick <= total:
            x = LABEL_WIDTH + tick * scale
            painter.drawLine(int(x), AXIS_HEIGHT - 4, int(x), self.height())
            label = f"{int(tick)}s" if tick < 60 else f"{int(tick) // 60}m{int(tick) % 60:02d}"
            painter.drawText(int(x) + 2, AXIS_HEIGHT - 6, label)
            tick += step
