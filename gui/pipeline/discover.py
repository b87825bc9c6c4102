"""Finding images in a folder tree: one image per Dockerfile.

The common case is a repository with dozens of images, each in its own folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .project import ImageSpec

SKIPPED_FOLDERS = {".git", ".hg", ".svn", "node_modules", ".venv", "venv", "__pycache__", ".tox"}
DOCKERFILE_NAMES = ("Dockerfile", "dockerfile")


def image_name(folder: Path) -> str:
    """A valid repository name from a folder name ('My_App 2' -> 'my_app-2')."""
    name = re.sub(r"[^a-z0-9._-]+", "-", folder.name.lower()).strip("._-")
    name = re.sub(r"[._-]{2,}", "-", name)
    return name or "image"


def _context(folder: Path, base_dir: Path | None) -> str:
    if base_dir is not None:
        try:
            return Path(os.path.relpath(folder, base_dir)).as_posix()
        except ValueError:  # another drive on Windows
            pass
    return folder.as_posix()


def find_images(root: Path, base_dir: Path | None, taken: set[str]) -> list[ImageSpec]:
    """Every folder under `root` (itself included) that holds a Dockerfile, sorted by path.

    `taken` are names already in the project; new names get a -2, -3 … suffix.
    """
    found: list[ImageSpec] = []
    names = set(taken)
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if d not in SKIPPED_FOLDERS)
        dockerfile = next((n for n in DOCKERFILE_NAMES if n in files), None)
        if dockerfile is None:
            continue
        path = Path(folder).resolve()
        name = image_name(path)
        unique, number = name, 2
        while unique in names:
            unique, number = f"{name}-{number}", number + 1
        names.add(unique)
        found.append(ImageSpec(name=unique, context=_context(path, base_dir), dockerfile=dockerfile))
    return found
