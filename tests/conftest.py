"""Real services for the tests: a private dockerd and docker-registry.

Set DOCKPOOL_TEST_DOCKER_HOST to use an engine you already run. A test that
needs Docker fails (never skips) when Docker cannot be had: in CI a skip would
hide exactly the breakage the test exists for.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from gui.devservices import DockerDaemon, Registry, ServiceError, import_busybox
from tests.containerd import Containerd
from tests.helpers import htpasswd_file


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    given = os.environ.get("DOCKPOOL_TEST_DOCKER_HOST")
    daemon = None
    if given:
        host = given
    else:
        root = Path(tempfile.mkdtemp(prefix="dockpool-test-", dir="/tmp"))
        daemon = DockerDaemon(root)
        try:
            host = daemon.start()
        except ServiceError as exc:
            pytest.fail(f"no Docker engine for the tests: {exc}", pytrace=False)
    previous = os.environ.get("DOCKER_HOST")
    os.environ["DOCKER_HOST"] = host  # spawned workers inherit it
    try:
        yield host
    finally:
        if previous is None:
            os.environ.pop("DOCKER_HOST", None)
        else:
            os.environ["DOCKER_HOST"] = previous
        if daemon:
            daemon.stop()


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> docker.APIClient:
    return docker.APIClient(base_url=docker_host, version="auto", timeout=120)


@pytest.fixture(scope="session")
def base_image(docker_client: docker.APIClient) -> str:
    return import_busybox(docker_client)


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    """A private containerd, whose exporter writes the containerd image store's layout."""
    daemon = Containerd(Path(tempfile.mkdtemp(prefix="dockpool-containerd-", dir="/tmp")))
    try:
        daemon.start()
    except ServiceError as exc:
        pytest.fail(f"no containerd for the tests: {exc}", pytrace=False)
    yield daemon
    daemon.stop()


@pytest.fixture
def registry(tmp_path: Path, docker_host: str) -> Iterator[Registry]:
    service = Registry(tmp_path / "registry")
    try:
        service.start()
    except ServiceError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield service
    service.stop()


@pytest.fixture
def auth_registry(tmp_path: Path, docker_host: str) -> Iterator[Registry]:
    """A registry that demands a login: user 'dockpool', password 'secret-pass'."""
    service = Registry(tmp_path / "auth-registry", htpasswd=htpasswd_file(tmp_path, "dockpool", "secret-pass"))
    service.start()
    yield service
    service.stop()


@pytest.fixture(autouse=True)
def _isolated_docker_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never read or write the developer's Docker login, nor share a layer cache."""
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("DOCKPOOL_CACHE_DIR", str(tmp_path / "dockpool-cache"))


@pytest.fixture
def make_window(qtbot):
    """Real main windows, with test-mode settings wiped clean; fails the test if one of them
    leaves a run (and its QThread) or a background call behind."""
    from PySide6.QtCore import QStandardPaths

    from gui.window import settings
    from gui.window.background import wait_for_background
    from gui.window.main_window import MainWindow

    QStandardPaths.setTestModeEnabled(True)  # ~/.qttest, never the user's own settings
    settings.settings().clear()
    settings.clear_all_autosaves()
    made = []

    def make() -> MainWindow:
        main = MainWindow()
        main.show()
        made.append(main)
        return main

    yield make
    left_running = False
    for main in made:
        if main.runs.running:
            left_running = True
            main.runs.cancel()
            qtbot.waitUntil(lambda m=main: not m.runs.running, timeout=15000)
        main._commit_typing()  # what a test left typed counts as an edit too...
        main.document.undo.setClean()  # ...and a test's edits get no "save changes?" prompt to block on
        main.document._recovered = False
        main.close()
        main.deleteLater()
    assert wait_for_background(10_000), "a background call never ended"
    if left_running:
        pytest.fail("the test left a run going")


@pytest.fixture
def window(make_window):
    return make_window()
