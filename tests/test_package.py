"""The frozen bundle: built with PyInstaller, then run as users run it.

Proves freeze_support() and the spawn start method in a frozen executable: the
CLI's builder and pusher processes are the bundle's own executable started again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.devservices import Registry
from tests.helpers import write_image, write_project

ROOT = Path(__file__).resolve().parents[1]
MAX_BUNDLE_BYTES = 160 * 1024 * 1024

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundle")
    result = subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--distpath", str(out / "dist"),
         "--workpath", str(out / "build"), str(ROOT / "packaging" / "dockpool.spec")],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return out / "dist" / "Dockpool"


def folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file() and not path.is_symlink())


def test_bundle_layout_and_size(bundle: Path) -> None:
    assert (bundle / "Dockpool").is_file() and (bundle / "dockpool").is_file()
    assert (bundle / "_internal" / "resources" / "icons" / "dockpool.png").is_file()
    assert not list(bundle.rglob("translations/*.qm")), "Qt translations should be dropped"
    assert folder_size(bundle) < MAX_BUNDLE_BYTES


def test_frozen_cli_builds_and_pushes(bundle: Path, tmp_path: Path, registry: Registry, base_image: str,
                                      docker_host: str) -> None:
    write_image(tmp_path, "frozen-a", base=base_image, run="echo built by the frozen CLI")
    write_image(tmp_path, "frozen-b")
    path = write_project(tmp_path, [{"name": "frozen-a", "context": "frozen-a"},
                                    {"name": "frozen-b", "context": "frozen-b", "tags": ["1", "2"]}],
                         registry=registry.address, builders=2, pushers=1)
    report = tmp_path / "report.json"
    result = subprocess.run([str(bundle / "dockpool"), "run", str(path), "--report", str(report)],
                            capture_output=True, text=True, timeout=300, env={**os.environ, "DOCKER_HOST": docker_host})
    assert result.returncode == 0, result.stdout + result.stderr
    images = {image["name"]: image for image in json.loads(report.read_text())["images"]}
    assert registry.manifest_digest("frozen-a", "latest") == images["frozen-a"]["digest"]
    assert registry.manifest_digest("frozen-b", "2") == images["frozen-b"]["digest"]


def test_frozen_gui_smoke(bundle: Path) -> None:
    result = subprocess.run([str(bundle / "Dockpool"), str(ROOT / "resources" / "demo" / "dockpool.toml"),
                             "--smoke"], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "8 image(s), project opened" in result.stdout


def test_linux_desktop_install_and_uninstall(bundle: Path, tmp_path: Path) -> None:
    env = {**os.environ, "HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path / "share"),
           "DOCKPOOL_BUNDLE": str(bundle)}
    script = ROOT / "packaging" / "linux" / "install.sh"
    subprocess.run(["sh", str(script)], env=env, check=True, capture_output=True)
    desktop = (tmp_path / "share" / "applications" / "dockpool.desktop").read_text()
    assert f"Exec={tmp_path}/.local/opt/dockpool/Dockpool %f" in desktop
    assert (tmp_path / "share" / "icons" / "hicolor" / "256x256" / "apps" / "dockpool.png").is_file()
    assert "*.dockpool.toml" in (tmp_path / "share" / "mime" / "packages" / "dockpool.xml").read_text()
    version = subprocess.run([str(tmp_path / ".local" / "bin" / "dockpool"), "--version"],
                             capture_output=True, text=True)
    assert version.stdout.strip() == "dockpool 0.1.0"
    subprocess.run(["sh", str(script), "--uninstall"], env=env, check=True, capture_output=True)
    assert not (tmp_path / ".local" / "opt" / "dockpool").exists()
    assert not (tmp_path / "share" / "applications" / "dockpool.desktop").exists()
