"""PyInstaller entry for the console `dockpool` executable (spawned workers run it too)."""

from gui.__main__ import cli_main

if __name__ == "__main__":
    cli_main()
