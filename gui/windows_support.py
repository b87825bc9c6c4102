"""Windows details that bite a windowed (frozen) executable.

The Docker SDK runs credential helpers (docker-credential-desktop, -wincred) as
subprocesses. From a windowed executable each would flash a console window;
CREATE_NO_WINDOW prevents that for every subprocess this process starts.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any


def hide_console_windows() -> None:
    if sys.platform != "win32" or getattr(subprocess.Popen, "_dockpool_no_window", False):
        return
    original = subprocess.Popen.__init__

    def without_console(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        kwargs["creationflags"] = kwargs.get("creationflags", 0) | subprocess.CREATE_NO_WINDOW
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = without_console  # type: ignore[method-assign]
    subprocess.Popen._dockpool_no_window = True  # type: ignore[attr-defined]
