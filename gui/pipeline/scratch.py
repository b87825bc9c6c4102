"""Workers' temporary folders, named after the process that made them.

A worker killed mid-build or mid-push (cancel, a timeout, a stall, the user's
Task Manager) never runs its own clean-up. Its folders carry its process id,
`dockpool-<kind>-<pid>-<random>` in the platform's temporary folder, so its
supervisor removes them once the process is gone, and a later pusher removes
those of workers whose whole application was killed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .processes import pid_exists

PREFIX = "dockpool-"


def make(kind: str) -> Path:
    """A new temporary folder of this process ("build", "push")."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{kind}-{os.getpid()}-"))


def _owner(folder: Path) -> int | None:
    """The process id in a folder's name (mkdtemp's random part has no "-")."""
    parts = folder.name[len(PREFIX):].split("-")
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None


def root(environment: Mapping[str, str]) -> Path:
    """The temporary folder of a worker given `environment` (workers take the caller's:
    see worker.main), found as Python finds it: the first of TMPDIR, TEMP and TMP that is
    a folder, else the platform's."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        if (value := environment.get(name)) and os.path.isdir(value):
            return Path(value)
    return Path(tempfile.gettempdir())


def _folders(where: Path) -> list[Path]:
    return [folder for folder in where.glob(f"{PREFIX}*-*-*") if folder.is_dir()]


def remove_of(pid: int, where: Path) -> None:
    """Every temporary folder in `where` of process `pid`, which has ended."""
    for folder in _folders(where):
        if _owner(folder) == pid:
            shutil.rmtree(folder, ignore_errors=True)


def remove_stale(kind: str) -> None:
    """Folders of `kind` whose process is gone (their application was killed with them),
    in this process's temporary folder."""
    for folder in _folders(Path(tempfile.gettempdir())):
        owner = _owner(folder)
        if folder.name.startswith(f"{PREFIX}{kind}-") and owner is not None and not pid_exists(owner):
            shutil.rmtree(folder, ignore_errors=True)
