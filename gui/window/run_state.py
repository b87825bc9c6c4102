"""What the window knows about each image during a run, fed by engine records.

Kept apart from the Qt model so it can be fed and checked without a window.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ..pipeline import events as ev

MAX_LOG_LINES = 5000


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
    error: str | None = None
    failed_stage: ev.Stage | None = None
    note: str = ""  # e.g. "retry 2 in 4 s"
    log: list[tuple[str, str, bool]] = field(default_factory=list)  # (stage, text, is_error)

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
            return self.pushed / self.push_total
        return 0.0 if self.status is ev.Status.PUSHING else None

    def elapsed(self) -> float | None:
        """From the first build (or push) start to the end, or to now while it runs."""
        start = self.build_start or self.push_start
        if start is None:
            return None
        if self.status is not None and self.status.final:
            return (self.push_end or self.build_end or start) - start
        return time.time() - start

    def add_log(self, stage: ev.Stage | str, text: str, error: bool = False) -> None:
        self.log.append((getattr(stage, "value", str(stage)), text, error))
        if len(self.log) > MAX_LOG_LINES:
            del self.log[: len(self.log) - MAX_LOG_LINES]


def apply(state: RowState, record: Any) -> None:
    """Fold one engine record into a row's state."""
    now = time.time()
    match record:
        case ev.BuildStarted(at=at, attempt=attempt):
            state.status, state.step, state.steps, state.note = ev.Status.BUILDING, 0, 0, ""
            state.build_start, state.build_end = at, None
            state.add_log(ev.Stage.BUILD, f"--- build attempt {attempt} ---")
        case ev.BuildStep(step=step, total=total):
            state.step, state.steps = step, total
        case ev.LogLine(stage=stage, text=text, error=error):
            state.add_log(stage, text, error)
        case ev.BuildDone(image_id=image_id):
            state.image_id, state.build_end = image_id, now
            state.status = ev.Status.BUILT_WAITING
        case ev.PushStarted(at=at, attempt=attempt):
            state.status, state.pushed, state.push_total, state.note = ev.Status.PUSHING, 0, 0, ""
            state.push_start, state.push_end = at, None
            state.add_log(ev.Stage.PUSH, f"--- push attempt {attempt} ---")
        case ev.PushProgress(done=done, total=total):
            state.pushed, state.push_total = done, total
        case ev.PushDone(digest=digest):
            state.status, state.digest, state.push_end = ev.Status.PUSHED, digest, now
        case ev.BuildFailed(failure=failure) | ev.PushFailed(failure=failure):
            stage = ev.Stage.BUILD if isinstance(record, ev.BuildFailed) else ev.Stage.PUSH
            state.status, state.failed_stage = ev.Status.FAILED, stage
            state.error = f"{failure.message}\nWhat to do: {failure.hint}"
            if stage is ev.Stage.BUILD:
                state.build_end = state.build_end or now
            else:
                state.push_end = now
            state.add_log(stage, f"FAILED ({failure.kind.value}): {failure.message} — {failure.hint}", True)
        case ev.RetryScheduled(stage=stage, attempt=attempt, delay=delay, failure=failure):
            state.status = ev.Status.QUEUED if stage is ev.Stage.BUILD else ev.Status.BUILT_WAITING
            state.note = f"retry {attempt} in {delay:.0f} s ({failure.kind.value})"
            state.add_log(stage, f"{failure.message}; retrying (attempt {attempt}) in {delay:.0f} s", True)
        case ev.Cancelled(stage=stage):
            state.status, state.failed_stage = ev.Status.CANCELLED, stage
            if state.build_start and not state.build_end:
                state.build_end = now
            if state.push_start and not state.push_end:
                state.push_end = now
            state.add_log(stage or ev.Stage.BUILD, "cancelled", True)
