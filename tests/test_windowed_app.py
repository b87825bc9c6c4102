"""What a windowed Windows executable meets, reached on Linux through settings:

- DOCKPOOL_FORCE_NO_WINDOW=1 applies the console-hiding patch as on Windows (there the
  child gets CREATE_NO_WINDOW; here DOCKPOOL_CHILD_NO_WINDOW=1 in its environment), so
  a test can see that credential helpers and the BuildKit CLI, started by workers, get it;
- DOCKPOOL_WINDOWED=1 starts the window with no stdout/stderr, as a windowed executable is.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.devservices import Registry
from gui.pipeline.build_backend import resolve_backend
from gui.pipeline.project import BuildSettings, load
from tests.helpers import run_pipeline, simple_project, write_image, write_project

ROOT = Path(__file__).resolve().parents[1]


def _credential_helper(folder: Path, record: Path) -> None:
    """A docker-credential-* helper that answers with the test login and writes down the
    environment it was started with."""
    folder.mkdir(parents=True, exist_ok=True)
    helper = folder / "docker-credential-dockpooltest"
    helper.write_text(f"""#!{sys.executable}
import json, os, sys
action = sys.argv[1]
server = sys.stdin.read().strip()
with open({str(record)!r}, "a") as out:
    out.write(json.dumps({{"action": action, "mark": os.environ.get("DOCKPOOL_CHILD_NO_WINDOW")}}) + "\\n")
if action == "get":
    print(json.dumps({{"ServerURL": server, "Username": "dockpool", "Secret": "secret-pass"}}))
elif action == "list":  # a classic build sends every login the helper lists
    print(json.dumps({{}}))
""")
    helper.chmod(0o755)


@pytest.mark.docker
@pytest.mark.parametrize("setting", ["credsStore", "credHelpers"])
def test_credential_helpers_run_by_workers_get_no_console(tmp_path: Path, auth_registry: Registry, setting: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Docker's config names the helper for every registry (credsStore) or for this one
    (credHelpers): the push finds the login through it, as `docker push` does."""
    record = tmp_path / "helper-calls.jsonl"
    _credential_helper(tmp_path / "bin", record)
    config = Path(os.environ["DOCKER_CONFIG"])
    config.mkdir(parents=True, exist_ok=True)
    (config / "config.json").write_text(json.dumps(
        {"credsStore": "dockpooltest"} if setting == "credsStore"
        else {"credHelpers": {auth_registry.address: "dockpooltest"}}))
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    monkeypatch.setenv("DOCKPOOL_FORCE_NO_WINDOW", "1")
    run = run_pipeline(simple_project(tmp_path, 1, registry=auth_registry.address))
    assert run.report.succeeded, run.report.images[0].error  # the helper's login was used
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert calls and all(call["mark"] == "1" for call in calls), calls


