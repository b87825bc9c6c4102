"""What the window remembers between sessions (QSettings) and its crash autosaves.

Credentials are never stored here: logins go to Docker's own credential store.

Autosaves: each window writes its own per project (named by a hash of the
project's path, or "untitled"; see AutosaveSlot) and holds its lock file
(QLockFile: the process id, seen as stale once that process is gone). A live
window's edits are never offered to another window as a crash's, nor deleted or
overwritten by it; a crashed window's are offered whenever that project is
opened again; a window only ever deletes its own.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
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


class AutosaveSlot:
    """One window's autosave of one project: `<key>.<owner>.toml`, its `.json` (the time it
    was written) and the `.lock` (QLockFile) the window holds while it lives. One per
    window: two windows on one project, or two untitled ones, never write over each
    other's edits, and a live window's are never taken for a crash's."""

    def __init__(self, stem: Path, lock: QLockFile) -> None:
        self.stem, self._lock = stem, lock

    @property
    def key(self) -> str:
        return self.stem.name.split(".", 1)[0]

    def write(self, project: projects.Project) -> None:
        """save() rewrites relative paths for the autosave's folder; reading rebases them
        back onto the original file."""
        projects.save(project, _beside(self.stem, ".toml"))
        meta = {"original": str(project.path) if project.path else None, "saved": time.time()}
        _beside(self.stem, ".json").write_text(json.dumps(meta), encoding="utf-8")

    def clear(self) -> None:
        """The edits are saved or given up: the autosave goes, and its lock."""
        for suffix in (".toml", ".json"):
            _beside(self.stem, suffix).unlink(missing_ok=True)
        self.release()

    def release(self) -> None:
        """Let another window take it (it stays on disk, to be offered again)."""
        self._lock.unlock()


def _beside(stem: Path, suffix: str) -> Path:
    """`stem` + suffix (with_suffix would replace the owner part after the key's dot)."""
    return stem.with_name(stem.name + suffix)


def _lock(stem: Path) -> QLockFile | None:
    lock = QLockFile(str(_beside(stem, ".lock")))
    lock.setStaleLockTime(0)  # stale only when its process is gone, however old
    return lock if lock.tryLock(0) else None


def claim_autosave(path: Path | None) -> AutosaveSlot:
    """A new autosave slot of this project (None: untitled) for this window (a random
    name: a later process given a crashed one's id must not write over its slot)."""
    stem = _autosave_folder() / f"{autosave_key(path)}.{uuid.uuid4().hex[:12]}"
    lock = _lock(stem)
    if lock is None:  # a fresh random name is nobody's: only a folder that refuses the file
        raise OSError(f"cannot take the autosave lock {_beside(stem, '.lock')}")
    return AutosaveSlot(stem, lock)


def _read(stem: Path, path: Path | None) -> tuple[float, projects.Project] | None:
    """The autosave at `stem`: its time and project, rebased onto the project's file. Even
    when the file is newer: each window deletes its own autosave when it saves or gives
    up its edits, so one left is a crashed (or logged-off) window's, and another window
    saving the file does not put those edits in it."""
    data, meta = _beside(stem, ".toml"), _beside(stem, ".json")
    if not data.exists():
        return None
    try:
        saved = float(json.loads(meta.read_text(encoding="utf-8")).get("saved", 0)) if meta.exists() else 0.0
        project = projects.load(data, strict=False)
    except (projects.ProjectError, ValueError, OSError):
        return None
    if path is not None:
        return saved, projects.rebased(project, path)
    project = projects.rebased(project, Path.cwd() / "untitled.toml")
    project.path = None  # never saved: Save asks where
    return saved, project


def _stems(path: Path | None) -> list[Path]:
    key = autosave_key(path)
    return sorted({data.with_suffix("") for data in _autosave_folder().glob(f"{key}.*toml")})


def crashed_autosaves(path: Path | None) -> list[tuple[float, AutosaveSlot, projects.Project]]:
    """Autosaves of this project whose window is gone (its lock stale: a crash), newest
    first, each with its time; their locks are now this caller's (release or clear each).
    Unreadable ones are removed."""
    found = []
    for stem in _stems(path):
        lock = _lock(stem)
        if lock is None:
            continue  # a window that is still open holds it
        slot = AutosaveSlot(stem, lock)
        read = _read(stem, path)
        if read is None:
            slot.clear()
        else:
            found.append((read[0], slot, read[1]))
    return sorted(found, key=lambda item: item[0], reverse=True)


def autosaves(path: Path | None) -> list[projects.Project]:
    """Every autosave of this project, whoever holds it, newest first."""
    found = [read for stem in _stems(path) if (read := _read(stem, path)) is not None]
    return [project for _, project in sorted(found, key=lambda item: item[0], reverse=True)]


def clear_all_autosaves() -> None:
    """For tests: start without anything to recover."""
    for entry in _autosave_folder().iterdir():
        if entry.suffix != ".lock":
            entry.unlink(missing_ok=True)
        elif (lock := _lock(entry.with_suffix(""))) is not None:  # not a live window's
            lock.unlock()
