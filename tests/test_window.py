"""The window driven as a user drives it (clicks, keys, menus), against the real engine and
registry. Dialogs a user would answer are answered by replacing QMessageBox/QFileDialog
calls; everything else is the real window."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import select as io_select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QMimeData, QObject, QPoint, Qt, QUrl
from PySide6.QtGui import QBrush, QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QFileDialog, QLabel, QLineEdit, QMessageBox, QPushButton, QToolButton

from gui.devservices import Registry
from gui.pipeline import events as ev
from gui.pipeline.project import ImageSpec, build_inputs, load, save
from gui.pipeline.runlogs import format_line
from gui.window import settings as stored
from gui.window.background import wait_for_background
from gui.window.image_model import COL_BUILD, COL_NAME, COL_PUSH, COL_STATUS, COL_TAGS, PROGRESS_ROLE
from tests.helpers import loopback_name, max_concurrent, wait_until_dead, write_image, write_project

SCREENSHOTS = Path(__file__).resolve().parents[1] / "resources" / "screenshots"
RUN_TIMEOUT = 180_000


def images_folder(root: Path, names: list[str], base: str = "scratch", run: str | None = None) -> Path:
    folder = root / "repo"
    for name in names:
        write_image(folder / "services", name, base=base, run=run)
    return folder


def open_project(window, path: Path) -> None:
    assert window.files.open_path(path)


def run_to_end(qtbot, window, start=None) -> object:
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT) as finished:
        (start or window.actions.start.trigger)()
    qtbot.waitUntil(lambda: not window.runs.session.running, timeout=10000)
    return finished.args[0]


def row_of(window, name: str) -> int:
    return next(r for r in range(window.model.rowCount()) if window.model.image(r).name == name)


def status(window, name: str) -> str:
    return window.model.index(row_of(window, name), COL_STATUS).data()


def select(window, name: str) -> None:
    window.select_row(row_of(window, name))


def type_without_enter(qtbot, window, row: int, column: int, text: str) -> None:
    """F2 on a cell and type over it, leaving the editor open (no Enter, no Tab)."""
    window.table.setFocus()
    window.table.setCurrentIndex(window.table.filter.index(row, column))
    qtbot.keyClick(window.table, Qt.Key.Key_F2)
    [editor] = window.table.viewport().findChildren(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, text)


def answer_questions(monkeypatch, answer=QMessageBox.StandardButton.Yes) -> list[str]:
    asked: list[str] = []

    def question(parent, title, text, *args, **kwargs):
        asked.append(f"{title}: {text}")
        return answer

    monkeypatch.setattr(QMessageBox, "question", question)
    return asked


@pytest.mark.docker
def test_scan_edit_run_and_watch(qtbot, window, registry: Registry, base_image: str, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo = images_folder(tmp_path, [f"svc{i}" for i in range(6)], base=base_image, run="sleep 1")
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(repo))
    window.actions.add_folder.trigger()
    qtbot.waitUntil(lambda: window.model.rowCount() == 6, timeout=10000)  # scanned off the GUI thread
    assert window.document.modified
    assert [window.model.image(r).name for r in range(6)] == [f"svc{i}" for i in range(6)]
    for row in range(6):
        window.model.image(row).build_args = {}
    window.document.project.build.network = "host"  # the tests' engine has no bridge network

    # Edit a tag in place: select the cell, F2 opens the editor, type, Enter.
    window.table.setFocus()
    window.table.setCurrentIndex(window.table.filter.index(0, COL_TAGS))
    qtbot.keyClick(window.table, Qt.Key.Key_F2)
    [editor] = window.table.viewport().findChildren(QLineEdit)
    editor.selectAll()
    qtbot.keyClicks(editor, "latest, 2.0")
    qtbot.keyClick(editor, Qt.Key.Key_Return)  # the delegate commits on the next event loop turn
    qtbot.waitUntil(lambda: window.model.image(0).tags == ["latest", "2.0"], timeout=2000)

    registry_field = window.controls.registry
    registry_field.clear()
    qtbot.keyClicks(registry_field, registry.address)
    qtbot.keyClick(registry_field, Qt.Key.Key_Return)
    window.controls.builders.setValue(3)
    window.controls.pushers.setFocus()
    window.controls.pushers.setValue(1)
    qtbot.keyClick(window.controls.pushers, Qt.Key.Key_Right)  # the keyboard moves it too
    assert window.controls.pushers_spin.value() == 2 and window.document.project.pushers == 2

    select(window, "svc0")
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT) as finished:
        qtbot.keyClick(window, Qt.Key.Key_F5)
        qtbot.waitUntil(lambda: any(status(window, f"svc{i}") == "pushed" for i in range(6)), timeout=60000)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        window.grab().save(str(SCREENSHOTS / "main-window-running.png"))
    report = finished.args[0]
    qtbot.waitUntil(lambda: not window.runs.session.running, timeout=10000)

    assert report.succeeded and (report.builders, report.pushers) == (3, 2)
    for row in range(6):
        name = window.model.image(row).name
        assert status(window, name) == "pushed"
        assert window.model.index(row, COL_BUILD).data(PROGRESS_ROLE) == 1.0
        assert window.model.index(row, COL_PUSH).data(PROGRESS_ROLE) == 1.0
        assert registry.manifest_digest(name, "latest") == window.model.state(row).digest
    assert registry.manifest_digest("svc0", "2.0") == window.model.state(0).digest
    assert "built 6, pushed 6, failed 0" in window.progress.counts.text()
    assert window.progress.overall.value() == window.progress.overall.maximum() == 6
    assert window.log.title.text().startswith("<b>Log — svc0")
    assert ":latest: digest: sha256:" in window.log.text.plain_text()  # row 0's live log
    # The status bar names the backend that built (BuildKit through Debian's 20.10 CLI here).
    assert report.backend.startswith("buildkit")
    assert window.backend_label.text() == "Build: buildkit"
    assert "docker 20.10" in window.backend_label.toolTip()
    window.tabs.setCurrentWidget(window.timeline)
    QApplication.processEvents()
    window.grab().save(str(SCREENSHOTS / "main-window-finished.png"))


@pytest.mark.docker
@pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen: no keyboard grab for popups
def test_failing_build_shows_its_reason_on_the_row_and_in_the_log(qtbot, window, registry: Registry,
                                                                   base_image: str, tmp_path: Path,
                                                                   monkeypatch) -> None:
    write_image(tmp_path, "fine")
    write_image(tmp_path, "broken", base=base_image, run="echo going down && exit 7")
    open_project(window, write_project(tmp_path, [{"name": "fine", "context": "fine"},
                                                  {"name": "broken", "context": "broken"}],
                                       registry=registry.address))
    window.actions.failed_only.trigger()  # on before the run: failures appear as they happen
    bar: list[tuple[int, int, bool]] = []
    alerts: list[object] = []
    monkeypatch.setattr(window.progress.taskbar, "show", lambda done, total, failed: bar.append((done, total, failed)))
    monkeypatch.setattr(QApplication, "alert", lambda widget, duration=0: alerts.append(widget))
    run_to_end(qtbot, window)
    # The taskbar button (ITaskbarList3 on Windows) follows the run and turns red once an
    # image failed; the end flashes it (the urgent hint on X11).
    assert bar and {total for _, total, _ in bar} == {2} and max(done for done, _, _ in bar) >= 1
    assert any(failed for _, _, failed in bar) and alerts == [window]
    assert [window.table.filter.index(r, COL_NAME).data() for r in range(window.table.filter.rowCount())] \
        == ["broken"]
    window.actions.failed_only.trigger()
    assert status(window, "fine") == "pushed"
    shown = status(window, "broken")  # the reason, not only "failed": its kind and the daemon's words
    assert shown.startswith("failed: build step failed — ") and shown.endswith("code: 7"), shown
    tooltip = window.model.index(row_of(window, "broken"), COL_STATUS).data(Qt.ItemDataRole.ToolTipRole)
    assert "exit code: 7" in tooltip and "What to do: a RUN step failed" in tooltip
    select(window, "broken")
    log = window.log.text.plain_text()
    assert "going down" in log and "[build!]" in log and "exit code: 7" in log
    assert window.actions.retry.isEnabled()
    _use_row_menu(qtbot, window, "broken", "Copy error")  # for a bug report or a chat
    copied = QGuiApplication.clipboard().text()
    assert copied.endswith("exit code: 7") and "echo going down" in copied, copied
    # The counts behind the status bar are kept as events arrive; a fresh count agrees.
    kept = window.model.counts()
    assert (kept["run"], kept["run_done"], kept["pushed"], kept["failed"], kept["retryable"]) == (2, 2, 1, 1, 1)
    window.model._recount()
    assert window.model.counts() == kept
    assert window.progress.counts.text().startswith("built 1, pushed 1, failed 1")

    # Export the run report as JSON (like the CLI's) and as CSV.
    for name in ("report.json", "report.csv"):
        monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, n=name, **k: (str(tmp_path / n), ""))
        window.actions.export.trigger()
    exported = json.loads((tmp_path / "report.json").read_text())
    assert {i["name"]: i["status"] for i in exported["images"]} == {"fine": "pushed", "broken": "failed"}
    csv_lines = (tmp_path / "report.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,refs,status") and any(line.startswith("broken,") for line in csv_lines)

    # An export that cannot be written (a folder in the way, a CSV open in a spreadsheet) says so.
    (tmp_path / "taken.csv").mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "taken.csv"), ""))
    window.actions.export.trigger()
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "export-error") is not None, timeout=2000)
    window.findChild(QMessageBox, "export-error").close()

    # Retrying the failed one: the taskbar shows that run of one image from its first
    # call, never the last run's full red bar while the engine is being asked.
    bar.clear()
    run_to_end(qtbot, window, start=window.actions.retry.trigger)
    assert bar and {total for _, total, _ in bar} == {1}


_REMOVED: list[tuple[str, str]] = []  # (thread, name) of every file removed while a test listens
_LISTENING: list[bool] = []


def _audit_removals(event: str, args: tuple) -> None:
    if _LISTENING and event == "os.remove":
        import threading

        _REMOVED.append((threading.current_thread().name, os.fsdecode(args[0])))


@pytest.mark.docker
def test_old_run_folders_are_removed_off_the_gui_thread(qtbot, window, base_image: str, tmp_path: Path) -> None:
    """Start keeps the last 20 runs' log folders and removes older ones: a 1,000-image run
    leaves 1,000 files, and removing them at Start froze the window (0.19 s here in the
    window bench's launch; far longer on Windows, where each deletion is slower)."""
    from gui.window.run_flow import KEEP_RUN_FOLDERS, runs_folder

    runs = runs_folder()
    runs.mkdir(parents=True)
    for number in range(KEEP_RUN_FOLDERS):
        (runs / f"20000101-0000{number:02d}-1-000000").mkdir()
    oldest = runs / "19990101-000000-1-000000"
    oldest.mkdir()
    for number in range(200):
        (oldest / f"pruned-{number:03d}.log").write_text("a line\n")
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    if not _LISTENING:
        sys.addaudithook(_audit_removals)  # hooks stay for the process: this one listens only below
    _REMOVED.clear()
    _LISTENING.append(True)
    try:
        run_to_end(qtbot, window)
        assert wait_for_background()
    finally:
        _LISTENING.clear()
    assert not oldest.exists() and len(list(runs.iterdir())) == KEEP_RUN_FOLDERS  # this run's and the 19 before
    pruned = [(thread, name) for thread, name in _REMOVED if name.startswith("pruned-")]
    assert len(pruned) == 200
    assert not [name for thread, name in pruned if thread == "MainThread"], "removed on the GUI thread"


@pytest.mark.docker
def test_the_log_keeps_everything_and_follows_live(qtbot, window, base_image: str, tmp_path: Path) -> None:
    """Each image's log is its file: 30,000 lines, the failure at the end included (the
    old in-memory log stopped growing at 5,000 lines)."""
    write_image(tmp_path, "chatty", base=base_image, run="seq 1 30000; echo the-last-word; exit 4")
    open_project(window, write_project(tmp_path, [{"name": "chatty", "context": "chatty"}]))
    select(window, "chatty")
    run_to_end(qtbot, window)
    text = window.log.text.plain_text()
    assert "30000" in text and "the-last-word" in text and "exit code: 4" in text
    output = [line for line in text.splitlines() if line.endswith(" the-last-word") and "echo" not in line]
    assert len(output) == 1, "a line was shown twice"
    assert len([line for line in text.splitlines() if line.endswith(" 29999")]) == 1
    state = window.model.state(0)
    assert not hasattr(state, "log"), "the window keeps no log lines in memory"
    on_disk = state.log_files[-1].read_text(encoding="utf-8").splitlines()
    assert len([line for line in on_disk if line.endswith((" 1", " 29999", " 30000"))]) >= 3
    # Selecting again loads the file in one go, and search finds in it.
    select(window, "chatty")
    window.log.search.setText("the-last-word")
    assert window.log.find(backwards=False)
    assert window.log.text.selected_text() == "the-last-word"


@pytest.mark.docker
def test_cancel_mid_run_and_cancel_one_image(qtbot, window, registry: Registry, base_image: str,
                                             tmp_path: Path, docker_client) -> None:
    for i in range(3):
        write_image(tmp_path, f"slow{i}", base=base_image, run="sleep 60")
    write_image(tmp_path, "quick", base=base_image, run="sleep 3")
    open_project(window, write_project(tmp_path, [{"name": f"slow{i}", "context": f"slow{i}"} for i in range(3)]
                                       + [{"name": "quick", "context": "quick"}], registry=registry.address,
                                       builders=4))
    pids: list[int] = []
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT):
        window.actions.start.trigger()
        qtbot.waitUntil(lambda: status(window, "slow0") == "building step 3/3", timeout=60000)
        select(window, "slow1")  # the context menu's "Cancel this image"
        window._update_actions()
        assert window.actions.cancel_selected.isEnabled()
        window.actions.cancel_selected.trigger()
        qtbot.waitUntil(lambda: status(window, "slow1") == "cancelled", timeout=10000)
        qtbot.waitUntil(lambda: status(window, "quick") == "pushed", timeout=60000)
        assert window.runs.session.running  # the others go on
        pids += window.runs.session.worker_pids()
        assert window.actions.cancel.isEnabled() and not window.actions.start.isEnabled()
        pressed = time.monotonic()
        qtbot.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
    assert time.monotonic() - pressed < 5
    assert {status(window, name) for name in ("slow0", "slow2")} == {"cancelled"}
    assert pids and wait_until_dead(pids) == []
    while docker_client.containers(all=True) and time.monotonic() - pressed < 5:
        qtbot.wait(100)  # the engine removes cancelled build containers on its own clock
    assert docker_client.containers(all=True) == []
    assert window.actions.retry.isEnabled()


