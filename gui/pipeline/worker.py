"""What runs inside a builder or pusher process.

Workers are long-lived spawned processes. Each one talks to the supervisor over
its own pipe (tasks in, event records out), so a worker killed mid-message can
only break its own pipe, never a queue the other workers share. Nothing here
imports Qt: this module is loaded in every child.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from . import events as ev
from .docker_engine import stream_client
from .failures import classify

PROGRESS_INTERVAL = 0.1  # seconds between byte-progress events per push

_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_RUNNING_RE = re.compile(r"^ ---> Running in ([0-9a-f]{12,64})$")
_BUILT_RE = re.compile(r"^Successfully built ([0-9a-f]{12,64})$")
_DIGEST_RE = re.compile(r"^(\S+): digest: (sha256:[0-9a-f]{64}) size: \d+")


@dataclass(frozen=True)
class BuildTask:
    image: str
    context: str
    dockerfile: str
    refs: tuple[str, ...]
    build_args: dict[str, str]
    target: str
    attempt: int


@dataclass(frozen=True)
class PushTask:
    image: str
    refs: tuple[str, ...]
    attempt: int
    auth: dict[str, str] | None = None  # credentials for this run; never echoed in events

    def __repr__(self) -> str:  # keep credentials out of any log or traceback
        return f"PushTask(image={self.image!r}, refs={self.refs!r}, attempt={self.attempt})"


Emit = Callable[[Any], None]


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/team/api:1.0' -> ('host:5000/team/api', '1.0')."""
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def _stream_error(item: dict[str, Any]) -> str | None:
    """The SDK reports most failures as items in the stream, not as exceptions."""
    if "errorDetail" in item:
        detail = item["errorDetail"]
        return str(detail.get("message") or item.get("error") or detail)
    if "error" in item:
        return str(item["error"])
    return None


def run_build(client: Any, task: BuildTask, emit: Emit) -> None:
    """Build one image and tag it with all its refs; emit BuildDone or BuildFailed."""
    emit(ev.BuildStarted(task.image, task.attempt, time.time()))
    image_id: str | None = None
    error: str | None = None
    try:
        stream = client.build(
            path=task.context, dockerfile=task.dockerfile, buildargs=task.build_args or None,
            target=task.target or None, rm=True, forcerm=True, decode=True)
        for item in stream:
            if (error := _stream_error(item)) is not None:
                emit(ev.LogLine(task.image, ev.Stage.BUILD, error, error=True))
                break
            if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
                image_id = item["aux"]["ID"]
            for line in _text_lines(item):
                emit(ev.LogLine(task.image, ev.Stage.BUILD, line))
                if (match := _STEP_RE.match(line)):
                    emit(ev.BuildStep(task.image, int(match[1]), int(match[2]), match[3]))
                elif (match := _RUNNING_RE.match(line)):
                    emit(ev.BuildContainer(task.image, match[1]))
                elif (match := _BUILT_RE.match(line)) and image_id is None:
                    image_id = match[1]
        if error is None and image_id is None:
            error = "the build stream ended without an image id"
        if error is None:
            for ref in task.refs:
                repository, tag = split_ref(ref)
                client.tag(image_id, repository, tag)
    except Exception as exc:  # docker, requests and urllib3 errors all end up here
        error = _exception_message(exc)
        emit(ev.LogLine(task.image, ev.Stage.BUILD, error, error=True))
    if error is not None:
        emit(ev.BuildFailed(task.image, classify(error, ev.Stage.BUILD)))
    else:
        emit(ev.BuildDone(task.image, str(image_id)))


def _text_lines(item: dict[str, Any]) -> Iterable[str]:
    text = item.get("stream")
    if text is None and "status" in item:
        text = f"{item.get('id', '')}: {item['status']}".lstrip(": ")
    if not text:
        return []
    return [line for line in str(text).splitlines() if line.strip()]


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


def run_push(client: Any, task: PushTask, emit: Emit) -> None:
    """Push every ref; emit PushDone only if the registry returned a digest for each."""
    emit(ev.PushStarted(task.image, task.attempt, time.time()))
    progress = _PushProgress()
    digests: dict[str, str] = {}
    last_sent = 0.0
    error: str | None = None
    try:
        for ref in task.refs:
            repository, tag = split_ref(ref)
            stream = client.push(repository, tag=tag, stream=True, decode=True, auth_config=task.auth)
            for item in stream:
                if (error := _stream_error(item)) is not None:
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
        error = _exception_message(exc)
    if error is not None:
        emit(ev.LogLine(task.image, ev.Stage.PUSH, error, error=True))
        emit(ev.PushFailed(task.image, classify(error, ev.Stage.PUSH)))
        return
    emit(ev.PushProgress(task.image, progress.total, progress.total))
    digest = digests[task.refs[0]]
    emit(ev.PushDone(task.image, digest, digests))


def _exception_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc) or type(exc).__name__


def main(conn: Connection, api_version: str | None) -> None:
    """Process entry point: run tasks from the pipe until told to stop (None).

    Ctrl+C reaches the whole process group; the supervisor turns it into an
    orderly cancel, so workers ignore it rather than die mid-stream.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    client = stream_client(api_version)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # the supervisor went away
        if task is None:
            return
        try:
            if isinstance(task, BuildTask):
                run_build(client, task, conn.send)
            else:
                run_push(client, task, conn.send)
        except (BrokenPipeError, EOFError, OSError):
            return
