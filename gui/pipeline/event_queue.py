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
    """Where an image's coalesced records wait in the queue: its latest push progress, or
    the number of log lines skipped. A slot stays open (gathers more) only until a record
    that changes the image's state is queued after it (a gap also closes at the next queued
    line), so no figure overtakes such a record: progress of a second attempt never lands
    ahead of its RetryScheduled, and lines skipped after a BuildFailed are never counted in a
    gap before it. Lines and progress of one image may pass each other; neither closes the
    other's slot, which is what keeps the queue bounded."""

    __slots__ = ("image", "progress", "skipped")

    def __init__(self, image: str) -> None:
        self.image = image
        self.progress: ev.PushProgress | None = None
        self.skipped = 0  # file lines (a multi-line message is several)


class EventQueue:
    """put() never blocks; get() has queue.Queue's interface (raises queue.Empty)."""

    def __init__(self, max_log_lines: int = MAX_QUEUED_LOG_LINES) -> None:
        self._items: deque[Any] = deque()
        self._open_progress: dict[str, _Slot] = {}
        self._open_gap: dict[str, _Slot] = {}
        self._log_lines = 0
        self._max_log_lines = max_log_lines
        self._ready = threading.Condition()

    def put(self, record: Any) -> None:
        with self._ready:
            image = getattr(record, "image", None)
            if isinstance(record, ev.PushProgress):
                if (slot := self._open_progress.get(record.image)) is None:
                    slot = self._open_progress[record.image] = _Slot(record.image)
                    self._items.append(slot)
                slot.progress = record
            elif isinstance(record, ev.LogLine) and self._log_lines >= self._max_log_lines:
                if (slot := self._open_gap.get(record.image)) is None:
                    slot = self._open_gap[record.image] = _Slot(record.image)
                    self._items.append(slot)
                slot.skipped += ev.file_lines(record.text)
                return
            elif isinstance(record, ev.LogLine):
                self._log_lines += ev.file_lines(record.text)  # a record may hold a burst of lines
                self._open_gap.pop(record.image, None)
                self._items.append(record)
            else:  # a record that changes the image's state: nothing later may overtake it
                if image is not None:
                    self._open_progress.pop(image, None)
                    self._open_gap.pop(image, None)
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
            if isinstance(item, _Slot):
                if self._open_progress.get(item.image) is item:
                    del self._open_progress[item.image]
                if self._open_gap.get(item.image) is item:
                    del self._open_gap[item.image]
                return item.progress if item.progress is not None else ev.LogGap(item.image, item.skipped)
            if isinstance(item, ev.LogLine):
                self._log_lines -= ev.file_lines(item.text)
            return item

    def get_nowait(self) -> Any:
        return self.get(block=False)

    def qsize(self) -> int:
        with self._ready:
            return len(self._items)

    def empty(self) -> bool:
        return self.qsize() == 0
