"""PyInstaller entry for the windowed `Dockpool` executable (spawned workers run it too)."""

from gui.__main__ import gui_main

if __name__ == "__main__":
    gui_main()
