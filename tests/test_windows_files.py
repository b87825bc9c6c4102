"""The second run of `make test` goes "as on Windows": workers started by spawn, and files
that a process holds open cannot be deleted, renamed or replaced (tests/windows_files)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import os, shutil, sys
from pathlib import Path
folder = Path(sys.argv[1])
held, other = folder / "held.bin", folder / "other.bin"
held.write_bytes(b"x")
other.write_bytes(b"y")
with open(held, "rb"):
    for name, call in (("unlink", lambda: held.unlink()), ("replace onto", lambda: os.replace(other, held)),
                       ("rename", lambda: held.rename(folder / "moved.bin"))):
        try:
            call()
            print(name, "allowed")
        except PermissionError as exc:
            print(name, "refused", getattr(exc, "winerror", None))
    shutil.rmtree(folder, ignore_errors=True)
    print("left by rmtree:", sorted(p.name for p in folder.iterdir()))
held.unlink()
print("closed: deleted", not held.exists())
"""


def test_windows_file_rules_refuse_what_windows_refuses(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests" / "windows_files"), "DOCKPOOL_WINDOWS_FILES": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["unlink refused 32", "replace onto refused 32", "rename refused 32",
                                        "left by rmtree: ['held.bin']", "closed: deleted True"]


def test_windows_file_rules_hold_in_the_run_as_on_windows(tmp_path: Path) -> None:
    """In `make test`'s second run, this process and every Python process it starts (the
    fork server, spawned workers: each a new interpreter with this environment) refuse."""
    if os.environ.get("DOCKPOOL_WINDOWS_FILES") != "1":
        pytest.skip("for make test's run as on Windows (the rules are checked above in a process of their own)")
    held = tmp_path / "held.bin"
    held.write_bytes(b"x")
    with open(held, "rb"):
        try:
            held.unlink()
            raise AssertionError("an open file was deleted in this process: the run is not as on Windows")
        except PermissionError:
            pass
        child = subprocess.run([sys.executable, "-c", f"import os; os.unlink({str(held)!r})"], cwd="/",
                               capture_output=True, text=True, timeout=60)
        assert child.returncode != 0 and "PermissionError" in child.stderr, "a child process deleted an open file"
