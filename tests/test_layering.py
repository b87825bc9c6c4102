"""The engine and the CLI never import Qt: workers load them in every child process."""

from __future__ import annotations

import subprocess
import sys


def test_engine_and_cli_import_without_qt() -> None:
    code = ("import sys, gui.pipeline, gui.pipeline.worker, gui.cli, gui.devservices, gui.__main__; "
            "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'gui.window'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_engine_does_not_import_the_cli_or_window() -> None:
    from pathlib import Path

    engine = Path(__file__).parents[1] / "gui" / "pipeline"
    for module in engine.glob("*.py"):
        text = module.read_text()
        for forbidden in ("PySide6", "from ..cli", "from ..window", "import gui.cli", "import gui.window"):
            assert forbidden not in text, f"{module.name} imports {forbidden}"
