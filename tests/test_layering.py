"""Imports go one way: the window and the CLI use the engine, the engine uses neither, and
no process that does not show the window loads Qt (workers run in every child process)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ENGINE = Path(__file__).parents[1] / "gui" / "pipeline"


def _modules_after(code: str) -> list[str]:
    script = f"import sys; {code}; print('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_engine_and_cli_import_without_qt() -> None:
    loaded = _modules_after("import gui.pipeline.supervisor, gui.pipeline.worker, gui.cli, gui.devservices, "
                            "gui.__main__")
    assert not [m for m in loaded if m.startswith(("PySide6", "shiboken6", "gui.window"))]


def test_workers_load_only_what_they_need() -> None:
    """A worker imports the worker module and the modules of its tasks, never the
    project loader, the Dockerfile parser, the supervisor or Qt."""
    loaded = _modules_after("import gui.pipeline.worker as w; import importlib; "
                            "[importlib.import_module(m) for m in w.HEAVY_MODULES]")
    unwanted = ("gui.pipeline.project", "gui.pipeline.dockerfile", "gui.pipeline.supervisor", "gui.cli",
                "gui.window", "PySide6", "tomli_w", "tomllib")
    assert not [m for m in loaded if m.startswith(unwanted)]


def test_engine_does_not_import_the_cli_or_window() -> None:
    forbidden = re.compile(r"^\s*(?:from|import)\s+(?:PySide6|shiboken6|\.\.(?:cli|window)\b|gui\.(?:cli|window)\b)",
                           re.M)
    for module in ENGINE.glob("*.py"):
        match = forbidden.search(module.read_text())
        assert match is None, f"{module.name} imports {match.group(0) if match else ''}"


@pytest.mark.parametrize("method", ["forkserver", "spawn"])
def test_workers_do_not_run_the_callers_script_again(tmp_path: Path, method: str) -> None:
    """A child process re-runs its parent's main script (as __mp_main__) unless told not
    to: for a benchmark or test script that cost 70 ms of CPU in each of 24 workers at the
    start of a run, and a script with side effects would repeat them in every worker."""
    marks = tmp_path / "marks.txt"
    script = tmp_path / "caller.py"
    script.write_text(
        "import os, sys\n"
        f"sys.path.insert(0, {str(Path(__file__).parents[1])!r})\n"
        "if __name__ == '__mp_main__':\n"
        f"    open({str(marks)!r}, 'a').write('ran again\\n')\n"
        "if __name__ == '__main__':\n"
        "    from gui.pipeline.workers import Inbox, WorkerProcess\n"
        "    from gui.pipeline import events as ev\n"
        "    from gui.pipeline.tasks import WorkerConfig\n"
        "    inbox = Inbox()\n"
        "    workers = [WorkerProcess(ev.Stage.BUILD, WorkerConfig(environment=dict(os.environ)), inbox)\n"
        "               for _ in range(2)]\n"
        "    for w in workers:\n"
        "        w.stop()\n"
        "        w.process.join(30)\n"
        "        assert w.process.exitcode == 0, w.process.exitcode\n"
        "    assert sys.modules['__main__'].__spec__ is None  # the caller's own module is as it was\n")
    subprocess.run([sys.executable, str(script)], check=True, timeout=60,
                   env={**os.environ, "DOCKPOOL_START_METHOD": method})
    assert not marks.exists(), marks.read_text()
