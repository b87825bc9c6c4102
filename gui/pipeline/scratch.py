"""Workers' temporary folders, named after the process that made them.

A worker killed mid-build or mid-push (cancel, a timeout, a stall, the user's
Task Manager) never runs its own clean-up. Each worker keeps its temporary
folders under one folder per kind named after its process id,
`dockpool-<kind>-<pid>/`, in the platform's temporary folder: its supervisor
removes those two paths once the process has ended (no listing of a temporary
folder that may hold 100,000 entries), and a later worker removes those of
workers whose whole application was killed.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from .processes import pid_exists

PREFIX = "dockpool-"
KINDS = ("build", "push")


_swept: set[int] = set()  # the processes (this one, or a forked child) that swept already


def make(kind: str) -> Path:
    """A new temporary folder of this process, of `kind` (one of KINDS). A process's first
    one sweeps away those of workers killed with their whole application (once: a temporary
    folder may hold 100,000 entries)."""
    if os.getpid() not in _swept:
        _swept.add(os.getpid())
        remove_stale()
    parent = Path(tempfile.gettempdir()) / f"{PREFIX}{kind}-{os.getpid()}"
    parent.mkdir(exist_ok=True)
    return Path(tempfile.mkdtemp(dir=parent))


def root(environment: Mapping[str, str]) -> Path:
    """The temporary folder of a worker given `environment` (workers take the caller's:
    see worker.main), found as Python's tempfile finds it: the first of TMPDIR, TEMP and
    TMP that is a folder one can write to, else the platform's."""
    for name in ("TMPDIR", "TEMP", "TMP"):
        value = environment.get(name)
        if value and os.path.isdir(value) and os.access(value, os.W_OK | os.X_OK):
            return Path(os.path.abspath(value))
    return Path(tempfile.gettempdir())


def remove_of(pid: int, where: Path) -> None:
    """The temporary folders of process `pid`, which has ended, in `where`."""
    for kind in KINDS:
        shutil.rmtree(where / f"{PREFIX}{kind}-{pid}", ignore_errors=True)


def _owner(folder: Path) -> int | None:
    """The process id in a worker folder's name: dockpool-<kind>-<pid> (and, from earlier
    versions, dockpool-<kind>-<pid>-<random>)."""
    parts = folder.name[len(PREFIX):].split("-")
    if len(parts) in (2, 3) and parts[0] in KINDS and parts[1].isdigit():
        return int(parts[1])
    return None


def remove_stale() -> None:
    """Worker folders whose process is gone (killed with its whole application), in this
    process's temporary folder."""
    for folder in Path(tempfile.gettempdir()).glob(f"{PREFIX}*-*"):
        owner = _owner(folder)
        if owner is not None and owner != os.getpid() and not pid_exists(owner):
            shutil.rmtree(folder, ignore_errors=True)
