"""What the window remembers between sessions (QSettings) and its crash autosaves.

Credentials are never stored here: logins go to Docker's own credential store.

Autosaves: one per project file (named by a hash of its path) and one for an
untitled project. Each is offered back whenever that project is opened again
and the autosave is newer than the file; a window only ever deletes its own.
The window writing an autosave holds its lock file (QLockFile: the process id,
seen as stale once that process is gone), so a live window's edits are never
offered to another window as a crash's, nor deleted by it.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from PySide6.QtCore import QLockFile, QSettings, QStandardPaths

from ..pipeline import project as projects

MAX_RECENT = 8
UNTITLED = "untitled"


def settings() -> QSettings:
    return QSettings("Dockpool", "Dockpool")


def recent_projects() -> list[str]:
    value = settings().value("recent", [])
    return [str(v) for v in (value if isinstance(value, list) else [value]) if v]


def remember_project(path: Path) -> None:
    recent = [str(path)] + [p for p in recent_projects() if p != str(path)]
    settings().setValue("recent", recent[:MAX_RECENT])


def last_folder() -> str:
    """Where file dialogs start: the folder last opened, saved to or added from."""
    return str(settings().value("last-folder", str(Path.home())))


def remember_folder(folder: Path) -> None:
    settings().setValue("last-folder", str(folder))


def data_folder() -> Path:
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _autosave_folder() -> Path:
    folder = data_folder() / "autosave"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def autosave_key(path: Path | None) -> str:
    return hashlib.sha1(str(path.absolute()).encode()).hexdigest()[:16] if path else UNTITLED


def lock_autosave(path: Path | None) -> QLockFile | None:
    """The lock of this project's autosave (None: untitled), taken; None while a live
    window (of this process or another) holds it. A crashed process's lock is stale: taken."""
    lock = QLockFile(str(_autosave_folder() / f"{autosave_key(path)}.lock"))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however old
    return lock if lock.tryLock(0) else None


def write_autosave(project: projects.Project) -> None:
    """Save unsaved edits where a crash cannot lose them. save() rewrites relative paths
    for the autosave's folder; read_autosave() rebases them back onto the original file."""
    key = autosave_key(project.path)
    folder = _autosave_folder()
    projects.save(project, folder / f"{key}.toml")
    meta = {"original": str(project.path) if project.path else None, "saved": time.time()}
    (folder / f"{key}.json").write_text(json.dumps(meta), encoding="utf-8")


def read_autosave(path: Path | None) -> projects.Project | None:
    """The autosave of this project (None: untitled), rebased onto its file, when there is
    one newer than the file itself."""
    key = autosave_key(path)
    folder = _autosave_folder()
    data, meta = folder / f"{key}.toml", folder / f"{key}.json"
    if not data.exists():
        return None
    try:
        saved = float(json.loads(meta.read_text(encoding="utf-8")).get("saved", 0)) if meta.exists() else 0.0
        if path is not None and path.exists() and path.stat().st_mtime >= saved:
            return None  # the file was saved after the autosave: nothing to recover
        project = projects.load(data, strict=False)
    except (projects.ProjectError, ValueError, OSError):
        return None
    if path is not None:
        return projects.rebased(project, path)
    project = projects.rebased(project, Path.cwd() / "untitled.toml")
    project.path = None  # never saved: Save asks where
    return project


def clear_autosave(path: Path | None) -> None:
    key = autosave_key(path)
    folder = _autosave_folder()
    for name in (f"{key}.toml", f"{key}.json"):
        (folder / name).unlink(missing_ok=True)


def clear_all_autosaves() -> None:
    """For tests: start without anything to recover."""
    for entry in _autosave_folder().iterdir():
        if entry.suffix != ".lock":  # a window of this test process may hold one
            entry.unlink(missing_ok=True)
