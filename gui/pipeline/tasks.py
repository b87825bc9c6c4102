"""What the supervisor sends a worker process: small frozen records, cheap to pickle.

Kept free of imports beyond the standard library: the supervisor and every worker
load this module, and a worker must start in milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .priority import caller_niceness
from .spool import MEMORY_BUDGET

EXPORT_TIMEOUT_FLOOR = 300.0  # an engine may take minutes to prepare a large image's export


def export_timeout(stall_timeout: float) -> float:
    """How long a direct push waits for the engine's export to send its next bytes."""
    return max(EXPORT_TIMEOUT_FLOOR, 2 * stall_timeout)


@dataclass(frozen=True)
class BuildBackend:
    """Which builder builds: the Docker SDK's classic builder, or BuildKit through a CLI."""

    kind: str = "classic"  # "classic" or "buildkit"
    cli: str = ""  # the docker CLI that builds (buildkit)
    buildx: bool = False  # `docker buildx build`; else `docker build` with DOCKER_BUILDKIT=1
    builder: str = ""  # a buildx builder by name ([build] builder)
    detail: str = "Docker SDK, classic builder"  # for the CLI header, the window and the report

    def __str__(self) -> str:
        return f"{self.kind} ({self.detail})"


@dataclass(frozen=True)
class WorkerConfig:
    """Per process, at start: how to reach the engine, where to log when there is no stderr,
    and the caller's environment. A fork-server worker would otherwise inherit the fork
    server's environment, frozen when it started (DOCKER_HOST, DOCKER_CONFIG, proxies);
    with this, every start method gives workers what `spawn` gives them."""

    api_version: str | None = None
    log_file: str | None = None
    environment: dict[str, str] = field(default_factory=dict, repr=False)
    niceness: int | None = field(default_factory=caller_niceness)  # POSIX: the caller's (see priority)


@dataclass(frozen=True)
class BuildTask:
    image: str
    context: str
    dockerfile: str
    refs: tuple[str, ...]
    build_args: dict[str, str]
    target: str
    attempt: int
    backend: BuildBackend = BuildBackend()
    network: str = "default"
    platform: str = ""
    secrets: dict[str, str] = field(default_factory=dict)  # id -> absolute file path
    ssh: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()
    cache_to: tuple[str, ...] = ()
    base_dir: str = ""  # the project file's folder: relative ssh keys and cache folders start there


@dataclass(frozen=True)
class PushTask:
    image: str
    refs: tuple[str, ...]
    attempt: int
    auth: dict[str, str] | None = field(default=None, repr=False)  # never echoed in events
    via: str = "direct"  # "direct" (Dockpool's uploader) or "engine" (the engine's push)
    insecure: bool = False  # plain HTTP allowed, TLS not verified
    stall_timeout: float = 60.0
    image_id: str = ""
    memory_budget: int = MEMORY_BUDGET  # bytes of compressed layers held in memory (see spool)

    def __repr__(self) -> str:  # keep credentials out of any log or traceback
        return f"PushTask(image={self.image!r}, refs={self.refs!r}, attempt={self.attempt}, via={self.via!r})"


@dataclass(frozen=True)
class SlotGranted:
    """The supervisor's answer to SlotWanted: this pusher may upload one blob now."""
