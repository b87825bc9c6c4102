"""Entry points: `python -m gui [run ...]`, `dockpool` and `dockpool-gui`.

`freeze_support()` must run before anything else: in a frozen Windows
executable, spawned worker processes start this same program, and without it
each child would run the application again instead of its task. Imports stay
inside the functions so that a child never imports Qt.
"""

import multiprocessing
import sys
import time

_STARTED = time.perf_counter()  # for the window's --smoke start-up figure


def cli_main() -> None:
    multiprocessing.freeze_support()
    from .cli import main, usage

    if len(sys.argv) < 2:
        print(usage(), end="", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))


def gui_main() -> None:
    """The window; an argument is a project file to open (double-click, shortcut)."""
    multiprocessing.freeze_support()
    if sys.platform == "win32":
        from .windows_support import hide_console_windows

        hide_console_windows()
    from .window.app import run

    sys.exit(run(sys.argv[1:], _STARTED))


def worker_main() -> None:
    """The frozen bundle's Qt-free worker executable (dockpool-worker). Only
    multiprocessing starts it: as a worker, the fork server or the resource tracker;
    freeze_support() runs that and exits."""
    multiprocessing.freeze_support()
    if sys.stderr is not None:
        print("dockpool-worker runs Dockpool's builds and pushes; start Dockpool or dockpool instead.",
              file=sys.stderr)
    sys.exit(2)


def main() -> None:
    """`python -m gui`: a CLI command means the CLI; nothing or a project file, the window."""
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and (sys.argv[1] in ("run", "--help", "-h", "--version")):
        cli_main()
    else:
        gui_main()


if __name__ == "__main__":
    main()
