"""Start the window: the QApplication, the icon, the project to open."""

from __future__ import annotations

import sys
from pathlib import Path

from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from .. import __version__
from ..resources import resource_path
from .main_window import MainWindow


def run(argv: list[str]) -> int:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("Dockpool")
    app.setOrganizationName("Dockpool")
    app.setApplicationVersion(__version__)
    icon = resource_path("icons/dockpool.png")
    if icon.exists():
        app.setWindowIcon(QIcon(str(icon)))
    window = MainWindow()
    window.show()
    project = next((a for a in argv if not a.startswith("-")), None)
    if project:
        window.open_path(Path(project), confirmed=True)
    else:
        window.offer_recovery()
    return app.exec()
