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
def window(qtbot):
    """The real main window, with test-mode settings wiped clean; fails the test if it
    leaves a run (and its QThread) behind."""
    from PySide6.QtCore import QStandardPaths

    from gui.window import settings
    from gui.window.main_window import MainWindow

    QStandardPaths.setTestModeEnabled(True)  # ~/.qttest, never the user's own settings
    settings.settings().clear()
    settings.clear_autosave()
    main = MainWindow()
    main.show()
    yield main
    left_running = main._thread is not None
    if left_running:
        main.cancel()
        qtbot.waitUntil(lambda: main._thread is None, timeout=15000)
    main._dirty = False  # a test's edits: no "save changes?" prompt to block on
    main.close()
    main.deleteLater()
    if left_running:
        pytest.fail("the test left a run going")