@pytest.mark.docker
def test_retry_pushes_again_under_fixed_refs_and_rebuilds_what_was_changed(qtbot, window, registry: Registry,
                                                                          base_image: str, tmp_path: Path) -> None:
    """The registry goes away mid-run and the pushes fail; the user types another registry
    (not committed) and fixes a build arg of one image, then presses Ctrl+F5. The image
    left alone is pushed again from its build, to the registry typed (the old window
    pushed to the registry that was gone); the one whose build arg changed is rebuilt
    (the old window pushed its stale build)."""
    write_image(tmp_path, "api", base=base_image, run="sleep 2")
    write_image(tmp_path, "web", base=base_image, run="sleep 2", extra="ARG VERSION\nRUN echo $VERSION > /version")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"},
                                                  {"name": "web", "context": "web"}], registry=registry.address))
    other = Registry(tmp_path / "other-registry")
    other.start()
    try:
        with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT):
            window.actions.start.trigger()
            qtbot.waitUntil(lambda: status(window, "api").startswith("building"), timeout=60000)
            registry.stop()
        assert all(status(window, n).startswith("failed: registry unreachable — ") for n in ("api", "web"))
        built = {n: window.model.state(row_of(window, n)).image_id for n in ("api", "web")}
        select(window, "web")
        window.tabs.setCurrentWidget(window.details)
        window.details.build_args.setFocus()
        qtbot.keyClicks(window.details.build_args, "VERSION=2")
        window.controls.registry.setFocus()
        window.controls.registry.selectAll()
        qtbot.keyClicks(window.controls.registry, other.address)  # typed, Enter not pressed
        report = run_to_end(qtbot, window, lambda: qtbot.keyClick(window, Qt.Key.Key_F5,
                                                                    Qt.KeyboardModifier.ControlModifier))
        assert report.succeeded, [(i.name, i.error) for i in report.images]
        results = {image.name: image for image in report.images}
        assert results["api"].build.attempts == 0, "pushed again, not rebuilt"
        assert window.model.state(row_of(window, "api")).image_id == built["api"]
        assert results["web"].build.attempts == 1, "its build arg changed: rebuilt, not its stale build pushed"
        assert window.model.state(row_of(window, "web")).image_id != built["web"]
        for image in report.images:
            assert other.manifest_digest(image.name, "latest") == image.digest
    finally:
        other.stop()


def _push_failed_after_its_build(window) -> None:
    """Row 0 ("api") was built (sha256:abc, from what the project says now) and its push
    failed, as a run's session delivers those records."""
    uid = window.model.uid(0)
    window.model.start_rows([uid], [], {}, True,
                            {uid: build_inputs(window.model.image(0), window.document.project.build)})
    window.runs.keys = {"api": uid}
    failure = ev.Failure(ev.FailureKind.UNREACHABLE, "connection refused", "check the registry")
    window.runs.session.eventsReady.emit([ev.BuildStarted("api", 1, 1.0), ev.BuildDone("api", "sha256:abc"),
                                          ev.PushFailed("api", failure)])


def _runs_handed(window, monkeypatch) -> list[tuple[str, dict]]:
    """What each run is handed from now on (its registry, the builds it keeps), instead of
    starting it."""
    handed: list[tuple[str, dict]] = []
    monkeypatch.setattr(window.runs.session, "start",
                        lambda project, options, push_only, *rest: handed.append((project.registry, push_only)))
    return handed


