"""Windows' rule for deleting and renaming files, on Linux: for the test runs "as on Windows".

Windows refuses to delete, rename or replace a file that any process holds open
(Python's open() does not share delete access there), with PermissionError
(WinError 32). Linux allows it, so code that deletes a file another thread still
reads passes every test here and fails on users' machines. With this folder on
PYTHONPATH and DOCKPOOL_WINDOWS_FILES=1, every Python process started (the tests,
the fork server, spawned workers) refuses the same way: os.unlink, os.remove,
os.rename and os.replace (and so pathlib and shutil.rmtree, which call them) raise
PermissionError for a file open in any process. Python imports a module named
sitecustomize from its path at start-up; nothing in Dockpool knows of this one.
"""

from __future__ import annotations

import os

SETTING = "DOCKPOOL_WINDOWS_FILES"
WINERROR_SHARING_VIOLATION = 32


def _holders(path: str) -> list[int]:
    """The processes that hold `path` open (as a file descriptor)."""
    holders = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            descriptors = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue  # gone, or not ours to see
        for fd in descriptors:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                    holders.append(int(pid))
                    break
            except OSError:
                pass
    return holders


def _full(path: os.PathLike[str] | str | bytes, dir_fd: int | None) -> str | None:
    """The real path of a file named for one of the calls, or None when it is no file."""
    name = os.fsdecode(path)
    if dir_fd is not None and not os.path.isabs(name):
        name = os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), name)
    real = os.path.realpath(name)
    return real if os.path.isfile(real) else None


def _refuse_if_open(path: os.PathLike[str] | str | bytes, dir_fd: int | None = None) -> None:
    full = _full(path, dir_fd)
    holders = _holders(full) if full else []
    if holders:
        error = PermissionError(13, "The process cannot access the file because it is being used by another "
                                f"process (held open by {holders})", os.fsdecode(path))
        error.winerror = WINERROR_SHARING_VIOLATION  # type: ignore[attr-defined]
        raise error


def _install() -> None:
    unlink, remove, rename, replace = os.unlink, os.remove, os.rename, os.replace

    def windows_unlink(path, *, dir_fd=None):  # type: ignore[no-untyped-def]
        _refuse_if_open(path, dir_fd)
        return unlink(path, dir_fd=dir_fd)

    def windows_remove(path, *, dir_fd=None):  # type: ignore[no-untyped-def]
        _refuse_if_open(path, dir_fd)
        return remove(path, dir_fd=dir_fd)

    def windows_rename(src, dst, *, src_dir_fd=None, dst_dir_fd=None):  # type: ignore[no-untyped-def]
        _refuse_if_open(src, src_dir_fd)
        return rename(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    def windows_replace(src, dst, *, src_dir_fd=None, dst_dir_fd=None):  # type: ignore[no-untyped-def]
        _refuse_if_open(src, src_dir_fd)
        _refuse_if_open(dst, dst_dir_fd)
        return replace(src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)

    os.unlink, os.remove, os.rename, os.replace = windows_unlink, windows_remove, windows_rename, windows_replace


if os.environ.get(SETTING) == "1":
    _install()
