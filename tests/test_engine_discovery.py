"""Finding the engine as `docker` finds it: DOCKER_HOST, then the current Docker context."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import write_image, write_project


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/docker", *args], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.docker
def test_current_docker_context_is_used(tmp_path: Path, docker_host: str) -> None:
    """A context made with `docker context create` and chosen with `docker context use`
    (Docker Desktop's way): Dockpool reaches the same engine without DOCKER_HOST."""
    env = {key: value for key, value in os.environ.items() if key not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
    env["DOCKER_CONFIG"] = str(tmp_path / "config")
    assert _cli("context", "create", "dockpool-test", "--docker", f"host={docker_host}", env=env).returncode == 0
    assert _cli("context", "use", "dockpool-test", env=env).returncode == 0
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "a", "context": "a"}])
    result = subprocess.run([sys.executable, "-m", "gui", "run", str(path)], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"at {docker_host}" in result.stdout


def test_broken_settings_name_the_endpoint(tmp_path: Path) -> None:
    """A stale DOCKER_TLS_VERIFY without its certificates: a clear message, exit 3."""
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "a", "context": "a"}])
    env = {**os.environ, "DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1",
           "DOCKER_CERT_PATH": str(tmp_path / "no-certs")}
    result = subprocess.run([sys.executable, "-m", "gui", "run", str(path)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "Docker engine at tcp://127.0.0.1:2376 is unreachable: the Docker settings are invalid" in result.stderr


def test_ssh_endpoint_is_refused_with_what_to_do(tmp_path: Path) -> None:
    """ssh:// engines (a context or DOCKER_HOST) need paramiko in the SDK, which the bundle
    cannot carry: the message says how to reach the same engine instead."""
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "a", "context": "a"}])
    env = {**os.environ, "DOCKER_HOST": "ssh://nobody@127.0.0.1:1"}
    result = subprocess.run([sys.executable, "-m", "gui", "run", str(path)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert "Docker engine at ssh://nobody@127.0.0.1:1 is unreachable" in result.stderr
    assert "ssh -NL /tmp/docker.sock:/var/run/docker.sock" in result.stderr