def test_retry_with_the_registry_just_cleared_builds_again(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    """A push failed; the user clears the registry field (no Enter) and presses Ctrl+F5:
    there is nowhere to push, so the run builds. The old window decided which builds to
    keep before it took what was typed, and handed the run kept builds and no registry:
    the run broke at once ("images can only be pushed again with a registry")."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}], registry="127.0.0.1:5999"))
    _push_failed_after_its_build(window)
    handed = _runs_handed(window, monkeypatch)
    window.controls.registry.setFocus()
    window.controls.registry.selectAll()
    qtbot.keyClick(window.controls.registry, Qt.Key.Key_Delete)
    qtbot.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ControlModifier)
    assert handed == [("", {})]


def test_a_build_arg_fixed_while_the_registry_is_checked_is_built(qtbot, window, tmp_path: Path,
                                                                  monkeypatch) -> None:
    """Ctrl+F5 after a failed push, then a build arg fixed while the registry check waits
    for a slow registry: the image is rebuilt, not its old build pushed (which builds to
    keep was decided before the check, and the window stays editable during it)."""
    import http.server
    import threading

    class SlowRegistry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # /v2/, after a while: an open registry
            time.sleep(1.5)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowRegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        write_image(tmp_path, "api")
        open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}],
                                           registry=f"127.0.0.1:{server.server_address[1]}"))
        _push_failed_after_its_build(window)
        handed = _runs_handed(window, monkeypatch)
        qtbot.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ControlModifier)
        assert window.runs.busy  # the registry is being checked
        select(window, "api")
        window.tabs.setCurrentWidget(window.details)
        window.details.build_args.setFocus()
        qtbot.keyClicks(window.details.build_args, "VERSION=2")
        qtbot.waitUntil(lambda: bool(handed), timeout=20_000)
        assert [kept for _, kept in handed] == [{}], "the old build was kept though its build arg changed"
    finally:
        server.shutdown()


@pytest.mark.docker
def test_registry_checked_before_building_offers_build_only(qtbot, window, registry: Registry,
                                                           tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}], registry=registry.address))
    registry.stop()
    choices: list[str] = []

    def pick(box: QMessageBox) -> int:
        choices.append(box.informativeText())
        box.buttons()[0].click()  # Build only
        return 0

    monkeypatch.setattr(QMessageBox, "exec", pick)
    report = run_to_end(qtbot, window)
    assert "connection refused" in choices[0].lower() or "could not connect" in choices[0].lower()
    assert report.registry == "" and report.succeeded
    assert status(window, "api") == "built"


@pytest.mark.docker
def test_registry_check_says_when_the_login_is_missing_or_refused(qtbot, window, auth_registry: Registry,
                                                                 tmp_path: Path, monkeypatch) -> None:
    """Start against a registry that demands a login: with none stored, then with a wrong
    password, the check says which before anything is built (the user cancels); with the
    right one the run builds and pushes."""
    import base64

    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}],
                                       registry=auth_registry.address))
    before = status(window, "api")
    asked: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: asked.append(box.informativeText()) or 0)  # Cancel
    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"

    def store_login(password: str) -> None:
        config.parent.mkdir(parents=True, exist_ok=True)
        secret = base64.b64encode(f"dockpool:{password}".encode()).decode()
        config.write_text(json.dumps({"auths": {auth_registry.address: {"auth": secret}}}))

    for password, said in ((None, "asks for a login, and none is stored for it"),
                           ("wrong-pass", "refused the login (401)")):
        if password:
            store_login(password)
        window.actions.start.trigger()
        qtbot.waitUntil(lambda: len(asked) == (2 if password else 1), timeout=20_000)
        assert said in asked[-1], asked[-1]
        QApplication.processEvents()
        assert not window.runs.busy and status(window, "api") == before, "something ran after Cancel"
    store_login("secret-pass")
    report = run_to_end(qtbot, window)
    assert len(asked) == 2 and report.succeeded and status(window, "api") == "pushed"


@pytest.mark.docker
def test_registry_check_reaches_a_registry_as_the_run_will(qtbot, window, docker_host: str, tmp_path: Path,
                                                           monkeypatch) -> None:
    """A plain-HTTP registry named by a host name that the engine treats as insecure (here
    the machine's own name, in the engine's 127.0.0.0/8) is checked over HTTP, as the run
    will push to it; it used to be tried over HTTPS and refused as unusable."""
    service = Registry(tmp_path / "named-registry", host=loopback_name())
    service.start()
    try:
        write_image(tmp_path, "api")
        open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}],
                                           registry=service.address))
        asked: list[str] = []

        def refuse(box: QMessageBox) -> int:
            asked.append(box.informativeText())
            box.buttons()[0].click()  # Build only: the run ends, and the test says why
            return 0

        monkeypatch.setattr(QMessageBox, "exec", refuse)
        report = run_to_end(qtbot, window)
    finally:
        service.stop()
    assert not asked, asked
    assert report.succeeded and status(window, "api") == "pushed"


def test_while_the_registry_is_checked_nothing_else_starts(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    """The check before a run takes as long as the registry does: meanwhile F5 must not
    start a second check and run, nor may rows be removed or edits undone under it."""
    from gui.pipeline import registry_http

    write_image(tmp_path, "api")
    checks: list[str] = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: checks.append(box.informativeText()) or 0)  # Cancel
    # The check's 10 s timeout, shortened: how long it waits does not matter here.
    monkeypatch.setattr(registry_http, "check_registry", functools.partial(registry_http.check_registry, timeout=3))
    with _silent_port() as silent:  # the check waits for its timeout
        open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}],
                                           registry=f"127.0.0.1:{silent.getsockname()[1]}"))
        window.document.edit(window.model.uid(0), "tags", ["1.0"])
        window.actions.start.trigger()
        select(window, "api")  # a selection change re-applies the action rules
        assert window.runs.busy and not window.actions.start.isEnabled()
        assert not window.actions.remove.isEnabled() and not window.actions.undo.isEnabled()
        qtbot.keyClick(window, Qt.Key.Key_F5)
        window.runs.start()
        qtbot.waitUntil(lambda: bool(checks), timeout=30_000)
        QApplication.processEvents()
        assert len(checks) == 1 and not window.runs.session.running and not window.runs.busy
        assert window.actions.start.isEnabled() and window.actions.undo.isEnabled()
        # Shift+F5 during the check cancels it: the window is free at once, and the
        # check's late answer neither asks anything nor starts a run.
        window.actions.start.trigger()
        assert window.runs.busy and window.actions.cancel.isEnabled()
        qtbot.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
        assert not window.runs.busy and window.actions.start.isEnabled()
        assert wait_for_background(30_000)
        QApplication.processEvents()
        assert len(checks) == 1 and not window.runs.session.running and not window.runs.busy


@pytest.mark.docker
def test_unreachable_engine_keeps_the_last_results(qtbot, window, tmp_path: Path, monkeypatch,
                                                   docker_host: str) -> None:
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    last = run_to_end(qtbot, window)
    assert status(window, "api") == "built"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    assert run_to_end(qtbot, window) is None
    assert window.banner.isVisible() and "Docker engine unreachable" in window.banner.text.text()
    assert status(window, "api") == "built", "the last run's results were wiped before the engine answered"
    assert window.actions.start.isEnabled()
    # ...and so is its report: Export gives the run that happened (it was disabled).
    assert window.actions.export.isEnabled()
    target = tmp_path / "report.json"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), "JSON report (*.json)"))
    window.actions.export.trigger()
    assert json.loads(target.read_text())["started"] == last.started


def test_the_banners_retry_repeats_what_was_asked(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    """"Build or retry this image" on one row with the engine down, then the banner's
    Retry: that image again, not every image (the old banner called Start)."""
    for name in ("api", "web", "db"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": n, "context": n} for n in ("api", "web", "db")]))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    select(window, "web")
    assert run_to_end(qtbot, window, window.actions.build_selected.trigger) is None
    assert list(window.runs.keys) == ["web"]
    retry = next(b for b in window.banner.findChildren(QPushButton) if b.text() == "Retry")
    assert run_to_end(qtbot, window, retry.click) is None
    assert list(window.runs.keys) == ["web"], "the banner's Retry ran other images"


@pytest.mark.docker
def test_cancel_while_the_engine_is_asked_keeps_the_last_results(qtbot, window, tmp_path: Path, monkeypatch,
                                                                 docker_host: str) -> None:
    """Cancel (Shift+F5) while the engine has not answered yet: the run ends, and the rows
    keep the last run's results (they all said "queued" before, results wiped)."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    run_to_end(qtbot, window)
    assert status(window, "api") == "built"
    silent = socket.socket(socket.AF_UNIX)
    silent.bind(str(tmp_path / "silent.sock"))
    silent.listen(8)  # accepts, never answers: the engine check waits
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/silent.sock")
    try:
        with qtbot.waitSignal(window.runFinished, timeout=30_000) as finished:
            window.actions.start.trigger()
            qtbot.waitUntil(lambda: "Connecting" in window.statusBar().currentMessage(), timeout=10_000)
            assert status(window, "api") == "built"
            qtbot.keyClick(window, Qt.Key.Key_F5, Qt.KeyboardModifier.ShiftModifier)
        assert finished.args[0] is None
        assert status(window, "api") == "built" and window.actions.start.isEnabled()
    finally:
        silent.close()


def test_a_run_that_breaks_always_ends(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    """A stale DOCKER_TLS_VERIFY (and any other error) ends the run: the old window stayed
    "running" for good, with Cancel doing nothing and closing refused."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2376")
    monkeypatch.setenv("DOCKER_TLS_VERIFY", "1")
    monkeypatch.setenv("DOCKER_CERT_PATH", str(tmp_path / "no-certs"))
    assert run_to_end(qtbot, window) is None
    assert "the Docker settings are invalid" in window.banner.text.text()
    assert window.actions.start.isEnabled() and not window.runs.session.running


@pytest.mark.docker
def test_a_stale_start_method_setting_ends_the_run_before_it_starts(qtbot, window, tmp_path: Path, monkeypatch,
                                                                    docker_host: str) -> None:
    """A setting that is wrong in some other way than the engine's (here the workers' start
    method, left over from a test session) is said before any row changes."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    run_to_end(qtbot, window)
    monkeypatch.setenv("DOCKPOOL_START_METHOD", "telepathy")
    assert run_to_end(qtbot, window) is None
    assert "DOCKPOOL_START_METHOD='telepathy' is not a start method" in window.banner.text.text()
    assert status(window, "api") == "built" and window.actions.start.isEnabled()


@pytest.mark.docker
def test_a_run_that_breaks_after_it_started_fails_its_rows(qtbot, window, base_image: str, tmp_path: Path,
                                                           monkeypatch) -> None:
    """An error after the rows started (a Dockpool bug, put in here on purpose once the
    workers run): the run ends, no row stays "building" or "queued" (Retry failed skipped
    such rows), no worker is left, and Retry failed then builds them."""
    from gui.pipeline import supervisor

    for name in ("slow", "next"):
        write_image(tmp_path, name, base=base_image, run="sleep 120")
    open_project(window, write_project(tmp_path, [{"name": n, "context": n} for n in ("slow", "next")],
                                       builders=1))
    started = supervisor.Pipeline.start
    pids: list[int] = []

    def start_then_break(pipeline) -> None:
        started(pipeline)
        deadline = time.monotonic() + 30
        while not pipeline.worker_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
        pids.extend(pipeline.worker_pids())
        raise RuntimeError("a bug after the start")

    monkeypatch.setattr(supervisor.Pipeline, "start", start_then_break)
    began = time.monotonic()
    report = run_to_end(qtbot, window)
    assert time.monotonic() - began < 60, "the run waited for the build instead of ending"
    assert report is not None and not report.succeeded
    assert "RuntimeError: a bug after the start" in window.banner.text.text()
    assert [status(window, n).split(":")[0] for n in ("slow", "next")] == ["failed", "failed"]
    assert {i.status for i in report.images} == {ev.Status.FAILED}
    assert pids and wait_until_dead(pids) == []
    assert window.actions.start.isEnabled() and window.actions.retry.isEnabled()
    monkeypatch.undo()
    for name in ("slow", "next"):
        write_image(tmp_path, name, base=base_image)  # quick now
    assert run_to_end(qtbot, window, window.actions.retry.trigger).succeeded


@pytest.mark.docker
def test_a_supervisor_that_ends_without_a_word_fails_the_rows(qtbot, window, tmp_path: Path, monkeypatch,
                                                              docker_host: str) -> None:
    """The engine's supervisor thread ending without RunFinished (a bug, put in here on
    purpose): the run ends at once, every row failed with what happened, not "queued"."""
    from gui.pipeline import supervisor

    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    monkeypatch.setattr(supervisor.Pipeline, "_supervise", lambda pipeline: None)
    report = run_to_end(qtbot, window)
    assert status(window, "api").startswith("failed") and report.images[0].status is ev.Status.FAILED
    assert "supervisor stopped unexpectedly" in window.banner.text.text() and not report.cancelled


@pytest.mark.docker
def test_a_push_only_run_that_breaks_keeps_the_build(qtbot, window, registry: Registry, tmp_path: Path,
                                                     monkeypatch) -> None:
    """Retry failed after a failed push pushes again; when that run breaks, the image fails
    as a push (it was failed as a build: the row lost its build and the next Retry rebuilt)."""
    from gui.pipeline import supervisor

    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}], registry=registry.address))
    _push_failed_after_its_build(window)

    def broken_start(pipeline) -> None:
        raise RuntimeError("a bug at the start")

    monkeypatch.setattr(supervisor.Pipeline, "start", broken_start)
    report = run_to_end(qtbot, window, window.actions.retry.trigger)
    [image] = report.images
    assert image.status is ev.Status.FAILED and image.stage is ev.Stage.PUSH
    state = window.model.state(0)
    assert state.failed_stage is ev.Stage.PUSH and state.image_id == "sha256:abc"
    handed = _runs_handed(window, monkeypatch)
    window.actions.retry.trigger()
    qtbot.waitUntil(lambda: bool(handed), timeout=10000)  # after the registry check
    assert list(handed[-1][1].values()) == ["sha256:abc"], "the next Retry builds again"


@pytest.mark.docker
def test_slider_moved_during_run(qtbot, window, registry: Registry, base_image: str, tmp_path: Path) -> None:
    images = []
    for i in range(5):
        write_image(tmp_path, f"s{i}", base=base_image, run="sleep 1")
        images.append({"name": f"s{i}", "context": f"s{i}"})
    open_project(window, write_project(tmp_path, images, registry=registry.address, builders=1, pushers=1))
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT) as finished:
        window.actions.start.trigger()
        qtbot.waitUntil(lambda: status(window, "s0").startswith("building"), timeout=30000)
        window.controls.builders_spin.setValue(3)  # typed into the spin box beside the slider
    report = finished.args[0]
    assert report.succeeded and report.builders == 3
    assert max_concurrent([(i.build.start, i.build.end) for i in report.images]) >= 2


