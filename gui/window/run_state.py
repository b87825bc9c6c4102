"""What the window knows about each image during and after a run, fed by engine records.

Kept apart from the Qt model so it can be fed and checked without a window. No
log lines are kept here: the engine writes every line to the image's log file
in the run folder, and the log view reads it from there, so a row costs the same
few fields however much its build prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..pipeline import events as ev

# What a failure kind means, in a few words for the status column.
KIND_LABELS = {
    "auth": "login refused", "rate-limited": "rate limited", "network": "network error",
    "registry-unreachable": "registry unreachable", "dockerfile": "Dockerfile error",
    "build-step": "build step failed", "stalled": "upload stalled", "worker-died": "worker died",
    "engine": "engine error", "timeout": "timed out", "registry-error": "registry error",
    "tls": "TLS certificate", "other": "error",
}


SHORT_MESSAGE = 60  # characters of the error on the row; the tooltip and the log have it all


def short_message(error: str) -> str:
    """The error's first line, cut from the front when long: its end usually says the most
    ("…returned a non-zero code: 7", "…: connection refused")."""
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= SHORT_MESSAGE else "…" + line[-(SHORT_MESSAGE - 1):]


@dataclass
class RowState:
    status: ev.Status | None = None
    step: int = 0
    steps: int = 0
    pushed: int = 0
    push_total: int = 0
    build_start: float | None = None
    build_end: float | None = None
    push_start: float | None = None
    push_end: float | None = None
    image_id: str | None = None
    digest: str | None = None
    refs: tuple[str, ...] = ()  # what the image was tagged and pushed as, in its last run
    built_from: str = ""  # its last build's inputs (project.build_inputs): a kept build must match them
    error: str | None = None
    error_kind: str | None = None
    hint: str | None = None
    failed_stage: ev.Stage | None = None
    note: str = ""  # e.g. "retry 2 in 4 s"
    will_push: bool = True  # the run has a registry (else a build is the end)
    log_lines: int = 0  # lines this run's log file has received
    log_files: list[Path] = field(default_factory=list)  # one per run that touched the image

    @property
    def build_fraction(self) -> float | None:
        if self.status in (ev.Status.PUSHED, ev.Status.BUILT, ev.Status.BUILT_WAITING, ev.Status.PUSHING):
            return 1.0
        return self.step / self.steps if self.steps else (0.0 if self.status else None)

    @property
    def push_fraction(self) -> float | None:
        if self.status is ev.Status.PUSHED:
            return 1.0
        if self.push_total:
            return min(1.0, self.pushed / self.push_total)
        return 0.0 if self.status is ev.Status.PUSHING else None

    def elapsed(self) -> float | None:
        """From the first build (or push) start to the end, or to now while it runs."""
        start = self.build_start or self.push_start
        if start is None:
            return None
        if self.status is not None and self.status.final:
            return (self.push_end or self.build_end or start) - start
        return time.time() - start

    def status_text(self) -> str:
        if self.status is None:
            return ""
        if self.status is ev.Status.BUILDING and self.steps:
            text = f"building step {self.step}/{self.steps}"
        elif self.status is ev.Status.FAILED and self.error_kind:
            text = f"failed: {KIND_LABELS.get(self.error_kind, self.error_kind)}"
            if self.error and not self.note:
                text += f" — {short_message(self.error)}"
        else:
            text = self.status.value
        return f"{text} — {self.note}" if self.note else text

    def push_again(self) -> None:
        """The build is kept; a new run pushes it again."""
        self.status, self.error, self.error_kind, self.hint, self.note = ev.Status.BUILT_WAITING, None, None, None, ""
        self.push_start = self.push_end = None
        self.pushed = self.push_total = 0
        self.failed_stage = None


def apply(state: RowState, record: Any) -> None:
    """Fold one engine record into a row's state."""
    now = time.time()
    match record:
        case ev.BuildStarted(at=at):
            state.status, state.step, state.steps, state.note = ev.Status.BUILDING, 0, 0, ""
            state.build_start, state.build_end = at, None
        case ev.BuildStep(step=step, total=total):
            state.step, state.steps = step, total
        case ev.LogLine(text=text):
            state.log_lines += ev.file_lines(text)
        case ev.LogGap(skipped=skipped):
            state.log_lines += skipped
        case ev.BuildDone(image_id=image_id):
            state.image_id, state.build_end = image_id, now
            state.status = ev.Status.BUILT_WAITING if state.will_push else ev.Status.BUILT
        case ev.PushStarted(at=at):
            state.status, state.pushed, state.push_total, state.note = ev.Status.PUSHING, 0, 0, ""
            state.push_start, state.push_end = at, None
        case ev.PushProgress(done=done, total=total):
            state.pushed, state.push_total = done, total
        case ev.PushDone(digest=digest):
            state.status, state.digest, state.push_end, state.note = ev.Status.PUSHED, digest, now, ""
        case ev.BuildFailed(failure=failure) | ev.PushFailed(failure=failure):
            stage = ev.Stage.BUILD if isinstance(record, ev.BuildFailed) else ev.Stage.PUSH
            state.status, state.failed_stage, state.note = ev.Status.FAILED, stage, ""
            state.error, state.error_kind, state.hint = failure.message, failure.kind.value, failure.hint
            if stage is ev.Stage.BUILD:
                state.build_end = state.build_end or now
            else:
                state.push_end = now
        case ev.RetryScheduled(stage=stage, attempt=attempt, delay=delay, failure=failure):
            state.status = ev.Status.QUEUED if stage is ev.Stage.BUILD else ev.Status.BUILT_WAITING
            state.note = f"retry {attempt} in {delay:.0f} s ({KIND_LABELS.get(failure.kind.value, 'error')})"
        case ev.Cancelled(stage=stage):
            state.status, state.failed_stage, state.note = ev.Status.CANCELLED, stage, ""
            if state.build_start and not state.build_end:
                state.build_end = now
            if state.push_start and not state.push_end:
                state.push_end = now
