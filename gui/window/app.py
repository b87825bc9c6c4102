"""Start the window: the QApplication, the icon, the project to open."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..resources import resource_path
from .main_window import MainWindow


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dockpool-gui", description="The Dockpool window.")
    parser.add_argument("project", nargs="?", type=Path, help="a project file to open")
    parser.add_argument("--registry", help="use this registry for this session (the file is not changed)")
    return parser.parse_args(argv)


def run(argv: list[str]) -> int:
    args = parse_arguments(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Dockpool")
    app.setOrganizationName("Dockpool")
    app.setApplicationVersion(__version__)
    icon = resource_path("icons/dockpool.png")
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    window.show()
    if args.project:
        window.open_path(args.project, confirmed=True, registry=args.registry)
    else:
        window.offer_recovery()
    return app.exec()
