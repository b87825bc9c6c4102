"""What the window remembers between sessions (QSettings) and its crash autosave.

Credentials are never stored here: logins go to Docker's own credential store.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths

from ..pipeline import project as projects

MAX_RECENT = 8


def settings() -> QSettings:
    return QSettings("Dockpool", "Dockpool")


def recent_projects() -> list[str]:
    value = settings().value("recent", [])
    return [str(v) for v in (value if isinstance(value, list) else [value]) if v]


def remember_project(path: Path) -> None:
    recent = [str(path)] + [p for p in recent_projects() if p != str(path)]
    settings().setValue("recent", recent[:MAX_RECENT])


def _autosave_dir() -> Path:
    folder = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_autosave(project: projects.Project) -> None:
    """Save unsaved edits where a crash cannot lose them. save() rewrites relative contexts
    for the autosave's folder; read_autosave() rebases them back onto the original file."""
    folder = _autosave_dir()
    projects.save(project, folder / "autosave.toml")
    meta = {"original": str(project.path) if project.path else None}
    (folder / "autosave.json").write_text(json.dumps(meta))


def read_autosave() -> projects.Project | None:
    """The autosaved project, rebased onto its original file, or None."""
    folder = _autosave_dir()
    data, meta = folder / "autosave.toml", folder / "autosave.json"
    if not data.exists():
        return None
    try:
        original = json.loads(meta.read_text()).get("original") if meta.exists() else None
        project = projects.load(data, strict=False)
    except (projects.ProjectError, ValueError, OSError):
        return None
    if original:
        return projects.rebased(project, Path(original))
    project = projects.rebased(project, Path.cwd() / "untitled.toml")
    project.path = None  # never saved: Save asks where
    return project


def clear_autosave() -> None:
    folder = _autosave_dir()
    for name in ("autosave.toml", "autosave.json"):
        (folder / name).unlink(missing_ok=True)
