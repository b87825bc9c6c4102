"""Start the window: logging and error handling, the QApplication, the project to open.

A windowed executable has no console: sys.stdout and sys.stderr are None in it
and in every process it starts. So everything goes to a UTF-8 log file in the
user's data folder (and to stderr too when there is one): log records,
uncaught exceptions of any thread (also shown in a dialog that names the
file), and faulthandler's dump if the interpreter itself crashes. A marker file
lives while the window runs; finding it at start means the last session
crashed, and the user is told where its log is. DOCKPOOL_WINDOWED=1 makes a
source run behave as the windowed executable does (no stdout/stderr), which is
how the tests cover it.
"""

from __future__ import annotations

import argparse
import faulthandler
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, QObject, QSize, QStandardPaths, Qt, QtMsgType, QTimer, qInstallMessageHandler
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from .. import __version__
from ..pipeline.processes import pid_exists
from ..pipeline.workers import prestart
from ..resources import resource_path
from . import settings as stored
from .background import wait_for_background
from .main_window import MainWindow

LOG_NAME = "dockpool.log"
LOG_ROTATE_BYTES = 2_000_000
LOG_BACKUPS = 2
BACKGROUND_WAIT = 3.0  # seconds, at exit, for a call still under way on Qt's thread pool (see _leave)
log = logging.getLogger("dockpool")


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dockpool-gui", description="The Dockpool window.")
    parser.add_argument("project", nargs="?", type=Path, help="a project file to open")
    parser.add_argument("--registry", help="use this registry for this session (the file is not changed)")
    parser.add_argument("--start", action="store_true", help="start the run as soon as the project is open")
    parser.add_argument("--smoke", action="store_true",
                        help="open the window (and the project), report the start-up time, exit")
    return parser.parse_args(argv)


