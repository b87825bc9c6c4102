"""The records workers and the engine report through the event queue.

Every record is a small frozen dataclass: cheap to pickle across the process
boundary, and safe to hand to another thread. Callers (the CLI, the window's
controller) dispatch on the record's type. `image` is the image's key: its name, or
name:tag when several images share a name (see project.image_keys).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import RunReport


class Stage(str, Enum):
    BUILD = "build"
    PUSH = "push"


class Status(str, Enum):
    """An image's state; the last four are final."""

    QUEUED = "queued"
    BUILDING = "building"
    BUILT_WAITING = "waiting to push"
    PUSHING = "pushing"
    PUSHED = "pushed"
    BUILT = "built"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        return self in (Status.PUSHED, Status.BUILT, Status.FAILED, Status.CANCELLED)


class FailureKind(str, Enum):
    AUTH = "auth"
    RATE_LIMITED = "rate-limited"
    NETWORK = "network"
    UNREACHABLE = "registry-unreachable"
    DOCKERFILE = "dockerfile"
    BUILD_STEP = "build-step"
    STALLED = "stalled"
    WORKER_DIED = "worker-died"
    ENGINE = "engine"
    TIMEOUT = "timeout"
    REGISTRY_ERROR = "registry-error"
    TLS = "tls"
    OTHER = "other"


@dataclass(frozen=True)
class Failure:
    """A classified failure: the daemon's own message plus what to do about it."""

    kind: FailureKind
    message: str
    hint: str

    @property
    def retryable(self) -> bool:
        return self.kind in (FailureKind.NETWORK, FailureKind.UNREACHABLE, FailureKind.RATE_LIMITED,
                             FailureKind.STALLED, FailureKind.WORKER_DIED, FailureKind.REGISTRY_ERROR)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})"


@dataclass(frozen=True)
class Event:
    image: str


@dataclass(frozen=True)
class BuildStarted(Event):
    attempt: int
    at: float  # the worker's clock when it sent the build request


@dataclass(frozen=True)
class BuildStep(Event):
    step: int
    total: int
    text: str


def file_lines(text: str) -> int:
    """The lines a LogLine's text takes in the image's log file (a message that holds
    newlines is written as several lines), so a reader of the file and a reader of the
    records can agree on where they are."""
    return len(text.splitlines()) or 1


def record_lines(record: object) -> int:
    """How much a record weighs where records wait: its lines for a LogLine (a burst of a
    chatty build's lines travels as one), else 1."""
    return file_lines(record.text) if isinstance(record, LogLine) else 1


@dataclass(frozen=True)
class LogLine(Event):
    stage: Stage
    text: str
    error: bool = False


@dataclass(frozen=True)
class BuildContainer(Event):
    """The classic builder started an intermediate container (to clean up on cancel)."""

    container_id: str


@dataclass(frozen=True)
class BuildProcess(Event):
    """A build runs in this child process of the worker (the BuildKit CLI); the
    supervisor stops it when it kills the worker (cancel, timeout)."""

    pid: int


@dataclass(frozen=True)
class BuildDone(Event):
    image_id: str


@dataclass(frozen=True)
class BuildFailed(Event):
    failure: Failure


@dataclass(frozen=True)
class PushStarted(Event):
    attempt: int
    at: float


@dataclass(frozen=True)
class PushProgress(Event):
    """Bytes pushed so far of the total, summed over every layer seen."""

    done: int
    total: int


@dataclass(frozen=True)
class PushDone(Event):
    digest: str
    digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadResumed(Event):
    """A blob upload made no progress (or broke) and was resumed at `offset` (0: restarted
    in a new upload) inside the same push attempt."""

    blob: str
    offset: int
    reason: str


@dataclass(frozen=True)
class PushFailed(Event):
    failure: Failure


@dataclass(frozen=True)
class RetryScheduled(Event):
    stage: Stage
    attempt: int
    delay: float
    failure: Failure


@dataclass(frozen=True)
class Cancelled(Event):
    stage: Stage | None


@dataclass(frozen=True)
class SlotWanted(Event):
    """A direct pusher is ready to put a blob on the wire and waits for a slot (internal:
    the supervisor answers with tasks.SlotGranted, and never forwards this)."""


@dataclass(frozen=True)
class SlotReleased(Event):
    """The pusher's blob upload ended (internal, like SlotWanted)."""


@dataclass(frozen=True)
class LogGap(Event):
    """`skipped` log lines of this image were not queued because the caller fell far
    behind; they are in the image's log file when the run keeps one. Counted as that file
    counts them (see file_lines)."""

    skipped: int


@dataclass(frozen=True)
class LimitsChanged:
    builders: int
    pushers: int


@dataclass(frozen=True)
class RunFinished:
    report: "RunReport"
