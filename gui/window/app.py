"""Start the window: logging, the QApplication, the icon, the project to open."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QStandardPaths, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..resources import resource_path
from .main_window import MainWindow


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dockpool-gui", description="The Dockpool window.")
    parser.add_argument("project", nargs="?", type=Path, help="a project file to open")
    parser.add_argument("--registry", help="use this registry for this session (the file is not changed)")
    parser.add_argument("--smoke", action="store_true",
                        help="open the window (and the project), report the start-up time, exit")
    return parser.parse_args(argv)


def configure_logging() -> Path | None:
    """Log to stderr when there is one; a windowed executable has none (sys.stderr is
    None), so it logs to a file beside its settings instead. Returns the log file."""
    if sys.stderr is not None:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return None
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppLocalDataLocation))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "dockpool.log"
    logging.basicConfig(filename=path, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return path


def _say(message: str) -> None:
    """Print for whoever started us; a windowed executable has sys.stdout None, but when
    it is started from a terminal or a test, file descriptor 1 is still there."""
    if sys.stdout is not None:
        print(message, flush=True)
        return
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
    configure_logging()
    app.setWindowIcon(QIcon(str(resource_path("icons/dockpool.png"))))
    window = MainWindow()
    window.show()
    opened = True
    if args.project:
        opened = window.open_path(args.project, confirmed=True, registry=args.registry)
    elif not args.smoke:
        window.offer_recovery()
    if args.smoke:
        app.processEvents()
        shown = time.perf_counter() - started
        message = (f"smoke: window shown in {shown:.2f} s, {window.model.rowCount()} image(s), "
                   f"project {'opened' if opened else 'NOT opened'}")
        logging.getLogger("dockpool").info(message)
        _say(message)
        window._dirty = False
        QTimer.singleShot(0, window.close)
        app.exec()
        return 0 if opened and not window.windowIcon().isNull() else 1
    return app.exec()
