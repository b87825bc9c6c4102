"""Every image's whole build and push log, one UTF-8 file per image in a run folder.

The supervisor writes each line as it passes, so nothing is thrown away however
long a build talks, and no caller has to keep logs in memory: the window shows
a tail live and loads a selected image's file in one read; the CLI's
--log-dir keeps them as CI artifacts.

Line format, readable as it is and parsed back by `parse_line`:
    21:40:49 [build] Step 2/3 : RUN make
    21:40:50 [build!] The command '/bin/sh -c make' returned a non-zero code: 2
(the `!` marks an error line).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import TextIO

MAX_OPEN_FILES = 32
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_LINE_RE = re.compile(r"^(\d\d:\d\d:\d\d) \[(\w+)(!?)\] (.*)$")
_WINDOWS_DEVICES = {"con", "prn", "aux", "nul"} | {f"{port}{n}" for port in ("com", "lpt") for n in range(10)}


def file_name(image_key: str) -> str:
    """A file name for an image key; keys with / or : get a hash so that 'team/api' and
    'team_api' never share a file ('team/api:1.0' -> 'team_api_1.0-1a2b3c4d.log'), and
    so do the names Windows 10 opens as a device whatever the extension ('aux.log')."""
    safe = _UNSAFE.sub("_", image_key).strip("._") or "image"
    if safe == image_key and safe.split(".")[0].lower() not in _WINDOWS_DEVICES:
        return safe + ".log"
    return f"{safe}-{hashlib.sha1(image_key.encode()).hexdigest()[:8]}.log"


def format_line(stage: str, text: str, error: bool, at: float | None = None) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(at if at is not None else time.time()))
    return f"{stamp} [{stage}{'!' if error else ''}] {text}"


def parse_line(line: str) -> tuple[str, str, bool]:
    """(stage, text, error) of a line written by RunLogs; other lines are plain build text."""
    match = _LINE_RE.match(line.rstrip("\n"))
    if not match:
        return "build", line.rstrip("\n"), False
    return match.group(2), match.group(4), bool(match.group(3))


class RunLogs:
    """Appends lines to per-image files under `folder`, keeping a few files open."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._open: OrderedDict[str, TextIO] = OrderedDict()

    def path(self, image_key: str) -> Path:
        return self.folder / file_name(image_key)

    def append(self, image_key: str, stage: str, text: str, error: bool = False) -> None:
        stream = self._open.pop(image_key, None)
        if stream is None:
            # Line-buffered: every line is in the file before the caller hears of it, so a
            # reader (the window's log view) that reads the file then follows live lines
            # misses none and shows none twice.
            stream = self.path(image_key).open("a", encoding="utf-8", newline="\n", buffering=1)
            while len(self._open) >= MAX_OPEN_FILES:
                _, oldest = self._open.popitem(last=False)
                oldest.close()
        self._open[image_key] = stream
        prefix = format_line(stage, "", error)  # one time stamp for a burst of lines
        # One write: the line-buffered file then makes one system call for the whole burst.
        stream.write("".join(f"{prefix}{part}\n" for part in text.splitlines() or [""]))

    def flush(self) -> None:
        for stream in self._open.values():
            stream.flush()

    def finish(self, image_key: str) -> None:
        """The image reached a final state: close its file."""
        stream = self._open.pop(image_key, None)
        if stream is not None:
            stream.close()

    def close(self) -> None:
        for stream in self._open.values():
            stream.close()
        self._open.clear()
