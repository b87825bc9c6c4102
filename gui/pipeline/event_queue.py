"""The queue between the supervisor and its caller, with memory bounded.

The supervisor must never block on a slow caller (cancel and stall checks run on
its thread), and a caller that falls behind must not make the run's memory grow
without limit. So: push progress is coalesced (only an image's latest figure
waits in the queue), and log lines beyond a cap are counted instead of queued
(they are in the image's log file when the run keeps one) and reported as one
LogGap record, placed where the first skipped line would have been. Every other
record is always queued: there are a handful per image.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any

from . import events as ev

MAX_QUEUED_LOG_LINES = 20_000


class _Slot:
    """Where an image's coalesced record (latest progress, or a gap) sits in the queue."""

    __slots__ = ("image",)

    def __init__(self, image: str) -> None:
        self.image = image


class _ProgressSlot(_Slot):
    pass


class _GapSlot(_Slot):
    pass


class EventQueue:
    """put() never blocks; get() has queue.Queue's interface (raises queue.Empty)."""

    def __init__(self, max_log_lines: int = MAX_QUEUED_LOG_LINES) -> None:
        self._items: deque[Any] = deque()
        self._progress: dict[str, ev.PushProgress] = {}
        self._skipped: dict[str, int] = {}
        self._log_lines = 0
        self._max_log_lines = max_log_lines
        self._ready = threading.Condition()

    def put(self, record: Any) -> None:
        with self._ready:
            if isinstance(record, ev.PushProgress):
                if record.image not in self._progress:
                    self._items.append(_ProgressSlot(record.image))
                self._progress[record.image] = record
            elif isinstance(record, ev.LogLine):
                if self._log_lines >= self._max_log_lines:
                    if record.image not in self._skipped:
                        self._items.append(_GapSlot(record.image))
                    self._skipped[record.image] = self._skipped.get(record.image, 0) + 1
                    return
                self._log_lines += 1
                self._items.append(record)
            else:
                self._items.append(record)
            self._ready.notify()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ready:
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if not block or (remaining is not None and remaining <= 0):
                    raise queue.Empty
                self._ready.wait(remaining)
            item = self._items.popleft()
            if isinstance(item, _ProgressSlot):
                return self._progress.pop(item.image)
            if isinstance(item, _GapSlot):
                return ev.LogGap(item.image, self._skipped.pop(item.image))
            if isinstance(item, ev.LogLine):
                self._log_lines -= 1
            return item

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        with self._ready:
            return len(self._items)

    def empty(self) -> bool:
        return self.qsize() == 0
