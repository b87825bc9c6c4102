"""`make run` / `make test` set-up, as a new user's machine meets it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# dpkg as it answers on a multiarch machine where libfontconfig1 is installed for amd64
# and i386 (Ubuntu desktops with Steam or Wine): an unqualified name is ambiguous.
FAKE_DPKG_QUERY = r"""#!/bin/sh
for last; do :; done
case "$last" in
  libfontconfig1)
    echo "dpkg-query: error: --status needs a valid package name but 'libfontconfig1' is not: ambiguous package name 'libfontconfig1' with more than one installed instance" >&2
    exit 2 ;;
  missing-thing:*) echo "dpkg-query: no packages found matching $last" >&2; exit 1 ;;
  *:all) echo "dpkg-query: no packages found matching $last" >&2; exit 1 ;;
  *:amd64) printf 'install ok installed'; exit 0 ;;
  *) printf 'install ok installed'; exit 0 ;;
esac
"""
FAKE_DPKG = r"""#!/bin/sh
case "$1" in
  --print-architecture) echo amd64 ;;
  -s) exec dpkg-query -s "$2" ;;
esac
"""
FAKE_APT = r"""#!/bin/sh
echo "$@" >> "$CALLS"
if [ "$1" = update ]; then echo "E: Failed to fetch http://example.invalid/dists/x/InRelease" >&2; exit 100; fi
exit 0
"""


def _fake_tools(folder: Path) -> dict[str, str]:
    folder.mkdir()
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("dpkg", FAKE_DPKG), ("apt-get", FAKE_APT)):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    return {**os.environ, "PATH": f"{folder}:{os.environ['PATH']}", "CALLS": str(folder / "calls")}


def test_package_check_on_a_multiarch_machine_installs_nothing(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin")
    result = subprocess.run(["make", "-s", "system-deps"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "bin" / "calls").exists(), (tmp_path / "bin" / "calls").read_text()


def test_a_failed_index_update_does_not_stop_the_install(tmp_path: Path) -> None:
    env = _fake_tools(tmp_path / "bin")
    result = subprocess.run(["make", "-s", "system-deps", "SYSTEM_PACKAGES=missing-thing docker.io"], cwd=ROOT,
                            env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    calls = (tmp_path / "bin" / "calls").read_text().splitlines()
    assert calls[0].startswith("update")
    assert any(call.startswith("install") and call.split()[-1] == "missing-thing" for call in calls), calls


def test_window_opens_on_a_real_x_server(tmp_path: Path) -> None:
    """Qt's xcb plugin loads only with the xcb libraries the Makefile installs."""
    assert shutil.which("xvfb-run"), "xvfb is installed by `make` (XCB_PACKAGES)"
    env = {**os.environ, "QT_QPA_PLATFORM": "xcb", "HOME": str(tmp_path)}
    result = subprocess.run(["xvfb-run", "-a", sys.executable, "-m", "gui", str(ROOT / "resources" / "demo" /
                             "dockpool.toml"), "--smoke"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "9 image(s), project opened" in result.stdout


def test_installer_script_takes_only_what_it_may() -> None:
    """Since Windows 8 an app cannot make itself the default for a file type (and taking
    .toml would take pyproject.toml); uninstall deletes what Dockpool wrote, never {app}
    wholesale; the setup carries a version. (The script compiles under Wine with Inno
    Setup 6.4: see README, Packaging.)"""
    script = (ROOT / "packaging" / "windows" / "dockpool.iss").read_text()
    assert "tomldefault" not in script and 'Subkey: "Software\\Classes\\.toml"; ValueType' not in script
    assert 'Software\\Classes\\.toml\\OpenWithProgids' in script  # offered in "Open with", no more
    deletes = script.split("[UninstallDelete]", 1)[1].split("\n[", 1)[0]
    assert 'Name: "{app}"' not in deletes
    for folder in ("{localappdata}\\Dockpool\\Dockpool", "{localappdata}\\Dockpool\\cache",
                   "{userappdata}\\Dockpool\\Dockpool"):
        assert folder in deletes
    assert "VersionInfoVersion={#AppVersion}.0" in script
