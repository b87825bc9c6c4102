"""How far the run is, where the user looks: the bar and counts under the table, the
taskbar button, and a tray message when a long run ends (the user has likely
switched to something else by then).

The counts come from the model, which keeps them as events are applied, so a
second's tick costs the same for 10 images as for 1,000.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication, QLabel, QMainWindow, QProgressBar, QSystemTrayIcon

from ..pipeline import events as ev
from ..pipeline.report import RunReport
from .document import ProjectDocument
from .run_flow import RunFlow, summary
from .taskbar import TaskbarProgress

NOTIFY_AFTER_SECONDS = 60.0


class RunProgress(QObject):
    ticked = Signal()  # a second of a run passed, or it ended: elapsed times moved

    def __init__(self, window: QMainWindow, runs: RunFlow, document: ProjectDocument) -> None:
        super().__init__(window)
        self._window = window
        self.runs = runs
        self.document = document
        self.model = document.model
        self.overall = QProgressBar()
        self.overall.setFormat("%v / %m done")
        self.overall.setAccessibleName("Run progress")
        self.counts = QLabel("Ready")
        self.taskbar = TaskbarProgress(window)
        self._tray: QSystemTrayIcon | None = None
        self._ticker = QTimer(self, interval=1000, timeout=self._tick)
        self._shown: tuple[object, ...] = ()  # what the bar, the counts and the taskbar show
        self._elapsed = 0.0  # the run's time at the last tick: the estimate of the time left moves once a second
        runs.launched.connect(self._launched)
        runs.eventsApplied.connect(lambda *_: self.update())
        runs.finished.connect(self._finished)

    def update(self) -> None:
        """Called for every batch of a run's records: only what changed is shown again (a
        label whose text changes lays the status bar out again); the time left changes
        once a second."""
        pushing = bool(self.document.project.registry)
        counts = self.model.counts()
        total, done = counts["run"], counts["run_done"]
        text = f"built {counts['built']}" + (f", pushed {counts['pushed']}" if pushing else "") + \
            f", failed {counts['failed']}"
        if counts["cancelled"]:
            text += f", cancelled {counts['cancelled']}"
        if self.runs.running and 0 < done < total and self._elapsed:
            left = self._elapsed / done * (total - done)
            text += f" — about {int(left) // 60}:{int(left) % 60:02d} left"
        on_taskbar = self.runs.running and self.runs.rows_started  # not while the engine is asked
        shown = (total, done, text, on_taskbar, counts["run_failed"] > 0)
        if shown == self._shown:
            return
        self._shown = shown
        # QProgressBar repaints at once, inside this batch, when its value moves; with its
        # updates off for the change it is painted with the rest of the window instead.
        self.overall.setUpdatesEnabled(False)
        self.overall.setRange(0, max(1, total))
        self.overall.setValue(done)
        self.overall.setFormat("%v / %m done" if total else "no run yet")
        self.overall.setUpdatesEnabled(True)  # schedules the paint
        self.counts.setText(text)
        if on_taskbar:
            self.taskbar.show(done, total, counts["run_failed"] > 0)

    def _launched(self) -> None:
        self.taskbar.clear()  # the last run's bar is not this one's
        self._shown, self._elapsed = (), 0.0
        self._ticker.start()
        self.update()

    def _tick(self) -> None:
        self.model.tick_elapsed()
        self._elapsed = time.monotonic() - self.runs.started_at
        self._shown = ()  # everything once a second, the taskbar's bar included (Explorer may restart)
        self.update()
        self.ticked.emit()

    def _finished(self, report: RunReport | None) -> None:
        self._ticker.stop()
        self.model.tick_elapsed()
        self.ticked.emit()
        self.update()
        self.taskbar.finished()
        if report is not None:
            self._notify(report)

    def _notify(self, report: RunReport) -> None:
        took = (report.finished or time.time()) - report.started
        if took < NOTIFY_AFTER_SECONDS or not QSystemTrayIcon.isSystemTrayAvailable():
            return
        if self._tray is None:
            self._tray = QSystemTrayIcon(self._window.windowIcon(), self)
            QApplication.instance().aboutToQuit.connect(self._tray.hide)  # no ghost icon in Windows' tray
        self._tray.show()
        self._tray.showMessage("Dockpool run finished", summary(report),
                               QSystemTrayIcon.MessageIcon.Warning if report.count(ev.Status.FAILED)
                               else QSystemTrayIcon.MessageIcon.Information)
