"""PyInstaller entry for the Qt-free `dockpool-worker` executable that every worker process runs."""

from gui.__main__ import worker_main

if __name__ == "__main__":
    worker_main()
