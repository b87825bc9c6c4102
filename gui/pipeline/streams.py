"""Small helpers shared by the build and push code that reads the engine's streams."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .events import LogLine


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/team/api:1.0' -> ('host:5000/team/api', '1.0')."""
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def stream_error(item: dict[str, Any]) -> str | None:
    """The SDK reports most failures as items in the stream, not as exceptions."""
    if "errorDetail" in item:
        detail = item["errorDetail"]
        return str(detail.get("message") or item.get("error") or detail)
    if "error" in item:
        return str(item["error"])
    return None


def exception_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc) or type(exc).__name__


class LineBatch:
    """An emit() that sends consecutive log lines of one image as one LogLine (their texts
    joined by newlines; every reader splits them again, see events.file_lines) until
    flush() or any other record. A chatty build's lines arrive in bursts (a stream item or
    a pipe read holds hundreds); one record per burst instead of one per line is what
    keeps the supervisor's and the window's work per line small."""

    def __init__(self, emit: Callable[[Any], None]) -> None:
        self._emit = emit
        self._lines: list[str] = []
        self._first: Any = None  # the first LogLine of the batch: its image, stage and error flag

    def __call__(self, record: Any) -> None:
        # Only a text that every reader's splitlines() sees as one line (not "" nor one
        # holding a \r or a form feed) joins a burst: the counts stay the same as sent alone.
        if isinstance(record, LogLine) and record.text.strip() and record.text.splitlines() == [record.text]:
            first = self._first
            if first is not None and (first.image, first.stage, first.error) != \
                    (record.image, record.stage, record.error):
                self.flush()
            if self._first is None:
                self._first = record
            self._lines.append(record.text)
            return
        self.flush()
        self._emit(record)

    def flush(self) -> None:
        if self._first is not None:
            self._emit(replace(self._first, text="\n".join(self._lines)) if len(self._lines) > 1 else self._first)
            self._first, self._lines = None, []