@pytest.mark.docker
def test_closing_during_a_run_cancels_it_first(qtbot, make_window, base_image: str, tmp_path: Path,
                                               monkeypatch) -> None:
    window = make_window()
    write_image(tmp_path, "slow", base=base_image, run="sleep 60")
    open_project(window, write_project(tmp_path, [{"name": "slow", "context": "slow"}]))
    answer_questions(monkeypatch)
    window.actions.start.trigger()
    qtbot.waitUntil(lambda: status(window, "slow").startswith("building step"), timeout=60000)
    pids = window.runs.session.worker_pids()
    window.close()
    assert window.isVisible(), "closed before the run ended"
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=15000)
    assert not window.runs.session.running and wait_until_dead(pids) == []


@pytest.mark.docker
def test_quitting_the_application_ends_the_run_within_seconds(tmp_path: Path, docker_host: str,
                                                              base_image: str) -> None:
    """Log-off or `kill` (SIGTERM, then QApplication.quit()) during a run: the process ends
    within 5 s and leaves no worker behind."""
    write_image(tmp_path, "slow", base=base_image, run="sleep 60")
    path = write_project(tmp_path, [{"name": "slow", "context": "slow"}])
    process = _start_app(tmp_path, path)
    from tests.test_package import _descendants

    deadline = time.monotonic() + 60
    workers: list[int] = []
    while time.monotonic() < deadline and not any(
            Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"/usr/bin/docker") for pid in workers
            if Path(f"/proc/{pid}").exists()):
        time.sleep(0.2)
        workers = _descendants(process.pid)
    assert workers, "the run never started"
    process.send_signal(signal.SIGTERM)
    quit_at = time.monotonic()
    output = process.communicate(timeout=15)[0].decode(errors="replace")
    took = time.monotonic() - quit_at
    assert took < 5, f"the process ended {took:.1f} s after SIGTERM: {output[-3000:]}"
    assert wait_until_dead(workers, 2) == [], output[-3000:]


def test_quitting_during_a_run_while_the_engine_hangs(tmp_path: Path, docker_host: str, base_image: str) -> None:
    """The engine stops answering in the middle of a run (it hangs: stopped here with SIGSTOP),
    then the user logs off. Ending the run needs the engine (the classic builder's container
    is removed through it), and every call to it now waits for its 10 s timeout; the process
    must end within 5 s all the same, leaving no worker behind."""
    write_image(tmp_path, "slow", base=base_image, run="sleep 60")
    path = write_project(tmp_path, [{"name": "slow", "context": "slow"}], build={"backend": "classic"})
    process = _start_app(tmp_path, path)
    from tests.test_package import _descendants

    engine = int((Path(docker_host.removeprefix("unix://")).parent / "docker.pid").read_text())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.rglob("slow.log")):
        time.sleep(0.2)
    log = next(tmp_path.rglob("slow.log"))
    while time.monotonic() < deadline and "Running in" not in log.read_text():
        time.sleep(0.2)  # the build's container runs
    workers = _descendants(process.pid)
    assert workers, "the run never started"
    os.kill(engine, signal.SIGSTOP)
    try:
        process.send_signal(signal.SIGTERM)
        quit_at = time.monotonic()
        try:
            output = process.communicate(timeout=20)[0].decode(errors="replace")
        finally:
            process.kill()
        took = time.monotonic() - quit_at
    finally:
        os.kill(engine, signal.SIGCONT)
    print(f"ended {took:.2f} s after SIGTERM")  # pytest -s
    assert took < 5, f"the process ended {took:.1f} s after SIGTERM: {output[-3000:]}"
    assert wait_until_dead(workers, 2) == [], output[-3000:]
    assert process.returncode == 0, output[-3000:]  # not a crash of Qt's teardown
    assert not list(tmp_path.rglob("running-*.pid")), "the exit was not recorded as clean"


def test_quitting_keeps_what_is_being_typed(qtbot, window, tmp_path: Path) -> None:
    """Log-off or QApplication.quit() asks nothing: a cell still being typed in goes to the
    autosave with the other edits (it used to be lost)."""
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    open_project(window, path)
    type_without_enter(qtbot, window, 0, COL_TAGS, "typed-not-entered")
    waits: list[float] = []
    shutdown = window.runs.shutdown
    window.runs.shutdown = lambda deadline: waits.append(deadline - time.monotonic()) or shutdown(deadline)
    window.prepare_to_quit()
    assert window.close()
    window._application_quits()  # what aboutToQuit calls next
    [recovered] = stored.autosaves(path)
    assert recovered.images[0].tags == ["typed-not-entered"]
    # The run is waited for once (a run slow to end was waited for twice: by the close and
    # again by aboutToQuit).
    assert len(waits) == 1


