"""The run report: what happened to every image, as the CLI's --report JSON.

The supervisor fills one ImageResult per image as events pass through it, so
the report is exactly what the user saw live, including images that succeeded
before a failure or a cancel.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from .events import Stage, Status


@dataclass
class StageTimes:
    start: float | None = None
    end: float | None = None
    attempts: int = 0
    resumes: int = 0  # uploads resumed or restarted inside an attempt (pushes only)

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return self.end - self.start


@dataclass
class ImageResult:
    name: str
    refs: list[str]
    key: str = ""  # the image's key in events: its name, or name:tag where names repeat
    status: Status = Status.QUEUED
    stage: Stage | None = None
    error: str | None = None
    error_kind: str | None = None
    hint: str | None = None
    digest: str | None = None
    digests: dict[str, str] = field(default_factory=dict)
    image_id: str | None = None
    build: StageTimes = field(default_factory=StageTimes)
    push: StageTimes = field(default_factory=StageTimes)

    @property
    def attempts(self) -> int:
        """Tries of the last stage the image reached (1 = it worked first time)."""
        return self.push.attempts or self.build.attempts

    def __post_init__(self) -> None:
        self.key = self.key or self.name

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["stage"] = self.stage.value if self.stage else None
        data["attempts"] = self.attempts
        return data


@dataclass
class RunReport:
    started: float
    finished: float | None
    builders: int
    pushers: int
    registry: str
    images: list[ImageResult]
    cancelled: bool = False
    backend: str = ""  # what built: "buildkit" or "classic"
    backend_detail: str = ""  # which CLI or SDK, for people: "docker 20.10.24 at /usr/bin/docker, built-in BuildKit"
    push_via: str = ""  # "direct" or "engine"; "" for build-only runs

    def count(self, *statuses: Status) -> int:
        return sum(1 for image in self.images if image.status in statuses)

    def abandon(self, message: str, hint: str, stages: Mapping[str, Stage] | None = None) -> None:
        """End the report of a run that stopped without finishing: every image that was not
        finished failed with `message` (or each image of `stages`, at the stage given: those
        unfinished when the run broke off, which the stop itself may have marked cancelled);
        the others keep what they reached."""
        if stages is None:
            stages = {image.key: Stage.PUSH if image.build.end else Stage.BUILD
                      for image in self.images if not image.status.final}
        for image in self.images:
            if image.key in stages:
                image.status, image.error, image.error_kind, image.hint = Status.FAILED, message, "other", hint
                image.stage = stages[image.key]
        self.finished = self.finished or time.time()

    @property
    def succeeded(self) -> bool:
        wanted = Status.PUSHED if self.registry else Status.BUILT
        return all(image.status is wanted for image in self.images)

    def to_dict(self) -> dict[str, Any]:
        return {
            "started": self.started, "finished": self.finished,
            "builders": self.builders, "pushers": self.pushers,
            "registry": self.registry, "cancelled": self.cancelled,
            "backend": self.backend, "backend_detail": self.backend_detail, "push_via": self.push_via,
            "images": [image.to_dict() for image in self.images],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_csv(self) -> str:
        """One row per image, for spreadsheets; the JSON report is the complete one."""
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["name", "refs", "status", "stage", "error", "digest", "attempts",
                         "build_start", "build_end", "push_start", "push_end"])
        for image in self.images:
            writer.writerow([image.name, " ".join(image.refs), image.status.value,
                             image.stage.value if image.stage else "", image.error or "",
                             image.digest or "", image.attempts, image.build.start or "",
                             image.build.end or "", image.push.start or "", image.push.end or ""])
        return out.getvalue()
