"""The status bar's build backend: which builder a run will use, found off the GUI thread.

Finding it runs the Docker CLI (is buildx or BuildKit there?), which takes a moment;
the table needs only its kind (a classic builder marks BuildKit-only lines as
problems), the tooltip and About say which CLI and how.
"""

from __future__ import annotations

import copy
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QLabel

from ..pipeline.project import BuildSettings
from .background import run_in_background


class BackendLabel(QLabel):
    kindChanged = Signal(str)  # "buildkit" or "classic": what the rows are checked against

    def __init__(self) -> None:
        super().__init__()
        self.description = "…"  # for About

    def probe(self, settings: BuildSettings) -> None:
        from ..pipeline.build_backend import resolve_backend

        settings = copy.deepcopy(settings)  # the project may change while the CLI is asked
        self.setText("Build: finding the builder…")
        run_in_background(lambda: resolve_backend(settings), self.show_backend, self._not_found)

    def show_backend(self, backend: Any) -> None:
        """Found by probe, or by a run's start. The label names the backend only; which CLI
        and how is in the tooltip, so a long path never pushes the status message out of
        sight."""
        self.description = str(backend)
        self.setText(f"Build: {backend.kind}")
        self.setToolTip(str(backend))
        self.kindChanged.emit(backend.kind)

    def _not_found(self, exc: BaseException) -> None:
        self.setText("Build: not available")
        self.setToolTip(str(exc))
        self.kindChanged.emit("classic")