@pytest.mark.docker
def test_the_buildkit_cli_started_by_a_worker_gets_no_console(tmp_path: Path, base_image: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKPOOL_FORCE_NO_WINDOW", "1")
    write_image(tmp_path, "marked", base=base_image, run="sleep 3")
    project = load(write_project(tmp_path, [{"name": "marked", "context": "marked"}]))
    seen: list[str] = []

    def read_child_environment(pipeline, event) -> None:
        from gui.pipeline import events as ev

        if isinstance(event, ev.BuildProcess):
            environ = Path(f"/proc/{event.pid}/environ").read_bytes().split(b"\0")
            seen.append("DOCKPOOL_CHILD_NO_WINDOW=1" if b"DOCKPOOL_CHILD_NO_WINDOW=1" in environ else "unmarked")

    run = run_pipeline(project, backend=resolve_backend(BuildSettings()), on_event=read_child_environment)
    assert run.report.succeeded
    assert seen == ["DOCKPOOL_CHILD_NO_WINDOW=1"]


def _windowed(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "DOCKPOOL_WINDOWED": "1", "HOME": str(tmp_path),
           "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    result = subprocess.run([sys.executable, "-m", "gui", *args], capture_output=True, text=True, env=env,
                            timeout=60)
    return result, tmp_path / "data" / "Dockpool" / "Dockpool" / "dockpool.log"


def test_windowed_app_logs_to_its_utf8_file(tmp_path: Path) -> None:
    write_image(tmp_path, "café-files")
    path = write_project(tmp_path, [{"name": "cafe", "context": "café-files"}])
    result, log = _windowed(tmp_path, str(path), "--smoke")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", "a windowed app has no stderr to write to"
    text = log.read_text(encoding="utf-8")
    assert "smoke: window shown" in text and "1 image(s), project opened" in text


def test_uncaught_errors_are_logged_and_named_to_the_user(qtbot, tmp_path: Path, monkeypatch) -> None:
    from PySide6.QtCore import QStandardPaths
    from PySide6.QtWidgets import QMessageBox

    from gui.window.app import ErrorLog

    QStandardPaths.setTestModeEnabled(True)
    errors = ErrorLog()
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    monkeypatch.setattr("threading.excepthook", __import__("threading").excepthook)
    errors.install()
    from PySide6.QtCore import qInstallMessageHandler

    qInstallMessageHandler(errors.previous_qt_handler)  # pytest-qt's own, which fails tests on warnings
    try:
        raise RuntimeError("a bug in a slot: ünïcode")
    except RuntimeError:
        sys.excepthook(*sys.exc_info())
    box = errors._box
    assert isinstance(box, QMessageBox) and str(errors.path) in box.informativeText()
    box.close()
    assert "a bug in a slot: ünïcode" in errors.path.read_text(encoding="utf-8")
    import logging

    for handler in logging.getLogger().handlers[:]:
        logging.getLogger().removeHandler(handler)


def test_a_crash_is_reported_at_the_next_start(tmp_path: Path) -> None:
    from PySide6.QtCore import QStandardPaths

    from gui.window.app import ErrorLog

    QStandardPaths.setTestModeEnabled(True)
    errors = ErrorLog()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # Another Dockpool still running: its marker is not a crash, and survives.
        other = errors.marker.with_name(f"running-{alive.pid}.pid")
        other.write_text(str(alive.pid))
        assert errors.previous_crash() is None and other.exists()
        # A session that never removed its marker: it crashed; said once.
        errors.marker.with_name(f"running-{dead}.pid").write_text(dead)
        message = errors.previous_crash()
        assert message and str(errors.path) in message
        assert errors.previous_crash() is None
        errors.running()
        assert errors.previous_crash() is None  # this very process is not a crash
        errors.closed()
        assert not errors.marker.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()
        other.unlink(missing_ok=True)


def test_workers_of_a_windowed_app_write_nowhere_else(tmp_path: Path) -> None:
    """Workers of a windowed executable have no stdout/stderr either: what they would
    print goes to the log file (a crash there used to show a dialog per worker)."""
    log = tmp_path / "worker.log"
    code = ("import sys; sys.stdout = sys.stderr = None\n"
            "from gui.pipeline.tasks import WorkerConfig\n"
            "from gui.pipeline.worker import prepare_process\n"
            f"prepare_process(WorkerConfig(log_file={str(log)!r}))\n"
            "print('stray output', file=sys.stderr)\n"
            "import warnings; warnings.warn('a warning')\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "stray output" in log.read_text(encoding="utf-8") and "a warning" in log.read_text(encoding="utf-8")


def test_credentials_file_login_works_without_a_helper(tmp_path: Path) -> None:
    """The base case the helper test builds on: Docker's config file with an `auths` entry."""
    from gui.pipeline.registry_auth import find_credentials

    config = Path(os.environ["DOCKER_CONFIG"])
    config.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(b"someone:pw").decode()
    (config / "config.json").write_text(json.dumps({"auths": {"registry.example.com": {"auth": token}}}))
    found = find_credentials("registry.example.com")
    assert found is not None and (found.username, found.password) == ("someone", "pw")
    assert "pw" not in repr(found)


def test_the_log_rotates_at_start_only(tmp_path: Path, monkeypatch) -> None:
    """Windows cannot rename a log that workers hold open, so the log never rotates while
    Dockpool runs (it did at 2 MB, and every later record then failed): only at start-up."""
    import logging

    from PySide6.QtCore import QStandardPaths

    from gui.window import app

    QStandardPaths.setTestModeEnabled(True)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)
    monkeypatch.setattr("threading.excepthook", __import__("threading").excepthook)
    errors = app.ErrorLog()
    errors.path.write_text("old session\n" + "x" * app.LOG_ROTATE_BYTES, encoding="utf-8")
    errors.install()
    from PySide6.QtCore import qInstallMessageHandler

    qInstallMessageHandler(errors.previous_qt_handler)
    try:
        assert errors.path.with_name(app.LOG_NAME + ".1").read_text(encoding="utf-8").startswith("old session")
        worker = open(errors.path, "a", encoding="utf-8")  # a worker appends to the same file
        for _ in range(300):
            logging.getLogger("test").info("%s", "y" * 10_000)  # 3 MB: past the old rotation size
        worker.write("worker line\n")
        worker.close()
        text = errors.path.read_text(encoding="utf-8")
        assert "old session" not in text and text.endswith("worker line\n") and len(text) > 3_000_000
        assert not errors.path.with_name(app.LOG_NAME + ".2").exists()
    finally:
        for handler in logging.getLogger().handlers[:]:
            logging.getLogger().removeHandler(handler)
            handler.close()
        errors.path.unlink(missing_ok=True)
        errors.path.with_name(app.LOG_NAME + ".1").unlink(missing_ok=True)
