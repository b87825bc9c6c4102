"""Windows details that bite a windowed (frozen) executable.

The Docker SDK runs credential helpers (docker-credential-desktop, -wincred) as
subprocesses, and the BuildKit backend runs the docker CLI. Started from a
windowed executable, or from its worker processes, each would flash a console
window; CREATE_NO_WINDOW prevents that for every subprocess a process starts
once hide_console_windows() has run in it (the window and every worker call it
before any Docker call).

Only Windows has the flag. DOCKPOOL_FORCE_NO_WINDOW=1 applies the same patch on
other systems so tests can prove it is in place where it must be: there, the
child gets DOCKPOOL_CHILD_NO_WINDOW=1 in its environment instead of the flag.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

FORCE_ENV = "DOCKPOOL_FORCE_NO_WINDOW"
CHILD_MARK = "DOCKPOOL_CHILD_NO_WINDOW"


def hide_console_windows() -> None:
    forced = os.environ.get(FORCE_ENV) == "1"
    if (sys.platform != "win32" and not forced) or getattr(subprocess.Popen, "_dockpool_no_window", False):
        return
    original = subprocess.Popen.__init__

    def without_console(self: subprocess.Popen, *args: Any, **kwargs: Any) -> None:
        if sys.platform == "win32":
            kwargs["creationflags"] = kwargs.get("creationflags", 0) | subprocess.CREATE_NO_WINDOW
        else:
            kwargs["env"] = {**(kwargs.get("env") or os.environ), CHILD_MARK: "1"}
        original(self, *args, **kwargs)

    subprocess.Popen.__init__ = without_console  # type: ignore[method-assign]
    subprocess.Popen._dockpool_no_window = True  # type: ignore[attr-defined]
