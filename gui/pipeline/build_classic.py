"""Building with the engine's classic builder, through the Docker SDK.

The fallback when no docker CLI can build with BuildKit, and a choice
([build] backend = "classic"). The build context is packed here rather than by
the SDK, because the SDK reads .dockerignore in the locale's encoding and keeps a
UTF-8 byte-order mark (which Windows editors write) in the first pattern, which
then silently matches nothing.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import docker
from docker.api.build import process_dockerfile

from . import events as ev
from .failures import classify
from .streams import LineBatch, exception_message, split_ref, stream_error
from .tasks import BuildTask

_STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
_RUNNING_RE = re.compile(r"^ ---> Running in ([0-9a-f]{12,64})$")
MAX_PARTIAL = 65536  # characters of a line without its newline kept back for the rest of it
# The engine wraps a RUN step's stderr in colour codes ("\x1b[91m" ... "\n\x1b[0m"): the reset
# lands at the start of the next line. Logs are plain text; colour codes are dropped.
_COLOUR_RE = re.compile(r"\x1b\[[0-9;]*m")
_BUILT_RE = re.compile(r"^Successfully built ([0-9a-f]{12,64})$")


def read_ignore_file(path: Path) -> list[str]:
    """A .dockerignore's patterns, read as Docker reads them: BOM and CRLF tolerated,
    comments and blank lines dropped. The Docker SDK reads the file in the locale's
    encoding and keeps a BOM in the first pattern, which then silently matches nothing."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return []
    patterns = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def _context_archive(task: BuildTask) -> tuple[Any, str]:
    """The context as a tar file, filtered by .dockerignore as Docker reads it."""
    exclude = read_ignore_file(Path(task.context) / ".dockerignore")
    dockerfile = process_dockerfile(task.dockerfile, task.context)
    archive = docker.utils.tar(task.context, exclude=exclude, dockerfile=dockerfile, gzip=False)
    return archive, dockerfile[0]


def run_build(clients: Any, task: BuildTask, emit: Any) -> None:
    """Build one image and tag it with all its refs; emit BuildDone or BuildFailed."""
    emit(ev.BuildStarted(task.image, task.attempt, time.time()))
    image_id: str | None = None
    error: str | None = None
    archive = None
    lines = _Lines()
    try:
        client = clients.stream
        archive, dockerfile = _context_archive(task)
        stream = client.build(
            fileobj=archive, custom_context=True, dockerfile=dockerfile,
            buildargs=task.build_args or None, target=task.target or None, rm=True, forcerm=True,
            decode=True, network_mode=task.network if task.network != "default" else None,
            platform=task.platform or None, cache_from=list(task.cache_from) or None)
        batch = LineBatch(emit)  # an item's lines go as one record (flushed before anything else)
        for item in stream:
            if (error := stream_error(item)) is not None:
                for line in lines.rest():
                    emit(ev.LogLine(task.image, ev.Stage.BUILD, line))
                emit(ev.LogLine(task.image, ev.Stage.BUILD, error, error=True))
                break
            if "aux" in item and isinstance(item["aux"], dict) and "ID" in item["aux"]:
                image_id = item["aux"]["ID"]
            for line in lines.feed(item):
                batch(ev.LogLine(task.image, ev.Stage.BUILD, line))
                if (match := _STEP_RE.match(line)):
                    batch(ev.BuildStep(task.image, int(match[1]), int(match[2]), match[3]))
                elif (match := _RUNNING_RE.match(line)):
                    batch(ev.BuildContainer(task.image, match[1]))
                elif (match := _BUILT_RE.match(line)) and image_id is None:
                    image_id = match[1]
            batch.flush()
        else:
            for line in lines.rest():
                emit(ev.LogLine(task.image, ev.Stage.BUILD, line))
        if error is None and image_id is None:
            error = "the build stream ended without an image id"
        if error is None:
            for ref in task.refs:
                repository, tag = split_ref(ref)
                client.tag(image_id, repository, tag)
    except Exception as exc:  # docker, requests and urllib3 errors all end up here
        error = exception_message(exc)
        for line in lines.rest():  # often the last thing the step printed before it broke
            emit(ev.LogLine(task.image, ev.Stage.BUILD, line))
        emit(ev.LogLine(task.image, ev.Stage.BUILD, error, error=True))
    finally:
        if archive is not None:
            archive.close()
    if error is not None:
        emit(ev.BuildFailed(task.image, classify(error, ev.Stage.BUILD)))
    else:
        emit(ev.BuildDone(task.image, str(image_id)))


class _Lines:
    """Whole lines from the build stream's items. The engine cuts a RUN step's output into
    items wherever its buffer ends, often inside a line ("10" then "41\\n"): a partial line
    waits for the rest instead of becoming two lines, up to MAX_PARTIAL characters (a step
    printing megabytes without a newline still shows, in pieces)."""

    def __init__(self) -> None:
        self._partial = ""

    def feed(self, item: dict[str, Any]) -> list[str]:
        text = item.get("stream")
        if text is None:
            if "status" not in item:
                return []
            # A status (a base image's pull) is a whole message: a half line before it is done.
            return self.rest() + [f"{item.get('id', '')}: {item['status']}".lstrip(": ")]
        parts = (self._partial + str(text)).splitlines(keepends=True)
        self._partial = parts.pop() if parts and parts[-1].splitlines()[0] == parts[-1] else ""
        if len(self._partial) > MAX_PARTIAL:
            parts.append(self._partial)
            self._partial = ""
        lines = (_COLOUR_RE.sub("", part.splitlines()[0]) for part in parts)
        return [line for line in lines if line.strip()]

    def rest(self) -> list[str]:
        """The last line, when the stream ended without its newline."""
        rest, self._partial = _COLOUR_RE.sub("", self._partial), ""
        return [rest] if rest.strip() else []
