"""Bytes written once, front to back, and read while they are written: the head in
memory while the push's memory budget allows, the rest in a file.

Why not a file for everything: a pusher's compressed layers used to go to temporary
files. When the registry shares the disk (a developer's local registry, a CI service
container), those writes compete with the syncs the registry makes at the end of
every upload, and with one pusher each such pause is idle link: 12 images of 24 MB
took 74.2 to 74.9 s with the files (the engine's push: 73.0 to 73.3 s), 73.7 to
73.9 s from memory (the engine's: 73.5 to 73.6 s), three runs each
(tests/bench/push_bench.py). A budget per push keeps memory bounded for any image
size: a layer bigger than what is left of it writes only its tail.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import IO

MEMORY_BUDGET = 64 << 20  # bytes per push, for the blobs it holds until they are uploaded


def memory_budget_setting() -> int:
    """DOCKPOOL_PUSH_MEMORY_MB, read by the caller (the window or the CLI) and handed to the
    pushers: less for a machine short of memory, 0 to keep every layer on disk. Invalid
    values are ignored."""
    try:
        return max(0, int(float(os.environ["DOCKPOOL_PUSH_MEMORY_MB"]) * (1 << 20)))
    except (KeyError, ValueError):
        return MEMORY_BUDGET


class MemoryBudget:
    """Bytes that one push's spools may keep in memory, together."""

    def __init__(self, limit: int = MEMORY_BUDGET) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def give(self, size: int) -> None:
        with self._lock:
            self.used -= size


class Spool:
    """One writer, any number of readers, each from any offset of what is written.
    The head stays in memory; once the budget says no, every later byte goes to
    `path` (the head is not moved: nothing already in memory is written again)."""

    def __init__(self, path: Path | None, budget: MemoryBudget | None) -> None:
        self.path = path  # the tail's file, made when the first byte does not fit (None: all in memory)
        self.size = 0
        self._budget = budget
        self._owns_file = True  # removed by discard(); not a file the export reader shares
        self._discarded = False
        self._head = bytearray()
        self._taken = 0  # of the budget, given back by discard()
        self._tail: IO[bytes] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of_file(cls, path: Path) -> Spool:
        """A blob that is on disk already (an OCI layer kept as it came)."""
        spool = cls(path, None)
        spool.size = path.stat().st_size
        spool._owns_file = False  # the export's reader may hand the same blob over twice
        return spool

    @classmethod
    def of_bytes(cls, data: bytes) -> Spool:
        """A small blob held in memory whatever the budget (an image config)."""
        spool = cls(None, None)
        spool._head += data
        spool.size = len(data)
        return spool

    @property
    def head_size(self) -> int:
        return len(self._head)

    def write(self, data: bytes) -> None:
        if self._discarded:  # a compression that outlived its push: it stops here
            raise ValueError("the spool was discarded")
        if self._tail is None and self._budget is not None and self._budget.take(len(data)):
            self._taken += len(data)
            self._head += data  # readers only ever slice what `size` says is there
        else:
            if self._tail is None:
                assert self.path is not None, "a spool without a file holds what it was made with"
                self._tail = self.path.open("wb")
            self._tail.write(data)
            self._tail.flush()  # visible to the readers' own file objects
        with self._lock:
            self.size += len(data)

    def finish(self) -> None:
        """No more bytes: the tail's file is closed (Windows cannot delete an open file)."""
        if self._tail is not None:
            self._tail.close()

    def open(self, offset: int = 0) -> SpoolReader:
        return SpoolReader(self, offset)

    def discard(self) -> None:
        """The blob is in the registry (or the push is over): its memory goes back to the
        budget and its file is removed (unless a reader still has it open, which Windows
        refuses: the push's folder goes at its end)."""
        self._discarded = True
        self.finish()
        if self._budget is not None and self._taken:
            self._budget.give(self._taken)
            self._taken = 0
        self._head = bytearray()
        try:
            if self.path is not None and self._owns_file:
                self.path.unlink(missing_ok=True)
        except OSError:
            pass


class SpoolReader:
    """Reads a spool from an offset; from memory for the head, from the file after it."""

    def __init__(self, spool: Spool, offset: int) -> None:
        self._spool = spool
        self.position = offset
        self._file: IO[bytes] | None = None

    def read(self, count: int) -> bytes:
        """Up to `count` bytes of what is written so far (b"" at the end of it)."""
        spool = self._spool
        with spool._lock:
            end = min(spool.size, self.position + count)
        head = spool.head_size
        if self.position < head:
            data = bytes(spool._head[self.position:min(end, head)])
        elif self.position < end:
            if self._file is None:
                assert spool.path is not None
                self._file = spool.path.open("rb")
            self._file.seek(self.position - head)  # the file holds the bytes after the head
            data = self._file.read(end - self.position)
        else:
            data = b""
        self.position += len(data)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> SpoolReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