def _start_app(tmp_path: Path, project: Path, **env: str) -> subprocess.Popen:
    """`python -m gui <project> --start`, its settings, data and logs under tmp_path."""
    environment = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path / "home"),
                   "XDG_CONFIG_HOME": str(tmp_path / "config"), "XDG_DATA_HOME": str(tmp_path / "data"), **env}
    if "DOCKER_HOST" in env:
        environment.pop("DOCKER_CONTEXT", None)
    return subprocess.Popen([sys.executable, "-m", "gui", str(project), "--start"], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def _silent_port() -> Iterator[socket.socket]:
    """A port that accepts connections (the kernel does) and never reads or answers."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        yield silent
    finally:
        silent.close()


def _quit_once_reached(process: subprocess.Popen, silent: socket.socket) -> tuple[float, str]:
    """SIGTERM a second after the app reached `silent`; how long it took to end, and what
    it printed. The connection is held open: a closed one would fail at once, not hang."""
    silent.settimeout(30)
    held = silent.accept()[0]
    try:
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        quit_at = time.monotonic()
        output = process.communicate(timeout=20)[0].decode(errors="replace")
        return time.monotonic() - quit_at, output
    finally:
        process.kill()
        held.close()


def test_quitting_while_the_engine_does_not_answer(tmp_path: Path) -> None:
    """An engine that accepts the connection and never answers keeps the run in its
    pre-flight for 20 s. Quitting then must neither wait for it nor crash."""
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    with _silent_port() as engine:
        process = _start_app(tmp_path, path, DOCKER_HOST=f"tcp://127.0.0.1:{engine.getsockname()[1]}")
        took, output = _quit_once_reached(process, engine)  # the run is connecting to the engine
    assert took < 8, "quitting waited for the engine"
    assert process.returncode == 0, output


def test_quitting_while_the_registry_check_waits(tmp_path: Path) -> None:
    """Start checks the registry first; a registry that accepts and never answers keeps
    that check waiting for its 10 s timeout. Quitting then (log-off, SIGTERM) must not
    wait for it: the process used to outlive its window by about 9 s."""
    write_image(tmp_path, "api")
    with _silent_port() as registry:
        path = write_project(tmp_path, [{"name": "api", "context": "api"}],
                             registry=f"127.0.0.1:{registry.getsockname()[1]}")
        process = _start_app(tmp_path, path)
        took, output = _quit_once_reached(process, registry)  # the check has reached the registry
    assert took < 5, "quitting waited for the registry check"
    assert process.returncode == 0, output
    assert not list(tmp_path.rglob("running-*.pid")), "the exit was not recorded as clean"
    logged = "".join(log.read_text() for log in tmp_path.rglob("dockpool.log"))
    assert "not waited for" in logged, logged[-2000:]


def test_details_never_carry_a_half_typed_line_to_another_image(qtbot, window, tmp_path: Path) -> None:
    """"VERSION" typed for api (no "=" yet), then web selected: the field shows web's build
    args. The old panel kept the text (a line without "=" parses to nothing, like web's
    empty args), and the "=2" typed next gave web VERSION=2."""
    write_image(tmp_path, "api")
    write_image(tmp_path, "web")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"},
                                                  {"name": "web", "context": "web"}]))
    window.tabs.setCurrentWidget(window.details)
    select(window, "api")
    window.details.build_args.setFocus()
    qtbot.keyClicks(window.details.build_args, "VERSION")
    select(window, "web")
    assert window.details.title.text() == "<b>web</b>" and window.details.build_args.toPlainText() == ""
    window.details.build_args.setFocus()
    qtbot.keyClicks(window.details.build_args, "=2")
    assert window.model.image(row_of(window, "web")).build_args == {}
    assert window.model.image(row_of(window, "api")).build_args == {}


def test_save_as_round_trip_then_details_still_edit(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    for name in ("api", "web"):
        write_image(tmp_path / "images", name)
    open_project(window, write_project(tmp_path, [{"name": n, "context": f"images/{n}"} for n in ("api", "web")]))
    select(window, "web")
    window.actions.remove.trigger()
    select(window, "api")
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "copy.toml"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(target), ""))
    window.actions.save_as.trigger()
    assert not window.document.modified and window.windowTitle().startswith("copy.toml")
    # The selection and Details survive the save (they used to be dropped)...
    assert window.table.selected_uids() == [window.model.uid(0)] and window.details.title.text() == "<b>api</b>"
    # ...and undo brings back the removed image with its path rebased to the new folder.
    window.actions.undo.trigger()
    assert window.model.image(1).context == "../images/web" and window.model.problems(1) == []
    window.actions.redo.trigger()
    window.tabs.setCurrentWidget(window.details)
    window.details.target.setFocus()
    qtbot.keyClicks(window.details.target, "base")
    assert window.model.image(0).target == "base" and window.document.modified
    qtbot.keyClicks(window.details.build_args, "ABC=1")
    assert window.model.image(0).build_args == {"ABC": "1"}
    qtbot.keyClick(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # no Enter first
    again = load(target, strict=False)
    assert [image.context for image in again.images] == ["../images/api"]
    assert (again.images[0].target, again.images[0].build_args) == ("base", {"ABC": "1"})


def test_what_is_typed_is_what_is_saved_and_asked_about(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    open_project(window, path)
    # A table cell still being edited when Ctrl+S is pressed.
    type_without_enter(qtbot, window, 0, COL_TAGS, "v9")
    window.actions.save.trigger()
    assert load(path).images[0].tags == ["v9"]
    # Typing into the registry field and closing with the window's X: the prompt comes.
    window.controls.registry.setFocus()
    qtbot.keyClicks(window.controls.registry, "localhost:5000")
    asked = answer_questions(monkeypatch, QMessageBox.StandardButton.Cancel)
    window.close()
    assert asked and "unsaved changes" in asked[0] and window.isVisible()
    # An edit that changes nothing marks nothing.
    window.document.undo.setClean()
    assert not window.model.setData(window.model.index(0, COL_NAME), "api")
    assert not window.document.modified


def test_undo_redo_and_typing_never_overwrites(qtbot, window, tmp_path: Path) -> None:
    for name in ("api", "web", "db"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": n, "context": n} for n in ("api", "web", "db")]))
    window.table.setFocus()
    window.table.setCurrentIndex(window.table.filter.index(0, COL_NAME))
    qtbot.keyClicks(window.table, "w")  # a stray key: a search, never an edit
    assert window.model.image(0).name == "api" and not window.document.modified
    window.document.edit(window.model.uid(0), "tags", ["1.0"])
    select(window, "web")
    window.actions.remove.trigger()
    assert [window.model.image(r).name for r in range(window.model.rowCount())] == ["api", "db"]
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert [window.model.image(r).name for r in range(window.model.rowCount())] == ["api", "web", "db"]
    window.actions.undo.trigger()
    assert window.model.image(0).tags == ["latest"] and not window.document.modified
    window.actions.redo.trigger()
    assert window.model.image(0).tags == ["1.0"] and window.document.modified


def test_typing_a_field_back_to_what_it_was_leaves_the_project_unmodified(qtbot, window, tmp_path: Path) -> None:
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    select(window, "api")
    window.tabs.setCurrentWidget(window.details)
    window.details.target.setFocus()
    qtbot.keyClicks(window.details.target, "x")
    assert window.document.modified
    qtbot.keyClick(window.details.target, Qt.Key.Key_Backspace)
    assert not window.document.modified and not window.actions.undo.isEnabled()
    assert window.model.image(0).target in ("", None)


def test_redoing_a_removal_with_a_later_row_selected(qtbot, window, tmp_path: Path) -> None:
    """Remove a row, undo, select the last row, redo: the rows after the removed one move
    up while the window looks them up (this raised IndexError in the details panel)."""
    for name in ("api", "web", "db"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": n, "context": n} for n in ("api", "web", "db")]))
    select(window, "api")
    window.actions.remove.trigger()
    window.actions.undo.trigger()
    select(window, "db")
    window.actions.redo.trigger()
    assert [window.model.image(r).name for r in range(window.model.rowCount())] == ["web", "db"]
    assert window.details.target.text() == "" and window.table.selected_uids() == [
        window.model.uid(row_of(window, "db"))]
    assert window.details.uid == window.model.uid(row_of(window, "db"))


def test_duplicate_flags_follow_removed_and_restored_rows(qtbot, window, tmp_path: Path) -> None:
    """Duplicate-reference problems belong to rows, not row numbers: removing a row and
    undoing it moves the flag with the rows (this crashed and left stale flags before)."""
    write_image(tmp_path, "a")
    names = ["dup", "other", "dup", "dup", "z"]
    open_project(window, write_project(tmp_path, [{"name": n, "context": "a"} for n in names]))

    def flagged() -> list[str]:
        return [f"{window.model.image(r).name}{r}" for r in range(window.model.rowCount())
                if any("duplicate reference" in p for p in window.model.problems(r))]

    assert flagged() == ["dup2", "dup3"]
    window.select_row(0)
    window.actions.remove.trigger()
    assert flagged() == ["dup2"]  # the first "dup" left: the next one is now the original
    window.select_row(2)
    window.actions.remove.trigger()
    assert flagged() == [] and window.model.invalid_enabled_rows() == []
    window.actions.undo.trigger()
    window.actions.undo.trigger()
    assert flagged() == ["dup2", "dup3"]


def test_filter_sort_and_failed_only(qtbot, window, tmp_path: Path) -> None:
    for name in ("zeta", "alpha", "mid"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": n, "context": n} for n in ("zeta", "alpha", "mid")]))
    header = window.table.horizontalHeader()
    at = QPoint(header.sectionViewportPosition(COL_NAME) + 10, header.height() // 2)

    def shown() -> list[str]:
        return [window.table.filter.index(r, COL_NAME).data() for r in range(window.table.filter.rowCount())]

    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=at)  # a click on the Name header
    assert shown() == ["alpha", "mid", "zeta"]
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert shown() == ["zeta", "mid", "alpha"]
    qtbot.mouseClick(header.viewport(), Qt.MouseButton.LeftButton, pos=at)
    window.table.selectRow(0)  # the view's first row is the model's second
    window._refresh()
    assert window.details.title.text() == "<b>alpha</b>"
    qtbot.keyClicks(window.filter, "ze")
    assert window.table.filter.rowCount() == 1
    window.filter.clear()
    state = window.model.state(row_of(window, "mid"))
    state.status, state.error_kind = ev.Status.FAILED, "network"
    window.actions.failed_only.trigger()
    assert [window.table.filter.index(r, COL_NAME).data() for r in range(window.table.filter.rowCount())] == ["mid"]
    window.actions.failed_only.trigger()


def test_invalid_project_file_keeps_the_current_project(qtbot, window, tmp_path: Path) -> None:
    write_image(tmp_path, "api")
    good = write_project(tmp_path, [{"name": "api", "context": "api"}])
    open_project(window, good)
    bad = tmp_path / "bad.toml"
    bad.write_text("[registry\nurl = 1")
    assert not window.files.open_path(bad, confirmed=True)
    box = window.findChild(QMessageBox, "open-error")
    assert box is not None and "TOML syntax error" in box.informativeText()
    box.close()
    assert window.document.path == good and window.model.rowCount() == 1


def test_start_refused_for_invalid_rows(qtbot, window, tmp_path: Path) -> None:
    write_image(tmp_path, "api")
    path = tmp_path / "p.toml"
    path.write_text('[[image]]\nname = "Bad Name"\ncontext = "api"\n[[image]]\nname = "ok"\ncontext = "api"\n')
    open_project(window, path)
    window.actions.start.trigger()
    box = window.findChild(QMessageBox, "start-refused")
    assert box is not None and "Bad Name" in box.informativeText()
    box.close()
    assert not window.runs.session.running


def test_dropped_folders_and_bulk_edits(qtbot, window, tmp_path: Path) -> None:
    repo = images_folder(tmp_path, ["one", "two", "three"])
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(repo))])
    drop = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    empty = window.table.viewport().grab().toImage()
    window.table.dropEvent(drop)
    qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=10000)
    # The empty table said where to drop (text in the middle of its viewport).
    middle = [empty.pixelColor(x, empty.height() // 2 + dy).rgb() for x in range(empty.width()) for dy in (-8, 0, 8)]
    assert len(set(middle)) > 2, "the empty table shows no hint"
    # Adding is one undo step, and so is a duplicate.
    qtbot.keyClick(window.table, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert window.model.rowCount() == 0
    window.actions.redo.trigger()
    assert window.model.rowCount() == 3
    window.table.selectAll()
    window.actions.disable.trigger()
    assert not any(window.model.image(r).enabled for r in range(3))
    window.actions.enable.trigger()
    window.actions.duplicate.trigger()
    assert window.model.rowCount() == 6 and window.model.image(3).name.endswith("-2")
    window.actions.undo.trigger()
    assert window.model.rowCount() == 3


def _drag_and_drop(window, folder: Path) -> bool:
    """A folder dragged onto the table and dropped: whether the table took the drag."""
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(folder))])
    enter = QDragEnterEvent(QPoint(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window.table.viewport(), enter)
    drop = QDropEvent(QPoint(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(window.table.viewport(), drop)
    return enter.isAccepted()


@pytest.mark.docker
def test_during_a_run_folders_cannot_be_dropped(qtbot, window, base_image: str, tmp_path: Path) -> None:
    """Add image and Add folder are disabled during a run; a drop added the folders all the same."""
    write_image(tmp_path / "project", "slow", base=base_image, run="sleep 30")
    open_project(window, write_project(tmp_path / "project", [{"name": "slow", "context": "slow"}]))
    more = images_folder(tmp_path, ["one", "two"])
    with qtbot.waitSignal(window.runFinished, timeout=RUN_TIMEOUT):
        window.actions.start.trigger()
        qtbot.waitUntil(lambda: status(window, "slow").startswith("building"), timeout=60000)
        assert not _drag_and_drop(window, more), "the table took a drag during a run"
        assert wait_for_background()  # a folder scan, had the drop started one, has ended
        QApplication.processEvents()  # and its rows would be in
        assert window.model.rowCount() == 1
        window.actions.cancel.trigger()
    assert _drag_and_drop(window, more)
    qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=10000)


def test_delete_removes_images_only_from_the_table(qtbot, window, tmp_path: Path) -> None:
    """Delete pressed with the log (or any other part) focused removed the selected images."""
    for name in ("api", "web"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": n, "context": n} for n in ("api", "web")]))
    select(window, "web")
    window.tabs.setCurrentWidget(window.log)
    window.log.text.setFocus()
    qtbot.keyClick(window.log.text, Qt.Key.Key_Delete)
    assert window.model.rowCount() == 2, "Delete in the log removed an image"
    window.table.setFocus()
    qtbot.keyClick(window.table, Qt.Key.Key_Delete)
    assert [window.model.image(r).name for r in range(window.model.rowCount())] == ["api"]


def test_a_folder_scan_that_ends_after_a_new_project_adds_nothing_to_it(qtbot, window, tmp_path: Path,
                                                                        monkeypatch) -> None:
    """A big tree takes a while to scan: if the user opened or started another project
    meanwhile, the images found belong to the old one and must not land in the new one."""
    import threading

    import gui.window.project_files as project_files

    repo = images_folder(tmp_path, ["one", "two"])
    scanning, release = threading.Event(), threading.Event()
    real = project_files.find_images

    def slow_scan(*args, **kwargs):  # the real scan, after the user has moved on
        scanning.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(project_files, "find_images", slow_scan)
    window.files.add_folders([repo])
    qtbot.waitUntil(scanning.is_set, timeout=5000)
    window.actions.new.trigger()
    release.set()
    qtbot.waitUntil(lambda: "nothing added" in window.statusBar().currentMessage(), timeout=10000)
    assert window.model.rowCount() == 0 and not window.document.modified


def test_a_disabled_row_cannot_be_built_alone(qtbot, window, tmp_path: Path) -> None:
    """A run takes enabled images only: "Build or retry this image" on a disabled row left
    it "queued" for good."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api", "enabled": False}]))
    select(window, "api")
    window._update_actions()
    assert not window.actions.build_selected.isEnabled()
    window.runs.build_one(window.model.uid(0))
    assert not window.runs.busy and window.model.state(0).status is None


