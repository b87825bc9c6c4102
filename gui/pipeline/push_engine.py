"""Pushing through the engine (`push = "engine"`): the Docker SDK's push endpoint.

The engine uploads layers itself, up to its own `max-concurrent-uploads` at once
whatever Dockpool's limit, and keeps a stalled layer upload until its TCP
connection dies; Dockpool's own uploader (push_direct) does neither. This path
stays for registries or images the direct path cannot handle.
"""

from __future__ import annotations

import re
import time
from typing import Any

from . import events as ev
from .failures import classify
from .streams import exception_message, split_ref, stream_error
from .tasks import PushTask

PROGRESS_INTERVAL = 0.1  # seconds between byte-progress events per push

_DIGEST_RE = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: \d+")


class _PushProgress:
    """Sums bytes over every layer, across all tags, for one progress figure."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, int]] = {}
        self.states: dict[str, str] = {}

    def update(self, item: dict[str, Any]) -> str | None:
        """Record an item; return a log line if a layer changed state."""
        layer = item.get("id")
        status = str(item.get("status", ""))
        if not layer or _DIGEST_RE.match(status):
            return None
        detail = item.get("progressDetail") or {}
        current, total = self.layers.get(layer, (0, 0))
        if "total" in detail:
            total = max(total, int(detail["total"]))
        if "current" in detail:
            current = max(current, int(detail["current"]))
        if status == "Pushed":
            current = total
        self.layers[layer] = (current, total)
        if status != "Pushing" and self.states.get(layer) != status:
            self.states[layer] = status
            return f"{layer}: {status}"
        return None

    @property
    def done(self) -> int:
        return sum(current for current, _ in self.layers.values())

    @property
    def total(self) -> int:
        return sum(total for _, total in self.layers.values())


def run_push(client: Any, task: PushTask, emit: Any) -> None:
    """Push every ref; emit PushDone only if the registry returned a digest for each."""
    emit(ev.PushStarted(task.image, task.attempt, time.time()))
    progress = _PushProgress()
    digests: dict[str, str] = {}
    last_sent = 0.0
    error: str | None = None
    try:
        if task.image_id:  # tagged again: the refs may have changed since the build (a fixed registry)
            for ref in task.refs:
                client.tag(task.image_id, *split_ref(ref), force=True)
        for ref in task.refs:
            repository, tag = split_ref(ref)
            stream = client.push(repository, tag=tag, stream=True, decode=True, auth_config=task.auth)
            for item in stream:
                if (error := stream_error(item)) is not None:
                    break
                aux = item.get("aux")
                if isinstance(aux, dict) and aux.get("Digest"):
                    digests[ref] = str(aux["Digest"])
                status = str(item.get("status", ""))
                if (match := _DIGEST_RE.match(status)):
                    digests[ref] = match[2]
                    emit(ev.LogLine(task.image, ev.Stage.PUSH, status))
                elif (line := progress.update(item)) is not None:
                    emit(ev.LogLine(task.image, ev.Stage.PUSH, line))
                elif status and not item.get("id"):
                    emit(ev.LogLine(task.image, ev.Stage.PUSH, status))
                now = time.monotonic()
                if now - last_sent >= PROGRESS_INTERVAL:
                    emit(ev.PushProgress(task.image, progress.done, progress.total))
                    last_sent = now
            if error is not None:
                break
            if ref not in digests:
                error = f"the registry returned no digest for {ref}"
                break
    except Exception as exc:
        error = exception_message(exc)
    if error is not None:
        emit(ev.LogLine(task.image, ev.Stage.PUSH, error, error=True))
        emit(ev.PushFailed(task.image, classify(error, ev.Stage.PUSH)))
        return
    emit(ev.PushProgress(task.image, progress.total, progress.total))
    emit(ev.PushDone(task.image, digests[task.refs[0]], digests))
