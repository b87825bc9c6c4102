"""The frozen bundle: built with PyInstaller, then run as users run it.

Proves freeze_support() and both start methods in a frozen executable: the CLI's
builder and pusher processes are the bundle's Qt-free worker executable, started
by the fork server (Linux, macOS) or by spawn (Windows' only method, forced here),
and none of them maps Qt.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gui.devservices import Registry
from gui.pipeline.registry_http import VERIFIER_SETTING
from tests.helpers import code_page_locale, write_image, write_project
from tests.tls import start_tls_registry, system_bundle_with

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
    assert (bundle / "dockpool-worker").is_file()
    assert (bundle / "_internal" / "resources" / "icons" / "dockpool.png").is_file()
    assert not list(bundle.rglob("translations/*.qm")), "Qt translations should be dropped"
    assert folder_size(bundle) < MAX_BUNDLE_BYTES


def _descendants(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            if parent == pid:
                found += [int(entry.name), *_descendants(int(entry.name))]
    return found


def _watch_workers(pid: int, seen: dict[int, tuple[str, bool, int]], stop: threading.Event) -> None:
    """Every process under `pid`: its executable, whether it maps Qt, its resident memory."""
    while not stop.is_set():
        for child in _descendants(pid):
            try:
                exe = os.readlink(f"/proc/{child}/exe")
                maps = Path(f"/proc/{child}/maps").read_text()
                rss = next(int(line.split()[1]) for line in Path(f"/proc/{child}/status").read_text().splitlines()
                           if line.startswith("VmRSS"))
            except (OSError, StopIteration):
                continue
            if not exe.endswith("/docker"):
                qt = "libQt6" in maps
                seen[child] = (exe, seen.get(child, (exe, qt, 0))[1] or qt, max(rss, seen.get(child, ("", False, 0))[2]))
        time.sleep(0.2)


@pytest.mark.parametrize("start_method", ["forkserver", "spawn"])
def test_frozen_cli_builds_and_pushes_with_qt_free_workers(bundle: Path, tmp_path: Path, registry: Registry,
                                                           base_image: str, docker_host: str,
                                                           start_method: str) -> None:
    write_image(tmp_path, "frozen-a", base=base_image, run="sleep 2 && echo built by the frozen CLI")
    write_image(tmp_path, "frozen-b", base=base_image, run="sleep 2")
    path = write_project(tmp_path, [{"name": "frozen-a", "context": "frozen-a"},
                                    {"name": "frozen-b", "context": "frozen-b", "tags": ["1", "2"]}],
                         registry=registry.address, builders=2, pushers=1)
    report = tmp_path / "report.json"
    env = {**os.environ, "DOCKER_HOST": docker_host, "DOCKPOOL_START_METHOD": start_method}
    process = subprocess.Popen([str(bundle / "dockpool"), "run", str(path), "--report", str(report)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    seen: dict[int, tuple[str, bool, int]] = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_workers, args=(process.pid, seen, stop), daemon=True)
    watcher.start()
    output, _ = process.communicate(timeout=300)
    stop.set()
    watcher.join()
    assert process.returncode == 0, output
    images = {image["name"]: image for image in json.loads(report.read_text())["images"]}
    assert registry.manifest_digest("frozen-a", "latest") == images["frozen-a"]["digest"]
    assert registry.manifest_digest("frozen-b", "2") == images["frozen-b"]["digest"]
    workers = {pid: info for pid, info in seen.items() if info[0].endswith("/dockpool-worker")}
    assert len(workers) >= 3, seen  # two builders and a pusher at least
    assert not [pid for pid, (_, qt, _) in workers.items() if qt], "a frozen worker mapped Qt"
    peak = max(rss for _, _, rss in workers.values())
    print(f"frozen workers ({start_method}): {len(workers)}, peak resident {peak / 1024:.1f} MiB")  # pytest -s
    assert peak < 60_000, workers


def test_frozen_app_reads_dockers_config_as_utf8_in_any_locale(bundle: Path, tmp_path: Path,
                                                               auth_registry: Registry, docker_host: str) -> None:
    """Windows starts a program in the user's code page (cp1252, cp932), not UTF-8, and the
    Docker SDK reads Docker's config.json in it: one character outside ASCII there and the
    engine pushed without the stored login. The bundle runs in Python's UTF-8 mode, which
    the SDK's reads then get too. The test runs it in GBK, Windows' cp936."""
    config = Path(os.environ["DOCKER_CONFIG"])
    config.mkdir(parents=True, exist_ok=True)
    login = base64.b64encode(b"dockpool:secret-pass").decode()
    (config / "config.json").write_text(json.dumps({"auths": {auth_registry.address: {"auth": login}},
                                                    "psFormat": "table {{.Names}} — {{.Status}}"},
                                                   ensure_ascii=False), encoding="utf-8")
    write_image(tmp_path, "frozen-login")
    path = write_project(tmp_path, [{"name": "frozen-login", "context": "frozen-login"}],
                         registry=auth_registry.address)
    env = {**os.environ, "DOCKER_HOST": docker_host, **code_page_locale(tmp_path)}
    result = subprocess.run([str(bundle / "dockpool"), "run", str(path), "--push-via", "engine"],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


@pytest.mark.parametrize("verifier", ["openssl", "os"])
def test_frozen_cli_verifies_an_https_registry(bundle: Path, tmp_path: Path, docker_host: str,
                                               verifier: str) -> None:
    """Frozen, both verifiers check the registry against the system's CA bundle (here the one
    SSL_CERT_FILE names, with the test CA in it): OpenSSL's, and truststore (Windows' and
    macOS's verifier, run here through its Linux code), which must be in the bundle."""
    registry, ca = start_tls_registry(tmp_path)
    try:
        trusted = system_bundle_with(ca, tmp_path / "system-bundle.pem")
        write_image(tmp_path, "frozen-tls")
        path = write_project(tmp_path, [{"name": "frozen-tls", "context": "frozen-tls"}], registry=registry.address)
        report = tmp_path / "report.json"
        env = {**os.environ, "DOCKER_HOST": docker_host, "SSL_CERT_FILE": str(trusted), VERIFIER_SETTING: verifier}
        result = subprocess.run([str(bundle / "dockpool"), "run", str(path), "--report", str(report)],
                                capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        [image] = json.loads(report.read_text())["images"]
        assert registry.manifest_digest("frozen-tls", "latest") == image["digest"]
    finally:
        registry.stop()


@pytest.mark.parametrize("platform", ["offscreen", "xcb"])
def test_frozen_gui_smoke(bundle: Path, tmp_path: Path, platform: str) -> None:
    """The bundle's window on the offscreen platform and on a real X server (Xvfb): the
    libraries left out of the bundle are ones no kept plugin loads."""
    command = [str(bundle / "Dockpool"), str(ROOT / "resources" / "demo" / "dockpool.toml"), "--smoke"]
    if platform == "xcb":
        command = ["xvfb-run", "-a", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "QT_QPA_PLATFORM": platform, "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 image(s), project opened" in result.stdout


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


def test_windows_version_resources_are_valid(bundle: Path) -> None:
    """Windows shows a file's version from its version resource (0.0.0.0 without one). The
    resource is only embedded on Windows, where PyInstaller evaluates this text with its
    versioninfo classes (which import win32api); here it is evaluated with stand-ins that
    take the same arguments."""
    from gui import __version__

    def record(kind: str):
        return lambda *args, **kwargs: (kind, args, kwargs)

    names = ("VSVersionInfo", "FixedFileInfo", "StringFileInfo", "StringTable", "StringStruct", "VarFileInfo",
             "VarStruct")
    build = bundle.parents[1] / "build" / "dockpool"
    numbers = tuple(int(part) for part in __version__.split(".")[:3]) + (0,)
    for role, name in (("window", "Dockpool"), ("cli", "dockpool"), ("worker", "dockpool-worker")):
        text = (build / f"version-{role}.txt").read_text(encoding="utf-8")
        info = eval(text, {kind: record(kind) for kind in names})  # noqa: S307 (our own build output)
        fixed = info[2]["ffi"][2]
        assert fixed["filevers"] == fixed["prodvers"] == numbers
        strings = dict(entry[1] for entry in info[2]["kids"][0][1][0][0][1][1])
        assert strings["FileVersion"] == strings["ProductVersion"] == __version__
        assert strings["OriginalFilename"] == f"{name}.exe" and strings["ProductName"] == "Dockpool"
