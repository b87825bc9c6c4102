"""How the CLI shows a run: live bars on a terminal, timestamped lines elsewhere.

The live view is a few lines redrawn in place with ANSI cursor codes; it never
takes more lines than the terminal has (32 builders on a 24-line terminal get a
summary line instead of scrolling garbage). Windows consoles understand these
codes only once virtual-terminal processing is switched on; where that fails
(old consoles), or TERM=dumb, or DOCKPOOL_ANSI=0, the CLI prints lines instead.
The renderer is hand-written rather than `rich`: it is one screen of code, and
the frozen bundle has no room for rich and Pygments under its size budget.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TextIO

from ..pipeline import events as ev
from ..pipeline.report import RunReport

REDRAW_INTERVAL = 0.1
PROGRESS_EVERY = 30.0  # seconds between progress lines in line output (--progress-every)


class Renderer(Protocol):
    def handle(self, record: Any, context: list[str]) -> None: ...
    def tick(self) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


def _enable_windows_ansi(stream: TextIO) -> bool:
    """Switch on virtual-terminal processing for a Windows console (Windows 10 1511 on)."""
    import ctypes
    import msvcrt

    ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x0004
    try:
        handle = msvcrt.get_osfhandle(stream.fileno())
        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        mode = ctypes.c_uint32()
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return False
        return bool(kernel32.SetConsoleMode(handle, mode.value | ENABLE_VIRTUAL_TERMINAL_PROCESSING))
    except (OSError, AttributeError, ValueError):
        return False


def terminal_can_redraw(stream: TextIO) -> bool:
    """Live bars need a terminal that understands ANSI cursor codes."""
    if os.environ.get("DOCKPOOL_ANSI") == "0" or os.environ.get("TERM") == "dumb":
        return False
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    if sys.platform == "win32":
        return _enable_windows_ansi(stream)
    return True


def describe(record: Any) -> str | None:
    """One line for the records worth a line; None for progress and log noise."""
    match record:
        case ev.BuildStarted(image=image, attempt=attempt):
            return f"build started   {image}" + (f" (attempt {attempt})" if attempt > 1 else "")
        case ev.BuildDone(image=image, image_id=image_id):
            return f"built           {image} {image_id[:19]}"
        case ev.PushStarted(image=image, attempt=attempt):
            return f"push started    {image}" + (f" (attempt {attempt})" if attempt > 1 else "")
        case ev.PushDone(image=image, digest=digest):
            return f"pushed          {image} {digest}"
        case ev.BuildFailed(image=image, failure=failure) | ev.PushFailed(image=image, failure=failure):
            stage = "build" if isinstance(record, ev.BuildFailed) else "push"
            return (f"FAILED          {image} ({stage}, {failure.kind.value}): {failure.message}\n"
                    f"                what to do: {failure.hint}")
        case ev.RetryScheduled(image=image, stage=stage, attempt=attempt, delay=delay, failure=failure):
            return (f"retry           {image} {stage.value} attempt {attempt} in {delay:.0f} s "
                    f"({failure.kind.value}: {failure.message})")
        case ev.Cancelled(image=image, stage=stage):
            return f"cancelled       {image}" + (f" during {stage.value}" if stage else "")
        case ev.LimitsChanged(builders=builders, pushers=pushers):
            return f"limits          builders {builders}, pushers {pushers}"
    return None


def _stamp() -> str:
    return datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def _megabytes(count: int) -> str:
    return f"{count / 1e6:.1f} MB"


def progress_line(report: RunReport, elapsed: float) -> str:
    """'37/1000 done (30 pushed, 2 failed), 2 pushing, 5 waiting to push, 8 building, 948 queued, 02:15 elapsed'."""
    counts = {status: report.count(status) for status in ev.Status}
    finished = [f"{counts[s]} {s.value}" for s in ev.Status if s.final and counts[s]]
    unfinished = [f"{counts[s]} {s.value}" for s in reversed(ev.Status) if not s.final and counts[s]]  # nearest done first
    done = f"{sum(counts[s] for s in ev.Status if s.final)}/{len(report.images)} done"
    if finished:
        done += f" ({', '.join(finished)})"
    seconds = int(elapsed)
    return ", ".join([done, *unfinished, f"{seconds // 60:02d}:{seconds % 60:02d} elapsed"])


class LineRenderer:
    """Plain timestamped lines, for logs and pipes where bars would be garbage; every
    `progress_every` seconds (0: never) a line counting the whole run's images by state,
    so a CI log of hundreds of images says how far the run is."""

    def __init__(self, out: TextIO, report: RunReport, verbose: bool = False,
                 progress_every: float = PROGRESS_EVERY) -> None:
        self.out = out
        self.verbose = verbose
        self.report = report
        self.progress_every = progress_every
        self.started = time.monotonic()
        self.next_progress = self.started + progress_every

    def handle(self, record: Any, context: list[str]) -> None:
        if self.verbose and isinstance(record, ev.LogLine):
            for line in record.text.splitlines() or [""]:  # a record may hold a burst of lines
                self._line(f"{record.image} | {record.stage.value} | {line}")
        elif self.verbose and isinstance(record, ev.LogGap):
            self._line(f"{record.image} | … {record.skipped} log lines not shown (output fell behind; "
                       "--log-dir keeps every line)")
        elif isinstance(record, ev.BuildStep):
            self._line(f"build step      {record.image} {record.step}/{record.total}: {record.text}")
        elif (text := describe(record)) is not None:
            for line in context:
                self._line(f"  {record.image} | {line}")
            self._line(text)
        self.tick()  # a busy run may leave no quiet moment for the caller's tick

    def _line(self, text: str) -> None:
        for part in text.splitlines():
            print(f"{_stamp()} {part}", file=self.out, flush=True)

    def note(self, text: str) -> None:
        self._line(text)

    def tick(self) -> None:
        now = time.monotonic()
        if self.progress_every and now >= self.next_progress:
            self.next_progress = now + self.progress_every
            self._line(f"progress        {progress_line(self.report, now - self.started)}")

    def close(self) -> None:
        pass


@dataclass
class _Active:
    stage: ev.Stage
    step: int = 0
    steps: int = 0
    done: int = 0
    total: int = 0


class LiveRenderer:
    """An overall bar plus one bar per active build and push, redrawn in place."""

    def __init__(self, out: TextIO, report: RunReport) -> None:
        self.out = out
        self.count = len(report.images)
        self.pushing = bool(report.registry)
        self.started = time.monotonic()
        self.active: dict[str, _Active] = {}
        self.built = self.pushed = self.failed = self.cancelled = 0
        self.drawn_lines = 0
        self.last_draw = 0.0

    def handle(self, record: Any, context: list[str]) -> None:
        image = getattr(record, "image", None)
        if isinstance(record, ev.BuildStarted):
            self.active[image] = _Active(ev.Stage.BUILD)
        elif isinstance(record, ev.BuildStep) and image in self.active:
            self.active[image].step, self.active[image].steps = record.step, record.total
        elif isinstance(record, ev.BuildDone):
            self.built += 1
            self.active.pop(image, None)
        elif isinstance(record, ev.PushStarted):
            self.active[image] = _Active(ev.Stage.PUSH)
        elif isinstance(record, ev.PushProgress) and image in self.active:
            self.active[image].done, self.active[image].total = record.done, record.total
        elif isinstance(record, ev.PushDone):
            self.pushed += 1
            self.active.pop(image, None)
        elif isinstance(record, (ev.BuildFailed, ev.PushFailed, ev.Cancelled, ev.RetryScheduled)):
            self.active.pop(image, None)
            self.failed += isinstance(record, (ev.BuildFailed, ev.PushFailed))
            self.cancelled += isinstance(record, ev.Cancelled)
        if not isinstance(record, (ev.BuildStarted, ev.PushStarted, ev.BuildDone)):
            text = describe(record)
            if text is not None:
                self.note("\n".join([f"  {image} | {line}" for line in context] + [text]))
        self.tick()

    def note(self, text: str) -> None:
        """Print a line above the live bars."""
        self._clear()
        for part in text.splitlines():
            print(f"{_stamp()} {part}", file=self.out)
        self._draw()

    def tick(self) -> None:
        if time.monotonic() - self.last_draw >= REDRAW_INTERVAL:
            self._clear()
            self._draw()

    def close(self) -> None:
        self._clear()
        self.out.flush()

    def _clear(self) -> None:
        if self.drawn_lines:
            self.out.write(f"\x1b[{self.drawn_lines}F\x1b[J")
            self.drawn_lines = 0

    def _draw(self) -> None:
        size = shutil.get_terminal_size()
        width = max(40, size.columns - 1)
        room = max(2, size.lines - 2)  # bars never scroll the terminal
        finished = (self.pushed if self.pushing else self.built) + self.failed + self.cancelled
        elapsed = int(time.monotonic() - self.started)
        counts = f"built {self.built}  pushed {self.pushed}  failed {self.failed}" if self.pushing \
            else f"built {self.built}  failed {self.failed}"
        lines = [f"overall {_bar(finished, self.count, 30)} {finished}/{self.count}  {counts}  "
                 f"{elapsed // 60:02d}:{elapsed % 60:02d}"]
        active_items = sorted(self.active.items(), key=lambda item: item[1].stage.value)
        shown = active_items if len(active_items) < room else active_items[:room - 2]
        for image, active in shown:
            if active.stage is ev.Stage.BUILD:
                detail = f"step {active.step}/{active.steps}" if active.steps else "starting"
                bar = _bar(active.step, active.steps, 20)
            else:
                detail = f"{_megabytes(active.done)} / {_megabytes(active.total)}"
                bar = _bar(active.done, active.total, 20)
            lines.append(f"  {active.stage.value:5} {bar} {image[:30]:30} {detail}")
        hidden = active_items[len(shown):]
        if hidden:
            building = sum(1 for _, active in hidden if active.stage is ev.Stage.BUILD)
            lines.append(f"  ... and {len(hidden)} more ({building} building, {len(hidden) - building} pushing)")
        for line in lines:
            print(line[:width], file=self.out)
        self.out.flush()
        self.drawn_lines = len(lines)
        self.last_draw = time.monotonic()


def _bar(done: int, total: int, width: int) -> str:
    filled = int(width * done / total) if total else 0
    return "[" + "#" * filled + "-" * (width - filled) + "]"


def _duration(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def summary_table(report: RunReport) -> str:
    """The closing table: one row per image, then the counts."""
    rows = [("IMAGE", "STATUS", "BUILD", "PUSH", "TRIES", "DIGEST / ERROR")]
    for image in report.images:
        detail = image.digest or (f"[{image.stage.value if image.stage else '-'}] {image.error}"
                                  if image.error else "")
        rows.append((image.key, image.status.value, _duration(image.build.seconds),
                     _duration(image.push.seconds), str(image.attempts), detail))
    widths = [max(len(row[column]) for row in rows) for column in range(5)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:5])) + "  " + row[5]
             for row in rows]
    total = (report.finished or time.time()) - report.started
    counts = {status: report.count(status) for status in
              (ev.Status.PUSHED, ev.Status.BUILT, ev.Status.FAILED, ev.Status.CANCELLED)}
    lines.append(", ".join(f"{n} {status.value}" for status, n in counts.items() if n)
                 + f" in {total:.1f} s")
    return "\n".join(lines)