def log_folder() -> Path:
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class ErrorLog:
    """The log file, the hooks that send every uncaught error there, and the crash marker."""

    def __init__(self) -> None:
        self.path = log_folder() / LOG_NAME
        self.marker = log_folder() / f"running-{os.getpid()}.pid"  # one per process: windows may be many
        self._stream: Any = None

    def install(self) -> None:
        if os.environ.get("DOCKPOOL_WINDOWED") == "1":  # as a windowed executable is started
            sys.stdout = sys.stderr = None  # type: ignore[assignment]
        self._rotate()
        handler = logging.FileHandler(self.path, encoding="utf-8")
        handlers: list[logging.Handler] = [handler]
        if sys.stderr is not None:
            handlers.append(logging.StreamHandler())
        logging.basicConfig(level=logging.INFO, handlers=handlers, force=True,
                            format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
        self._stream = handler.stream
        if sys.stdout is None or sys.stderr is None:
            # A stray print or warning must not crash the window.
            stray = open(self.path, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
            sys.stdout = sys.stdout or stray
            sys.stderr = sys.stderr or stray
        faulthandler.enable(file=self._stream)
        self.previous_qt_handler = qInstallMessageHandler(self._qt_message)  # else Qt writes to fd 2
        sys.excepthook = self._uncaught
        threading.excepthook = lambda args: self._uncaught(args.exc_type, args.exc_value, args.exc_traceback)

    def _rotate(self) -> None:
        """Rotate at start-up only, before anything has the file open: while the app runs, its
        workers and stray-output stream append to it too, and Windows refuses to rename a file
        that others have open (RotatingFileHandler would then log an error on every record).
        Another Dockpool running keeps it open: then it simply grows until a later start."""
        if not self.path.exists() or self.path.stat().st_size < LOG_ROTATE_BYTES:
            return
        try:
            for number in range(LOG_BACKUPS - 1, 0, -1):
                older = self.path.with_name(f"{LOG_NAME}.{number}")
                if older.exists():
                    os.replace(older, self.path.with_name(f"{LOG_NAME}.{number + 1}"))
            os.replace(self.path, self.path.with_name(f"{LOG_NAME}.1"))
        except OSError:
            pass

    @staticmethod
    def _qt_message(kind: QtMsgType, context: Any, message: str) -> None:
        level = {QtMsgType.QtDebugMsg: logging.DEBUG, QtMsgType.QtInfoMsg: logging.INFO,
                 QtMsgType.QtWarningMsg: logging.WARNING}.get(kind, logging.ERROR)
        logging.getLogger("qt").log(level, "%s", message)

    def _uncaught(self, kind: type[BaseException], error: BaseException, trace: Any) -> None:
        log.error("uncaught error:\n%s", "".join(traceback.format_exception(kind, error, trace)))
        if threading.current_thread() is threading.main_thread() and QApplication.instance() is not None:
            box = QMessageBox(QMessageBox.Icon.Critical, "Dockpool: unexpected error",
                              f"Something went wrong: {error}", QMessageBox.StandardButton.Ok)
            box.setObjectName("uncaught-error")
            box.setInformativeText(f"The details are in the log file:\n{self.path}")
            box.open()
            self._box = box

    def previous_crash(self) -> str | None:
        """An earlier session ended without closing: its marker is left and its process gone.
        Markers of Dockpools still running are theirs, not crashes."""
        crashed = False
        for marker in log_folder().glob("running-*.pid"):
            try:
                pid = int(marker.stem.removeprefix("running-"))
            except ValueError:
                continue
            if pid != os.getpid() and not pid_exists(pid):
                crashed = True
                marker.unlink(missing_ok=True)  # reported once
        if crashed:
            return f"Dockpool closed unexpectedly last time. What it logged is in:\n{self.path}"
        return None

    def running(self) -> None:
        try:
            self.marker.write_text(str(os.getpid()))  # the name says it; the text is for people
        except OSError:
            pass

    def closed(self) -> None:
        self.marker.unlink(missing_ok=True)


class _QuitWatcher(QObject):
    """Qt 6 turns QApplication.quit() into a close of every window, and a window that
    refuses its close cancels the quit. Told first, the windows end their runs without
    asking and accept."""

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Quit:
            for widget in QApplication.topLevelWidgets():
                if isinstance(widget, MainWindow):
                    widget.prepare_to_quit()
        return False


def _quit_in_order(app: QApplication) -> None:
    """Log-off and `kill` send SIGTERM, code may call QApplication.quit(): either way the
    run ends and edits are autosaved. A timer lets Python's signal handler run while Qt's
    event loop has the thread."""
    watcher = _QuitWatcher(app)
    app.installEventFilter(watcher)
    signal.signal(signal.SIGTERM, lambda *_: app.quit())
    timer = QTimer(app, interval=200, timeout=lambda: None)
    timer.start()


# Styles that draw light whatever the palette says (windowsvista, Windows 10's default, and
# the plain windows style): on a dark system Fusion takes their place, with the platform's
# dark palette. Every other style (Fusion, windows11, macOS, Breeze…) follows by itself.
LIGHT_ONLY_STYLES = {"windowsvista", "windows"}
ICON_SIZES = (16, 24, 32, 48, 64, 128, 256)  # as drawn in resources/icons, for every DPI


def follow_colour_scheme(app: QApplication) -> Callable[[Qt.ColorScheme], None]:
    """Follow the system's light or dark setting (Qt 6's style hints), now and whenever the
    user switches it; the window re-tints its own colours on the palette change. Returns
    the slot connected to the hint's signal."""
    original = app.style().name()

    def apply(scheme: Qt.ColorScheme) -> None:
        current = app.style().name().lower()
        if scheme == Qt.ColorScheme.Dark and current in LIGHT_ONLY_STYLES:
            app.setStyle("Fusion")
        elif scheme == Qt.ColorScheme.Light and current == "fusion" and original.lower() in LIGHT_ONLY_STYLES:
            app.setStyle(original)  # light again: the platform's own look back

    app.styleHints().colorSchemeChanged.connect(apply)
    apply(app.styleHints().colorScheme())
    return apply


def app_icon() -> QIcon:
    """The icon at every size it was drawn at: sharp in the title bar, the taskbar and
    Alt+Tab at 100 % and at high DPI alike (one 256 px PNG was scaled down, and blurred)."""
    icon = QIcon()
    for size in ICON_SIZES:
        icon.addFile(str(resource_path(f"icons/dockpool-{size}.png")), QSize(size, size))
    return icon


def _say(message: str) -> None:
    """Print for whoever started us; a windowed executable has sys.stdout None, but when
    it is started from a terminal or a test, file descriptor 1 is still there."""
    try:
        os.write(1, (message + "\n").encode())
    except OSError:
        pass


def run(argv: list[str], started: float | None = None) -> int:
    started = started or time.perf_counter()
    args = parse_arguments(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Dockpool")
    app.setOrganizationName("Dockpool")
    app.setApplicationVersion(__version__)
    errors = ErrorLog()
    errors.install()
    crash = errors.previous_crash()
    errors.running()
    app.setWindowIcon(app_icon())
    follow_colour_scheme(app)
    _quit_in_order(app)
    window = MainWindow(worker_log=str(errors.path))
    window.show()
    prestart()  # the fork server loads the workers' modules while the user looks at the window
    if crash and not args.smoke:
        QMessageBox.information(window, "Dockpool closed unexpectedly", crash)
    opened = True
    if args.project:
        opened = window.files.open_path(args.project, confirmed=True, registry=args.registry)
    elif not args.smoke:
        window.files.offer_recovery(None)
    if args.smoke:
        app.processEvents()
        shown = time.perf_counter() - started
        message = (f"smoke: window shown in {shown:.2f} s, {window.model.rowCount()} image(s), "
                   f"project {'opened' if opened else 'NOT opened'}")
        log.info(message)
        _say(message)
        QTimer.singleShot(0, window.close)
        app.exec()
        wait_for_background()
        errors.closed()
        return 0 if opened and not window.windowIcon().isNull() else 1
    if args.start and opened:
        QTimer.singleShot(0, window.runs.start)
    code = app.exec()
    deadline = window.quit_deadline or time.monotonic() + BACKGROUND_WAIT
    return _leave(errors, code, deadline, window.run_left_running)


def _leave(errors: ErrorLog, code: int, deadline: float, run_left_running: bool) -> int:
    """The window is gone: end within seconds (the OS may be logging off), by `deadline`
    (the one quitting set for the run's end too). A folder scan or a login under way ends
    first; a call still waiting for a registry or an engine that does not answer (its own
    timeout is 10 s) is not waited for, nor a run whose clean-up waits for a hung engine.
    Python cannot exit while a thread of Qt's pool or the run's thread is in its code, so
    the process then ends at once, after what must reach the disk has (the error log, the
    settings; a login writes Docker's config atomically) and any worker left is ended.
    Not done then: Qt's own teardown (text copied from Dockpool may not outlive it)."""
    background_done = wait_for_background(max(0, int((deadline - time.monotonic()) * 1000)))
    if background_done and not run_left_running:
        errors.closed()
        return code
    if not background_done:
        log.warning("a background call (registry check, login, folder scan or the build backend's probe) "
                    "was still running at exit: not waited for")
    for child in multiprocessing.active_children():
        child.kill()
    errors.closed()
    stored.settings().sync()
    logging.shutdown()
    os._exit(code)