def test_typing_build_args_reads_no_dockerfile_again(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    """Every keystroke in Build args is an edit and revalidates: only the edited row, and
    from the parsed-Dockerfile cache (it re-read and re-parsed every Dockerfile and
    re-ran a pairwise duplicate check: 208 ms per keystroke at 1,000 rows)."""
    from gui.pipeline import dockerfile

    repo = images_folder(tmp_path, [f"svc{i:02d}" for i in range(40)])
    open_project(window, write_project(repo, [{"name": f"svc{i:02d}", "context": f"services/svc{i:02d}"}
                                              for i in range(40)]))
    reads: list[Path] = []
    real = dockerfile.read
    monkeypatch.setattr(dockerfile, "read", lambda path: reads.append(path) or real(path))
    select(window, "svc07")
    window.tabs.setCurrentWidget(window.details)
    window.details.build_args.setFocus()
    qtbot.keyClicks(window.details.build_args, "VERSION=1.2")
    assert window.model.image(row_of(window, "svc07")).build_args == {"VERSION": "1.2"}
    assert reads == [], f"{len(reads)} Dockerfile reads for 11 keystrokes"


def test_a_log_that_cannot_be_saved_says_why(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    """Save log to a folder that refuses it (read-only, or the file open elsewhere on
    Windows): a message names the file and the reason; nothing is lost silently."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    log_file = tmp_path / "api.log"
    log_file.write_text("step 1\nstep 2\n")
    window.log.show_image("api", "api", [log_file], 2)
    target = tmp_path / "no-such-folder" / "saved.log"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), ""))
    warned: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text, *rest: warned.append(text))
    with qtbot.waitSignal(window.log.saveFailed, timeout=5000):
        next(b for b in window.log.findChildren(QPushButton) if b.text() == "Save log…").click()
    assert warned and str(target) in warned[0] and "No such file or directory" in warned[0]


def test_the_log_says_when_it_shows_only_the_last_lines(qtbot, window, tmp_path: Path) -> None:
    """One run's log of 30,000 lines shows its last 20,000 and says so (the old view
    compared a list already cut to 20,000 and never said it); logs of two runs are shown
    one after the other, each later run's lines under a line naming its folder."""
    big = tmp_path / "run-1" / "api.log"
    big.parent.mkdir()
    big.write_text("".join(f"line {n}\n" for n in range(30_000)))
    window.log.show_image("api", "api", [big], 30_000)
    shown = window.log.text.plain_text().splitlines()
    assert shown[0] == "line 10000" and shown[-1] == "line 29999"
    assert "last 20,000 lines" in window.log.title.text()
    second = tmp_path / "run-2" / "api.log"
    second.parent.mkdir()
    second.write_text("again 1\nagain 2\n")
    small = tmp_path / "run-0" / "api.log"
    small.parent.mkdir()
    small.write_text("first 1\n")
    not_yet = tmp_path / "run-3" / "api.log"  # a run that has started: its file comes with its first line
    window.log.show_image("api", "api", [small, second, not_yet], 0)
    assert window.log.text.plain_text().splitlines() == ["first 1", "--- run-2 ---", "again 1", "again 2"]
    assert window.log.title.text() == "<b>Log — api</b>"
    # Followed live past what the view keeps: it says so too (only a read said it).
    live = tmp_path / "run-4" / "api.log"
    live.parent.mkdir()
    live.write_text("".join(f"old {n}\n" for n in range(19_990)))
    window.log.show_image("api", "api", [live], 19_990)
    assert "last 20,000" not in window.log.title.text()
    window.log.append_records([ev.LogLine("api", ev.Stage.BUILD, "\n".join(f"new {n}" for n in range(20)))])
    assert window.log.text.line_count() == 20_000 and "last 20,000 lines" in window.log.title.text()


def test_the_log_tab_names_its_image_and_saves_under_a_file_name(qtbot, window, tmp_path: Path,
                                                                 monkeypatch) -> None:
    save = next(b for b in window.log.findChildren(QPushButton) if b.text() == "Save log…")
    log_tab = window.tabs.indexOf(window.log)
    assert not save.isEnabled() and window.tabs.tabText(log_tab) == "&Log"  # nothing selected: nothing to save
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "team/api", "context": "api", "tags": ["1.0"]}]))
    select(window, "team/api")
    assert window.tabs.tabText(log_tab) == "&Log — team/api"
    not_yet = tmp_path / "run-2" / "team_api_1.0.log"  # queued: its file comes with its first line
    window.log.show_image("team/api:1.0", "team/api", [not_yet], 0)
    assert not save.isEnabled()
    log_file = tmp_path / "team_api_1.0.log"
    log_file.write_text("step 1\nstep 2\n")
    pruned = tmp_path / "run-0" / "team_api_1.0.log"  # an older run's folder, removed since
    window.log.show_image("team/api:1.0", "team/api", [pruned, log_file], 2)  # a key with "/" and ":"
    assert save.isEnabled()
    suggested: list[str] = []
    target = tmp_path / "saved.log"

    def ask(parent, caption, directory, *rest):
        suggested.append(directory)
        return str(target), ""

    monkeypatch.setattr(QFileDialog, "getSaveFileName", ask)
    with qtbot.waitSignal(window.log.saved, timeout=5000):
        save.click()
    assert Path(suggested[0]).parent == Path.home(), "the suggested file lies in a subfolder named after the key"
    assert target.read_text() == "step 1\nstep 2\n"


def test_shift_enter_searches_the_log_only_from_its_search_box(qtbot, window, tmp_path: Path) -> None:
    """Shift+Enter in the registry field (or a cell editor) is that field's key; it used to
    search the log backwards from anywhere in the window."""
    write_image(tmp_path, "api")
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"}]))
    log_file = tmp_path / "api.log"
    log_file.write_text("needle one\nhay\nneedle two\n")
    window.log.show_image("api", "api", [log_file], 3)
    window.tabs.setCurrentWidget(window.log)
    window.log.search.setText("needle")
    window.controls.registry.setFocus()
    qtbot.keyClick(window.controls.registry, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert window.log.text.selection() is None
    window.log.search.setFocus()
    qtbot.keyClick(window.log.search, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
    assert window.log.text.selected_text() == "needle"
    assert window.log.text.selection() == ((2, 0), (2, 6))


def test_typing_a_limit_counts_once_it_is_typed(qtbot, window) -> None:
    """Typing 12 into Builders sets 12, not 1 then 12 (during a run, 1 would retire
    workers at once)."""
    spin = window.controls.builders_spin
    spin.setFocus()
    spin.selectAll()
    with qtbot.assertNotEmitted(window.controls.limitsChanged):
        qtbot.keyClicks(spin, "12")
    with qtbot.waitSignal(window.controls.limitsChanged) as moved:
        qtbot.keyClick(spin, Qt.Key.Key_Return)
    assert moved.args[0] == 12 and window.document.project.builders == 12


_EDITING_ELSEWHERE = """
import sys, time
from pathlib import Path
from PySide6.QtCore import QCoreApplication, QStandardPaths
QStandardPaths.setTestModeEnabled(True)
QCoreApplication.setOrganizationName(sys.argv[2])
QCoreApplication.setApplicationName(sys.argv[3])
from gui.pipeline import project as projects
from gui.window import settings as stored
path = Path(sys.argv[1])
project = projects.load(path)
project.images[0].tags = ["recovered"]
slot = stored.claim_autosave(path)
slot.write(project)
print("autosaved", flush=True)
time.sleep(600)
"""


def _another_dockpool_editing(path: Path, started: list[subprocess.Popen]) -> None:
    """Another Dockpool process with unsaved edits of `path`, autosaved as a window's timer
    does (the same calls, the same settings folder), added to `started` before it is
    waited for (the caller kills it: that is the crash)."""
    process = subprocess.Popen([sys.executable, "-c", _EDITING_ELSEWHERE, str(path),
                                QApplication.organizationName(), QApplication.applicationName()],
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, text=True)
    started.append(process)
    assert process.stdout is not None
    with process.stdout:
        assert io_select.select([process.stdout], [], [], 60)[0], "the other process never autosaved"
        assert process.stdout.readline().strip() == "autosaved"


def test_crash_recovery_per_project(qtbot, make_window, tmp_path: Path, monkeypatch) -> None:
    """Edits left by a crash are offered whenever that project is opened (double-click
    included); another window's, while it is open, are neither offered nor deleted (a window
    offered them, and answering No deleted them), and no window closing deletes them."""
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    editing: list[subprocess.Popen] = []
    try:
        _another_dockpool_editing(path, editing)
        asked = answer_questions(monkeypatch, QMessageBox.StandardButton.No)
        other = make_window()
        open_project(other, path)
        assert not asked, "a live window's edits were offered as a crash's"
        assert "Another Dockpool window has unsaved changes" in other.statusBar().currentMessage()
        other.document.edit(other.model.uid(0), "tags", ["mine"])
        other.document.autosave()  # its own, beside the other window's
        assert sorted(p.images[0].tags[0] for p in stored.autosaves(path)) == ["mine", "recovered"]
        other.document.undo.setClean()
        other.close()  # closing deletes its own only
        assert [p.images[0].tags for p in stored.autosaves(path)] == [["recovered"]]
    finally:
        for process in editing:
            process.kill()  # the crash
            process.wait()
    asked = answer_questions(monkeypatch)
    reopened = make_window()
    open_project(reopened, path)
    assert asked and "Recover" in asked[0]
    assert reopened.model.image(0).tags == ["recovered"] and reopened.document.modified
    # Each untitled window autosaves on its own: an unmodified one closing leaves the other's alone.
    untitled = make_window()
    untitled.document.add([ImageSpec(name="draft", context=str(tmp_path / "api"))], "Add")
    untitled.document.autosave()
    make_window().close()
    assert len(stored.autosaves(None)) == 1
    # Nor does another untitled window that is saved under a name (it used to delete
    # the untitled autosave, whoever had written it).
    another = make_window()
    another.document.add([ImageSpec(name="sketch", context=str(tmp_path / "api"))], "Add")
    another.document.autosave()  # two untitled windows: each its own autosave
    assert sorted(p.images[-1].name for p in stored.autosaves(None)) == ["draft", "sketch"]
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "sketch.toml"), ""))
    another.actions.save_as.trigger()
    assert another.windowTitle().startswith("sketch.toml")
    [kept] = stored.autosaves(None)
    assert [image.name for image in kept.images] == ["draft"]


@pytest.mark.docker
def test_log_in_runs_off_the_gui_thread(qtbot, window, auth_registry: Registry, monkeypatch) -> None:
    from gui.window.login_dialog import LoginDialog

    def fill(dialog: LoginDialog) -> int:
        dialog.username.setText("dockpool")
        dialog.password.setText("secret-pass")
        return LoginDialog.DialogCode.Accepted

    from gui.pipeline import credentials

    threads: list[threading.Thread] = []
    real_login = credentials.login

    def login(*args, **kwargs):  # the real login, noting the thread it runs on
        threads.append(threading.current_thread())
        return real_login(*args, **kwargs)

    monkeypatch.setattr(credentials, "login", login)
    monkeypatch.setattr(LoginDialog, "exec", fill)
    window.controls.registry.setText(f"{auth_registry.address}/team")  # a login is the host's, as Docker keeps it
    window.controls.login.click()
    # Back from the click at once: the registry is being asked, Log in waits for its answer.
    assert "Logging in to" in window.statusBar().currentMessage() and not window.controls.login.isEnabled()
    qtbot.waitUntil(lambda: "Logged in to" in window.statusBar().currentMessage(), timeout=20000)
    assert threads and threads[0] is not threading.main_thread()
    assert window.controls.login.isEnabled()
    config = json.loads((Path(os.environ["DOCKER_CONFIG"]) / "config.json").read_text())
    assert list(config["auths"]) == [auth_registry.address]


