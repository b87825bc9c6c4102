"""Entry points: `python -m gui [run ...]`, `dockpool` and `dockpool-gui`.

`freeze_support()` must run before anything else: in a frozen Windows
executable, spawned worker processes start this same program, and without it
each child would run the application again instead of its task. Imports stay
inside the functions so that a child never imports Qt.
"""

import multiprocessing
import sys


def cli_main() -> None:
    multiprocessing.freeze_support()
    from .cli import main, usage

    if len(sys.argv) < 2:
        print(usage(), end="", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1:]))


def gui_main() -> None:
    multiprocessing.freeze_support()
    from .cli import usage

    # The window arrives with the desktop issue; until then, say how to use the CLI.
    print("The Dockpool window is not available yet; use the command line:", file=sys.stderr)
    print(usage(), end="", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    """`python -m gui`: arguments mean the CLI, none means the window."""
    multiprocessing.freeze_support()
    if len(sys.argv) > 1 and sys.argv[1] not in ("--project",):
        cli_main()
    else:
        gui_main()


if __name__ == "__main__":
    main()
