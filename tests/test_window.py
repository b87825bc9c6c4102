"""The window driven as a user drives it, against the real engine and registry."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit, QMessageBox

from gui.devservices import Registry
from gui.pipeline import events as ev
from gui.pipeline.project import load
from gui.window import settings as stored
from gui.window.image_model import COL_BUILD, COL_PUSH, COL_STATUS, COL_TAGS, PROGRESS_ROLE
from tests.helpers import max_concurrent, write_image, write_project

SCREENSHOTS = Path(__file__).resolve().parents[1] / "resources" / "screenshots"
RUN_TIMEOUT = 180_000


def images_folder(root: Path, names: list[str], base: str = "scratch", run: str | None = None) -> Path:
    folder = root / "repo"
    for name in names:
        write_image(folder / "services", name, base=base, run=run)
    return folder


def run_to_end(qtbot, window, start=None) -> object:
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT) as finished:
        (start or window.start_action.trigger)()
    qtbot.waitUntil(lambda: window._thread is None, timeout=10000)
    return finished.args[0]


def row_of(window, name: str) -> int:
    return next(r for r in range(window.model.rowCount()) if window.model.image(r).name == name)


def status(window, name: str) -> str:
    return window.model.index(row_of(window, name), COL_STATUS).data()


@pytest.mark.docker
def test_scan_edit_run_and_watch(qtbot, window, registry: Registry, base_image: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = images_folder(tmp_path, [f"svc{i}" for i in range(6)], base=base_image, run="sleep 1")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(repo))
    window.add_folder_action.trigger()
    assert window.model.rowCount() == 6 and window.dirty
    assert [window.model.image(r).name for r in range(6)] == [f"svc{i}" for i in range(6)]

    # Edit a tag in place: select the cell, F2 opens the editor, type, Enter.
    window.table.setFocus()
    window.table.setCurrentIndex(window.model.index(0, COL_TAGS))
    qtbot.keyClick(window.table, Qt.Key.Key_F2)
    [editor] = window.table.viewport().findChildren(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "latest, 2.0")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next event loop turn
    qtbot.waitUntil(lambda: window.model.image(0).tags == ["latest", "2.0"], timeout=2000)

    window.registry.clear()
    qtbot.keyClicks(window.registry, registry.address)
    qtbot.keyClick(window.registry, Qt.Key.Key_Return)
    window.builders.setValue(3)
    window.pushers.setFocus()
    window.pushers.setValue(1)
    qtbot.keyClick(window.pushers, Qt.Key.Key_Right)  # the keyboard moves it too
    assert window.pushers_value.text() == "2"

    window.select_row(0)
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT) as finished:
        window.start_action.trigger()
        qtbot.waitUntil(lambda: any(status(window, f"svc{i}") == "pushed" for i in range(6)), timeout=60000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(SCREENSHOTS / "main-window-running.png"))
    report = finished.args[0]
    qtbot.waitUntil(lambda: window._thread is None, timeout=10000)

    assert report.succeeded and (report.builders, report.pushers) == (3, 2)
    for row in range(6):
        name = window.model.image(row).name
        assert status(window, name) == "pushed"
        assert window.model.index(row, COL_BUILD).data(PROGRESS_ROLE) == 1.0
        assert window.model.index(row, COL_PUSH).data(PROGRESS_ROLE) == 1.0
        assert registry.manifest_digest(name, "latest") == window.model.state(row).digest
    assert registry.manifest_digest("svc0", "2.0") == window.model.state(0).digest
    assert "built 6, pushed 6, failed 0" in window.counts.text()
    assert window.overall.value() == window.overall.maximum() == 6
    assert ":latest: digest: sha256:" in window.log.toPlainText()  # row 0's live log
    window.tabs.setCurrentWidget(window.timeline)
    QApplication.processEvents()
    window.grab().save(str(SCREENSHOTS / "main-window-finished.png"))


@pytest.mark.docker
def test_failing_build_shows_error_on_row_and_in_log(qtbot, window, registry: Registry, base_image: str,
                                                     tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path, "fine")
    write_image(tmp_path, "broken", base=base_image, run="echo going down && exit 7")
    window.open_path(write_project(tmp_path, [{"name": "fine", "context": "fine"},
                                              {"name": "broken", "context": "broken"}],
                                   registry=registry.address))
    run_to_end(qtbot, window)
    assert status(window, "fine") == "pushed"
    assert status(window, "broken") == "failed"
    tooltip = window.model.index(row_of(window, "broken"), COL_STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert "returned a non-zero code: 7" in tooltip and "What to do: a RUN step failed" in tooltip
    window.select_row(row_of(window, "broken"))
    log = window.log.toPlainText()
    assert "going down" in log and "FAILED (build-step)" in log
    assert window.retry_action.isEnabled()

    # Export the run report as JSON (like the CLI's) and as CSV.
    for name in ("report.json", "report.csv"):
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, n=name, **k: (str(tmp_path / n), ""))
        window.export_action.trigger()
    exported = json.loads((tmp_path / "report.json").read_text())
    assert {i["name"]: i["status"] for i in exported["images"]} == {"fine": "pushed", "broken": "failed"}
    csv_lines = (tmp_path / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,refs,status") and any(line.startswith("broken,") for line in csv_lines)


@pytest.mark.docker
def test_cancel_mid_run(qtbot, window, registry: Registry, base_image: str, tmp_path: Path,
                        docker_client) -> None:
    for i in range(3):
        write_image(tmp_path, f"slow{i}", base=base_image, run="sleep 60")
    window.open_path(write_project(tmp_path, [{"name": f"slow{i}", "context": f"slow{i}"} for i in range(3)],
                                   registry=registry.address, builders=2))
    pids: list[int] = []
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT):
        window.start_action.trigger()
        qtbot.waitUntil(lambda: status(window, "slow0").startswith("building step 2"), timeout=60000)
        pids += window._controller.worker_pids()
        assert window.cancel_action.isEnabled() and not window.start_action.isEnabled()
        pressed = time.monotonic()
        window.cancel_action.trigger()
    assert time.monotonic() - pressed < 5
    assert {status(window, f"slow{i}") for i in range(3)} == {"cancelled"}
    assert pids and not any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in pids)
    while docker_client.containers(all=True) and time.monotonic() - pressed < 5:
        qtbot.wait(100)  # the engine removes cancelled build containers on its own clock
    assert docker_client.containers(all=True) == []
    assert window.retry_action.isEnabled()


def _running(pid: int) -> bool:
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.mark.docker
def test_retry_failed_pushes_again_without_rebuilding(qtbot, window, registry: Registry, tmp_path: Path) -> None:
    for name in ("one", "two"):
        write_image(tmp_path, name)
    window.open_path(write_project(tmp_path, [{"name": "one", "context": "one"}, {"name": "two", "context": "two"}],
                                   registry=registry.address))
    registry.stop()
    run_to_end(qtbot, window)
    assert {status(window, n) for n in ("one", "two")} == {"failed"}
    built = {n: window.model.state(row_of(window, n)).build_start for n in ("one", "two")}

    registry.start()  # the registry comes back on the same port
    report = run_to_end(qtbot, window, window.retry_action.trigger)
    assert report.succeeded
    for name in ("one", "two"):
        state = window.model.state(row_of(window, name))
        assert status(window, name) == "pushed" and state.build_start == built[name]
        assert registry.manifest_digest(name, "latest") == state.digest
    assert all(image.build.attempts == 0 for image in report.images), "nothing was rebuilt"


@pytest.mark.docker
def test_slider_change_during_run_takes_effect(qtbot, window, registry: Registry, base_image: str,
                                               tmp_path: Path) -> None:
    for i in range(6):
        write_image(tmp_path, f"s{i}", base=base_image, run="sleep 2")
    window.open_path(write_project(tmp_path, [{"name": f"s{i}", "context": f"s{i}"} for i in range(6)],
                                   registry=registry.address, builders=1, pushers=1))
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT) as finished:
        window.start_action.trigger()
        qtbot.waitUntil(lambda: status(window, "s0").startswith("building"), timeout=30000)
        window.builders.setValue(3)
    report = finished.args[0]
    qtbot.waitUntil(lambda: window._thread is None, timeout=10000)
    assert report.builders == 3
    assert max_concurrent([(i.build.start, i.build.end) for i in report.images]) == 3


@pytest.mark.docker
def test_closing_during_run_asks_then_cancels_cleanly(qtbot, window, registry: Registry, base_image: str,
                                                      tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path, "slow", base=base_image, run="sleep 60")
    window.open_path(write_project(tmp_path, [{"name": "slow", "context": "slow"}], registry=registry.address))
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "question",
                        lambda parent, title, *a, **k: asked.append(title) or QMessageBox.StandardButton.Yes)
    window.start_action.trigger()
    qtbot.waitUntil(lambda: status(window, "slow").startswith("building step 2"), timeout=60000)
    pids = window._controller.worker_pids()
    window.close()
    assert asked == ["Cancel the run?"]
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=10000)
    assert window._thread is None
    assert not any(Path(f"/proc/{pid}").exists() and _running(pid) for pid in pids)


def test_open_save_round_trip(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api", "tags": ["1"],
                                     "build_args": {"V": "1"}}], registry="localhost:5000")
    assert window.open_path(path)
    window.select_row(0)
    window.tabs.setCurrentWidget(window.details)
    window.details.build_args.setFocus()
    window.details.build_args.selectAll()
    qtbot.keyClicks(window.details.build_args, "V=2")  # typed: each key updates the project
    qtbot.keyClick(window.details.build_args, Qt.Key.Key_Return)
    qtbot.keyClicks(window.details.build_args, "EXTRA=yes")
    assert window.details.build_args.toPlainText() == "V=2\nEXTRA=yes"
    window.pushers.setValue(3)
    assert window.dirty and window.isWindowModified() and window.windowTitle().startswith("dockpool.toml")
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "copy.toml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.save_as_action.trigger()
    assert not window.dirty and not window.isWindowModified() and window.windowTitle().startswith("copy.toml")
    again = load(target)
    assert again.pushers == 3 and again.images[0].build_args == {"V": "2", "EXTRA": "yes"}
    assert again.context_path(again.images[0]) == (tmp_path / "api").resolve()
    assert stored.recent_projects()[0] == str(target)


def test_invalid_project_shows_error_and_keeps_current(qtbot, window, tmp_path: Path) -> None:
    write_image(tmp_path, "api")
    good = write_project(tmp_path, [{"name": "api", "context": "api"}])
    window.open_path(good)
    bad = tmp_path / "bad.toml"
    bad.write_text('[registry]\nurl = "x"\n[[image]\nname = 1\n')
    assert not window.open_path(bad, confirmed=True)
    box = window.findChild(QMessageBox, "open-error")
    assert box is not None and box.isVisible()
    assert "TOML syntax error" in box.informativeText() and "line 3" in box.informativeText()
    box.accept()
    assert window.model.project.path == good and window.model.rowCount() == 1


def test_start_refuses_invalid_rows(qtbot, window, tmp_path: Path) -> None:
    write_image(tmp_path, "api")
    window.open_path(write_project(tmp_path, [{"name": "api", "context": "api"},
                                              {"name": "Bad Name", "context": "gone"}]))
    index = window.model.index(1, 1)
    assert "is not a valid repository name" in index.data(Qt.ItemDataRole.ToolTipRole)
    window.start_action.trigger()
    box = window.findChild(QMessageBox, "start-refused")
    assert box is not None and "Bad Name: name 'Bad Name' is not a valid repository name" in box.informativeText()
    assert "context folder 'gone' does not exist" in box.informativeText()
    box.accept()
    assert window._thread is None


def test_engine_unreachable_shows_banner(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    write_image(tmp_path, "api")
    window.open_path(write_project(tmp_path, [{"name": "api", "context": "api"}]))
    run_to_end(qtbot, window)
    assert window.banner.isVisible()
    assert f"unix://{tmp_path}/none.sock is unreachable" in window.banner_text.text()
    assert window.start_action.isEnabled() and window.model.rowCount() == 1


def test_drop_folders_and_bulk_edit(qtbot, window, tmp_path: Path) -> None:
    repo = images_folder(tmp_path, ["a", "b", "c"])
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(repo))])
    drop = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    window.table.dropEvent(drop)
    assert window.model.rowCount() == 3
    window.table.selectAll()
    window.disable_action.trigger()
    assert not window.model.project.enabled_images and not window.start_action.isEnabled()
    window.enable_action.trigger()
    window.duplicate_action.trigger()
    assert [window.model.image(r).name for r in range(6)] == ["a", "b", "c", "a-2", "b-2", "c-2"]
    window.select_row(5)
    window.remove_action.trigger()
    assert window.model.rowCount() == 5


def test_autosave_recovers_unsaved_edits(qtbot, window, tmp_path: Path, monkeypatch, qapp) -> None:
    from gui.window.main_window import MainWindow

    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    window.open_path(path)
    window.model.setData(window.model.index(0, COL_TAGS), "latest, edited")
    window._write_autosave()  # the timer's job; a crash right after must lose nothing
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Yes)
    second = MainWindow()
    second.offer_recovery()
    assert second.model.project.path == path and second.dirty
    assert second.model.image(0).tags == ["latest", "edited"]
    assert second.model.problems(0) == []  # contexts still point at the right folder
    second._dirty = False
    second.close()


@pytest.mark.docker
def test_log_in_stores_credentials_in_docker_config(qtbot, window, auth_registry: Registry, tmp_path: Path,
                                                    monkeypatch) -> None:
    from gui.window.login_dialog import LoginDialog

    def fill_and_accept(dialog: LoginDialog) -> int:
        dialog.username.setText("dockpool")
        dialog.password.setText("secret-pass")
        return LoginDialog.DialogCode.Accepted

    monkeypatch.setattr(LoginDialog, "exec", fill_and_accept)
    write_image(tmp_path, "api")
    window.open_path(write_project(tmp_path, [{"name": "api", "context": "api"}], registry=auth_registry.address))
    window.login_button.click()
    config = (Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text()
    assert auth_registry.address in config
    assert "secret-pass" not in window.model.project.path.read_text()
    report = run_to_end(qtbot, window)
    assert report.succeeded, report.images[0].error