@pytest.mark.docker
def test_a_login_that_cannot_be_stored_says_so(qtbot, window, auth_registry: Registry, monkeypatch) -> None:
    """The registry accepted the login, but Docker's config file is not JSON (edited by
    hand): the box says the login could not be stored and names the file, not that the
    registry refused it."""
    from gui.window.login_dialog import LoginDialog

    config = Path(os.environ["DOCKER_CONFIG"]) / "config.json"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text('{"auths": {', encoding="utf-8")

    def fill(dialog: LoginDialog) -> int:
        dialog.username.setText("dockpool")
        dialog.password.setText("secret-pass")
        return LoginDialog.DialogCode.Accepted

    monkeypatch.setattr(LoginDialog, "exec", fill)
    window.controls.registry.setText(auth_registry.address)
    window.controls.login.click()
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "login-error") is not None, timeout=20000)
    box = window.findChild(QMessageBox, "login-error")
    assert "could not be stored" in box.text() and "refused" not in box.text(), box.text()
    assert str(config) in box.informativeText(), box.informativeText()
    assert config.read_text(encoding="utf-8") == '{"auths": {', "the user's file was changed"
    box.close()


def test_log_in_says_which_registry_the_login_goes_to(qtbot, window, monkeypatch) -> None:
    """A registry field of one word is a Docker Hub namespace, as Docker reads "myteam/api":
    the login goes to Docker Hub, and the dialog says so rather than "Registry: myteam".
    With a host, the login is the host's (a path after it is no part of a login)."""
    from gui.window.login_dialog import LoginDialog

    shown: list[str] = []

    def look(dialog: LoginDialog) -> int:
        shown.append(" ".join(label.text() for label in dialog.findChildren(QLabel)))
        return LoginDialog.DialogCode.Rejected

    monkeypatch.setattr(LoginDialog, "exec", look)
    for registry in ("myteam", "registry.example.com:5000/team"):
        window.controls.registry.setText(registry)
        window.controls.login.click()
    assert "Docker Hub" in shown[0] and "myteam" in shown[0] and "namespace" in shown[0], shown[0]
    assert "registry.example.com:5000" in shown[1] and "/team" not in shown[1], shown[1]


