"""Where `resources/` is: beside the package from source, inside the bundle when frozen."""

from __future__ import annotations

import sys
from pathlib import Path


def resource_path(relative: str) -> Path:
    bundle = getattr(sys, "_MEIPASS", None)
    root = Path(bundle) if bundle else Path(__file__).resolve().parents[1]
    return root / "resources" / relative