def _use_row_menu(qtbot, window, name: str, choice: str) -> list[tuple[str, bool]]:
    """Right-click `name`'s row, pick `choice` (its text without the &) with the keyboard;
    returns what the menu offered (text, enabled)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QContextMenuEvent

    offered: list[tuple[str, bool]] = []
    problems: list[str] = []

    def pick() -> None:
        menu = QApplication.activePopupWidget()
        if menu is None or menu.objectName() != "row-menu":
            problems.append(f"no row menu opened ({menu!r})")
            if menu is not None:
                menu.close()
            return
        offered.extend((act.text().replace("&", ""), act.isEnabled()) for act in menu.actions()
                       if not act.isSeparator())
        wanted = [act for act in menu.actions() if act.text().replace("&", "") == choice]
        if not wanted:
            problems.append(f"{choice!r} is not in the menu")
            menu.close()  # never left open: menu.exec would wait for ever
            return
        menu.setActiveAction(wanted[0])
        qtbot.keyClick(menu, Qt.Key.Key_Return)

    table = window.table
    index = table.filter.mapFromSource(window.model.index(row_of(window, name), COL_NAME))
    where = table.visualRect(index).center()
    QTimer.singleShot(0, pick)
    # What a right-click is on X11 and Wayland: the press, then the context menu event
    # the platform sends for it (QTest sends the mouse events only), then the release.
    qtbot.mousePress(table.viewport(), Qt.MouseButton.RightButton, pos=where)
    QApplication.sendEvent(table.viewport(), QContextMenuEvent(QContextMenuEvent.Reason.Mouse, where,
                                                               table.viewport().mapToGlobal(where)))
    qtbot.mouseRelease(table.viewport(), Qt.MouseButton.RightButton, pos=where)
    assert not problems, problems
    assert offered, "no context menu opened on the right-click"
    return offered


@pytest.mark.qt_log_ignore("This plugin does not support")  # offscreen: no keyboard grab for popups
def test_row_context_menu_acts_on_the_row_it_was_opened_on(qtbot, window, tmp_path: Path) -> None:
    from PySide6.QtCore import QObject, Slot
    from PySide6.QtGui import QDesktopServices

    class Opened(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.urls: list[str] = []

        @Slot(QUrl)
        def open(self, url: QUrl) -> None:
            self.urls.append(url.toLocalFile())

    for name in ("api", "web"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": "api", "context": "api"},
                                                  {"name": "web", "context": "web", "tags": ["2.0"]}],
                                       registry="localhost:5000"))
    select(window, "api")
    offered = _use_row_menu(qtbot, window, "web", "Copy image reference")
    assert window.table.selected_uids() == [window.model.uid(row_of(window, "web"))], "not the row right-clicked"
    assert QGuiApplication.clipboard().text() == "localhost:5000/web:2.0"
    assert [text for text, _ in offered] == [
        "Build or retry this image", "Cancel this image", "Show in file manager", "Open Dockerfile",
        "Copy image reference", "Copy digest", "Copy error", "Duplicate", "Enable", "Disable", "Remove"]
    assert dict(offered)["Build or retry this image"] and not dict(offered)["Cancel this image"]
    _use_row_menu(qtbot, window, "web", "Copy digest")
    assert window.statusBar().currentMessage() == "Nothing to copy (digest)"
    opened = Opened()
    QDesktopServices.setUrlHandler("file", opened, "open")
    try:
        _use_row_menu(qtbot, window, "api", "Show in file manager")
        _use_row_menu(qtbot, window, "api", "Open Dockerfile")
    finally:
        QDesktopServices.unsetUrlHandler("file")
    assert opened.urls == [str(tmp_path / "api"), str(tmp_path / "api" / "Dockerfile")]
    _use_row_menu(qtbot, window, "api", "Duplicate")
    assert [window.model.image(r).name for r in range(window.model.rowCount())][-1].startswith("api")
    assert window.model.rowCount() == 3


def test_keyboard_and_screen_readers(window) -> None:
    labels = {label.text(): label.buddy() for label in window.controls.findChildren(type(window.progress.counts))
              if label.buddy() is not None}
    assert labels["&Registry"] is window.controls.registry
    # Alt+letter of every menu, tab, label and button of the window is its own.
    texts = [action.text() for action in window.menuBar().actions()]
    texts += [window.tabs.tabText(i) for i in range(window.tabs.count())]
    texts += [widget.text() for kind in (type(window.progress.counts), QPushButton, QToolButton)
              for widget in window.controls.findChildren(kind)]
    texts += [label.text() for label in window.findChildren(type(window.progress.counts)) if label.buddy() is window.filter]
    keys = [text[text.index("&") + 1].lower() for text in texts if "&" in text]
    assert len(keys) == len(set(keys)), sorted(texts)
    assert labels["&Builders"] is window.controls.builders_spin
    assert window.actions.start.shortcut().toString() == "F5"
    assert window.actions.cancel.shortcut().toString() == "Shift+F5"
    for widget in (window.controls.registry, window.controls.builders, window.controls.pushers, window.table,
                   window.filter, window.log.text, window.controls.login):
        assert widget.accessibleName(), widget
    assert window.controls.login.text() == "L&og in…"  # the tool button keeps its mnemonic
    window.controls.builders.setValue(7)
    assert window.controls.builders_spin.value() == 7


def test_closing_with_discard_leaves_nothing_to_recover(qtbot, make_window, tmp_path: Path, monkeypatch) -> None:
    """Discard, then the application quits (the last window closed): quitting autosaved the
    discarded edits again, and the next start offered them back."""
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    window = make_window()
    open_project(window, path)
    window.document.edit(window.model.uid(0), "tags", ["discarded"])
    window.document.autosave()
    assert stored.autosaves(path)
    answer_questions(monkeypatch, QMessageBox.StandardButton.Discard)
    assert window.close()
    window._application_quits()  # what aboutToQuit calls next
    assert stored.autosaves(path) == []
    # Undoing back to the file leaves nothing either.
    again = make_window()
    open_project(again, path)
    again.document.edit(again.model.uid(0), "tags", ["undone"])
    again.document.autosave()
    again.actions.undo.trigger()
    again.document.autosave()
    assert stored.autosaves(path) == []


def test_alt_keys_reach_the_fields_their_labels_name(qtbot, window) -> None:
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.activeWindow() is window)
    for key, field in ((Qt.Key.Key_R, window.controls.registry), (Qt.Key.Key_B, window.controls.builders_spin),
                       (Qt.Key.Key_U, window.controls.pushers_spin)):
        window.table.setFocus()
        qtbot.keyClick(window.table, key, Qt.KeyboardModifier.AltModifier)
        assert QApplication.focusWidget() is field or QApplication.focusWidget().parent() is field, key


def test_a_dark_system_gets_a_style_that_draws_dark(qapp) -> None:
    """Windows 10's default style (windowsvista) draws light whatever the system says; the
    plain Windows style, which Linux has too, behaves the same and stands in for it."""
    from gui.window.app import app_icon, follow_colour_scheme

    before = qapp.style().name()
    qapp.setStyle("Windows")
    hints = qapp.styleHints()
    apply = follow_colour_scheme(qapp)
    try:
        assert qapp.style().name().lower() == "windows"  # the system is not dark: nothing changes
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # the user switches the system to dark
        assert qapp.style().name().lower() == "fusion"
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)  # and back
        assert qapp.style().name().lower() == "windows"
    finally:
        hints.colorSchemeChanged.disconnect(apply)
        qapp.setStyle(before)
    # A style that draws dark by itself is left alone.
    apply = follow_colour_scheme(qapp)
    try:
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert qapp.style().name() == before
    finally:
        hints.colorSchemeChanged.disconnect(apply)
    sizes = {size.width() for size in app_icon().availableSizes()}
    assert {16, 32, 256} <= sizes, sizes


def test_dark_palette_gives_readable_colours(qtbot, window, tmp_path: Path) -> None:
    from gui.window import theme

    light = QGuiApplication.palette()
    dark = QPalette(light)
    for role, colour in ((QPalette.ColorRole.Window, "#202124"), (QPalette.ColorRole.Base, "#1b1b1d"),
                         (QPalette.ColorRole.Text, "#e8e8e8")):
        dark.setColor(role, colour)
    assert theme.is_dark(dark) and not theme.is_dark(light)
    assert theme.error_text(dark).lightness() > 128 > theme.error_text(light).lightness()
    # The system switches to dark while the window is open: what is tinted follows (the
    # registry field, the Details problems and the log's error lines kept light colours).
    open_project(window, write_project(tmp_path, [{"name": "gone", "context": "no-such-folder"}]))
    select(window, "gone")
    log_file = tmp_path / "gone.log"
    log_file.write_text(format_line("build", "it broke", error=True) + "\n")
    window.log.show_image("gone", "gone", [log_file], 1)
    qtbot.keyClicks(window.controls.registry, "Bad Registry")

    def colours() -> tuple[QColor, QColor]:
        problems = window.details.problems
        return problems.palette().color(problems.foregroundRole()), window.log.text.line_colour(0)

    assert window.details.problems.text() and all(c.lightness() < 128 for c in colours())
    QApplication.setPalette(dark)
    try:
        QApplication.processEvents()
        tint = QColor(window.controls.registry.styleSheet().split("background: ")[1].split(";")[0])
        assert tint.lightness() < 100, "the invalid registry field kept its light-scheme tint"
        qtbot.waitUntil(lambda: all(c.lightness() > 128 for c in colours()), timeout=2000)  # problems, error lines
        window.grab().save(str(tmp_path / "dark.png"))
    finally:
        QApplication.setPalette(light)
    hard_coded = [path.name for path in (Path(__file__).parents[1] / "gui" / "window").glob("*.py")
                  if path.name != "theme.py" and '"#' in path.read_text()]
    assert hard_coded == [], f"colours outside theme.py: {hard_coded}"


def test_layout_is_remembered(qtbot, make_window) -> None:
    first = make_window()
    first.resize(700, 500)  # within the offscreen screen (800 x 600)
    first.tabs.setCurrentWidget(first.timeline)
    first.table.horizontalHeader().resizeSection(COL_NAME, 311)
    total = sum(first.splitter.sizes())
    first.splitter.setSizes([total - 250, 250])
    sizes = first.splitter.sizes()
    first.close()
    second = make_window()
    assert second.tabs.currentWidget() is second.timeline
    assert second.table.horizontalHeader().sectionSize(COL_NAME) == 311
    assert second.size() == first.size() and second.splitter.sizes() == sizes


def test_timeline_scrolls_for_many_images(qtbot, window, tmp_path: Path) -> None:
    write_image(tmp_path, "a")
    open_project(window, write_project(tmp_path, [{"name": f"img{i:03d}", "context": "a"} for i in range(100)]))
    window.tabs.setCurrentWidget(window.timeline)
    QApplication.processEvents()
    assert window.timeline.view.height() > window.timeline.viewport().height()
    assert window.timeline.verticalScrollBar().maximum() > 0


def test_each_painted_cell_shows_what_the_model_holds(window, tmp_path: Path) -> None:
    """The table paints a cell from one multiData() call through the filter (Qt's default
    asks data() once per role, through Python each time): what the delegate gets for a
    cell must be what data() says, role by role, in sorted order and for every kind of
    row (failed, invalid, disabled)."""
    from PySide6.QtWidgets import QStyledItemDelegate, QStyleOptionViewItem

    for name in ("alpha", "beta", "gamma"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": "alpha", "context": "alpha"},
                                                  {"name": "beta", "context": "missing-folder"},
                                                  {"name": "gamma", "context": "gamma"}]))
    model = window.model
    model.setData(model.index(2, 0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    uids = [model.uid(row) for row in range(3)]
    model.start_rows(uids[:2], [], {})
    failure = ev.Failure(ev.FailureKind.BUILD_STEP, "the step failed", "fix the step")
    model.apply_events([ev.BuildFailed("alpha", failure)], {"alpha": uids[0]})
    window.table.sortByColumn(COL_NAME, Qt.SortOrder.DescendingOrder)
    shown = window.table.model()
    assert [shown.index(row, COL_NAME).data() for row in range(3)] == ["gamma", "beta", "alpha"]

    class Probe(QStyledItemDelegate):
        pass

    probe = Probe()
    checked = set()
    for row in range(shown.rowCount()):
        for column in range(shown.columnCount()):
            index = shown.index(row, column)
            option = QStyleOptionViewItem()
            probe.initStyleOption(option, index)
            display = index.data(Qt.ItemDataRole.DisplayRole)
            has = option.features
            assert bool(has & QStyleOptionViewItem.ViewItemFeature.HasDisplay) == (display is not None)
            assert option.text == ("" if display is None else str(display))
            check = index.data(Qt.ItemDataRole.CheckStateRole)
            assert bool(has & QStyleOptionViewItem.ViewItemFeature.HasCheckIndicator) == (check is not None)
            if check is not None:
                assert option.checkState == Qt.CheckState(check)
                checked.add(("check", option.checkState))
            icon = index.data(Qt.ItemDataRole.DecorationRole)
            assert bool(has & QStyleOptionViewItem.ViewItemFeature.HasDecoration) == (icon is not None)
            if icon is not None:
                assert option.icon.pixmap(16).toImage() == icon.pixmap(16).toImage()  # the same picture
            background = index.data(Qt.ItemDataRole.BackgroundRole)
            assert option.backgroundBrush == (background if background is not None else QBrush())
            if background is not None:
                checked.add("background")
            source = shown.mapToSource(index)
            assert shown.flags(index) == model.flags(source), "the filter's flags are the model's"
            foreground = index.data(Qt.ItemDataRole.ForegroundRole)
            if foreground is not None:
                assert option.palette.color(QPalette.ColorRole.Text) == foreground.color()
                checked.add("foreground")
    # Every kind of cell was met: a checked and an unchecked box, an invalid row's
    # background, a failed row's colour.
    assert checked == {("check", Qt.CheckState.Checked), ("check", Qt.CheckState.Unchecked), "background",
                       "foreground"}
    # And the table paints through multiData(): data() is asked only for the progress bars'
    # own role, never once per role and cell.
    asked: list[int] = []

    def listen(frame, event, arg):  # type: ignore[no-untyped-def]
        if event == "call" and frame.f_code is type(model).data.__code__:
            asked.append(frame.f_locals.get("role"))

    sys.setprofile(listen)
    try:
        window.table.viewport().grab()
    finally:
        sys.setprofile(None)
    assert asked, "nothing painted: the check would prove nothing"
    assert set(asked) == {PROGRESS_ROLE}, sorted(set(asked))


def test_table_model_passes_qt_model_tester(qtmodeltester, tmp_path: Path, qapp) -> None:
    from gui.pipeline.project import ImageSpec
    from gui.window.image_model import ImageTableModel, Row

    for name in ("api", "web"):
        write_image(tmp_path, name)
    model = ImageTableModel(load(write_project(tmp_path, [{"name": "api", "context": "api"},
                                                          {"name": "web", "context": "web"}])))
    qtmodeltester.check(model)
    # The tester stays connected: inserts, removals and edits must keep the model consistent.
    model.insert_rows(1, [Row(ImageSpec(name="new", context="api"))])
    model.take_rows([model.uid(0), model.uid(2)])
    model.set_field(model.uid(0), "tags", ["1.0", "2.0"])
    assert [model.image(r).name for r in range(model.rowCount())] == ["new"]


def test_save_keeps_the_project_when_the_disk_refuses(qtbot, window, tmp_path: Path, monkeypatch) -> None:
    write_image(tmp_path, "api")
    path = write_project(tmp_path, [{"name": "api", "context": "api"}])
    open_project(window, path)
    window.document.edit(window.model.uid(0), "tags", ["2.0"])
    shown: list[str] = []
    monkeypatch.setattr(QMessageBox, "critical", lambda parent, title, text: shown.append(text))
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(tmp_path / "missing-folder" / "p.toml"), ""))
    assert not window.files.save_as()
    assert shown and "missing-folder" in shown[0] and window.document.modified
    save(window.document.project, path)


@pytest.mark.parametrize("block", [7, 64, 1 << 20])
def test_a_selected_images_log_is_read_from_its_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    block: int) -> None:
    """Selecting an image reads its log files' last lines from their ends, not the whole
    files (a 400,000-line log took 130 ms on the GUI thread, now 44 ms, most of it counting
    lines in C). Whatever the block size, what is shown is what reading every line shows:
    lines cut by a block, multi-byte characters, an empty file, a file not written yet,
    and each later run's separator. A last line still being written (no newline yet) is
    neither shown nor counted: it arrives live, and would otherwise be shown twice."""
    from gui.window import log_view

    monkeypatch.setattr(log_view, "READ_BLOCK", block)
    runs = [tmp_path / name / "api.log" for name in ("run-1", "run-2", "run-3", "run-4")]
    for path in runs:
        path.parent.mkdir()
    runs[0].write_text("".join(f"first run, line {n}: ünïcödé ✓\n" for n in range(40)), encoding="utf-8")
    runs[1].write_text("", encoding="utf-8")
    runs[3].write_text("".join(f"last run, line {n} €\n" for n in range(25)) + "being written", encoding="utf-8")

    def every_line(count: int) -> list[str]:
        lines: list[str] = []
        for path in runs:
            if path.exists():
                if lines:
                    lines.append(f"--- {path.parent.name} ---")
                lines += path.read_text(encoding="utf-8").splitlines()
        return [line for line in lines if line != "being written"][-count:]

    for count in (1, 5, 25, 26, 30, 66, 67, 1000):
        shown, totals, cut = log_view.tail_lines(runs, count)
        assert shown == every_line(count), count
        assert totals == [40, 0, 0, 25]
        assert cut == (count < 67), count


def test_a_burst_written_while_the_log_is_read_is_not_shown_twice(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The run appends to a running image's log while the view reads it: lines written after
    they were counted must not be shown (they arrive live and would appear twice)."""
    from gui.window import log_view

    path = tmp_path / "run-1" / "api.log"
    path.parent.mkdir()
    path.write_text("".join(f"line {n}\n" for n in range(10)), encoding="utf-8")
    count = log_view._line_count

    def count_then_the_run_writes(stream):  # type: ignore[no-untyped-def]
        counted = count(stream)
        with path.open("a", encoding="utf-8") as log:
            log.write("written meanwhile 1\nwritten meanwhile 2\n")
        return counted

    monkeypatch.setattr(log_view, "_line_count", count_then_the_run_writes)
    shown, totals, cut = log_view.tail_lines([path], 5)
    assert (shown, totals, cut) == ([f"line {n}" for n in range(5, 10)], [10], True)


class _PaintCounter(QObject):
    def __init__(self) -> None:
        super().__init__()
        self.paints = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.paints += 1
        return False


def test_the_run_bar_is_painted_with_the_window_not_inside_each_batch(window, qtbot, tmp_path: Path) -> None:
    """QProgressBar repaints at once when its value moves: a few milliseconds inside every
    batch of records, on the GUI thread, on top of the window's own paint. It must wait
    for the window's next paint like every other widget."""
    for name in ("a", "b"):
        write_image(tmp_path, name)
    open_project(window, write_project(tmp_path, [{"name": "a", "context": "a"}, {"name": "b", "context": "b"}]))
    qtbot.waitExposed(window)
    uids = [window.model.uid(0), window.model.uid(1)]
    window.model.start_rows(uids, [], {})
    bar = window.progress.overall
    counter = _PaintCounter()
    bar.installEventFilter(counter)
    qtbot.wait(50)  # any paint already due is done
    counter.paints = 0
    records = [ev.Cancelled("a", ev.Stage.BUILD)]
    window.runs.eventsApplied.emit(records, window.model.apply_events(records, {"a": uids[0], "b": uids[1]}))
    assert bar.value() == 1 and bar.maximum() == 2
    assert counter.paints == 0
    qtbot.waitUntil(lambda: counter.paints > 0, timeout=2000)
