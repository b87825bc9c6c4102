"""How responsive the window stays with 1,000 images while one image streams 20,000 log lines.

The project has N images (small FROM scratch ones) and one that prints L log lines;
the log view follows that one, as a user watching it would. A 10 ms heartbeat
timer on the GUI thread records how late each tick fires: its lateness is how long
the GUI thread was busy. Printed: the run, the lateness p50/p99/max over the whole
run, over its first 10 s (a thousand rows start, the workers start) and while the
followed image's log streams (a p99 over the whole run would hide those phases),
the time to load and validate the project, and the window process's memory
(resident at the start, at the end, and its peak).

Run it with `make bench-window` (offscreen; a private engine and registry when needed).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HEARTBEAT_MS = 10


def make_project(root: Path, count: int, lines: int, registry: str, builders: int, pushers: int) -> Path:
    from tests.helpers import write_project

    nonce = os.urandom(6).hex()
    chatty = root / "chatty"
    chatty.mkdir(parents=True)
    (chatty / "Dockerfile").write_text(
        "FROM dockpool-busybox\n"
        # 200 lines (7 KB) every 0.1 s: under BuildKit's default 100 KiB/s, above which the
        # engine clips a step's output and most lines would never reach the window.
        f"RUN echo {nonce}; for i in $(seq 1 {lines}); do echo \"log line $i of the chatty image\"; "
        f"if [ $((i % 200)) = 0 ]; then sleep 0.1; fi; done\n")
    images = [{"name": "load/chatty", "context": "chatty"}]
    for index in range(count - 1):
        folder = root / f"img{index:04d}"
        folder.mkdir()
        (folder / "payload.txt").write_text(f"{nonce} {index}\n")
        (folder / "Dockerfile").write_text("FROM scratch\nCOPY payload.txt /payload.txt\n")
        images.append({"name": f"load/img{index:04d}", "context": folder.name})
    return write_project(root, images, registry=registry, builders=builders, pushers=pushers)


def run_queue_wait() -> float:
    """Milliseconds this thread has spent runnable but waiting for a core (Linux; -1 elsewhere)."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return -1.0


def keystroke_ms(app: object, window: object, row: int) -> float:
    """Milliseconds per keystroke typed into one image's Build args: each one is an edit that
    revalidates (the old window re-read every Dockerfile and compared rows pairwise).
    The edits are undone, so the run builds the project as it was written."""
    from PySide6.QtTest import QTest

    window.select_row(row)  # type: ignore[attr-defined]
    field = window.details.build_args  # type: ignore[attr-defined]
    field.setFocus()
    text = "VERSION=1.2"
    started = time.perf_counter()
    QTest.keyClicks(field, text)
    app.processEvents()  # type: ignore[attr-defined]
    took = (time.perf_counter() - started) * 1000 / len(text)
    while window.document.undo.canUndo():  # type: ignore[attr-defined]
        window.document.undo.undo()  # type: ignore[attr-defined]
    return took


def breakdown(beats: list[tuple[float, float, float, float]]) -> str:
    """Where the time of late beats (lateness, own CPU, wait for a core, when) went."""
    total = sum(gap + HEARTBEAT_MS for gap, *_ in beats)
    own = sum(spent for _, spent, _, _ in beats)
    core = sum(wait for _, _, wait, _ in beats)
    return (f"of their time (with the {HEARTBEAT_MS} ms between beats) {own / total:.0%} the GUI thread's own CPU, "
            f"{core / total:.0%} waiting for a core, {1 - (own + core) / total:.0%} idle or blocked (the GIL, or I/O)")


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("-n", "--images", type=int, default=1000)
    parser.add_argument("--lines", type=int, default=20_000, help="log lines the followed image prints")
    parser.add_argument("-b", "--builders", type=int, default=8)
    parser.add_argument("-p", "--pushers", type=int, default=4)
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.devservices import import_busybox
    from gui.pipeline.docker_engine import short_client
    from gui.window.main_window import MainWindow

    import_busybox(short_client())
    from tests.helpers import bench_folder

    root = bench_folder("dockpool-window-bench-")
    path = make_project(root, args.images, args.lines, args.registry, args.builders, args.pushers)

    app = QApplication([])
    window = MainWindow()
    window.show()
    at_start = rss_mb()
    loading = time.perf_counter()
    window.files.open_path(path, confirmed=True)
    loaded = time.perf_counter() - loading
    typing = keystroke_ms(app, window, args.images // 2)
    window.select_row(0)  # the log view follows the streaming image, as a user would watch it
    gaps: list[float] = []
    at: list[float] = []  # each beat's wall-clock time, to split the run into phases
    clock = QElapsedTimer()
    clock.start()
    wall_start = time.time()
    last = [clock.elapsed()]

    late: list[tuple[float, float]] = []  # (lateness, seconds into the run) of the long stalls
    # The GUI thread's own CPU time between beats: lateness with little CPU behind it is the
    # thread waiting for a core (2 cores, 8 builders, the engine), not the window's work.
    busy: list[float] = []
    cpu = [time.thread_time()]
    # Where a stall's time went, on Linux: the thread's own CPU, its wait for a core (the
    # scheduler's run-queue time), and the rest: idle (the 10 ms between beats) or blocked
    # (the GIL, or I/O).
    queued = [run_queue_wait()]
    stalls: list[tuple[float, float, float, float]] = []  # lateness, own CPU, wait for a core, at
    # The same for every beat late by more than a heartbeat: the beats that make the p99.
    late_beats: list[tuple[float, float, float, float]] = []

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(max(0.0, now - last[0] - HEARTBEAT_MS))
        at.append(wall_start + now / 1000)
        spent = time.thread_time()
        busy.append((spent - cpu[0]) * 1000)
        cpu[0] = spent
        waited = run_queue_wait()
        if gaps[-1] > HEARTBEAT_MS:
            late_beats.append((gaps[-1], busy[-1], waited - queued[0], wall_start + now / 1000))
        if gaps[-1] > 100:
            late.append((gaps[-1], now / 1000))
            stalls.append((gaps[-1], busy[-1], waited - queued[0], now / 1000))
        queued[0] = waited
        last[0] = now

    heartbeat = QTimer(interval=HEARTBEAT_MS, timeout=beat)
    result: list[object] = []
    window.runFinished.connect(lambda report: (result.append(report), app.quit()))
    started = time.monotonic()
    heartbeat.start()
    QTimer.singleShot(0, window.runs.start)
    app.exec()
    heartbeat.stop()
    took = time.monotonic() - started
    report = result[0]
    shown = window.log.text.line_count()
    at_end = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    window.document.undo.setClean()
    window.close()

    chatty = window.model.state(0)
    phases = {"the first 10 s": (wall_start, wall_start + 10),
              "while the followed log streams": (chatty.build_start or 0, chatty.build_end or 0)}
    in_phase = {name: sorted(gap for gap, when in zip(gaps, at) if start <= when <= end)
                for name, (start, end) in phases.items()}
    gaps.sort()
    p99 = gaps[int(len(gaps) * 0.99)]
    print(f"{args.images} images (one printing {args.lines} log lines, followed in the log view), "
          f"builders {args.builders}, pushers {args.pushers}: run took {took:.1f} s, "
          f"succeeded: {getattr(report, 'succeeded', None)}; project loaded and validated in {loaded:.2f} s; "
          f"{shown} lines in the log view; typing in one image's Build args: {typing:.1f} ms per keystroke")
    print(f"GUI thread lateness over {len(gaps)} heartbeats of {HEARTBEAT_MS} ms: "
          f"p50 {statistics.median(gaps):.1f} ms, p99 {p99:.1f} ms, max {gaps[-1]:.1f} ms (target p99 < 20 ms)")
    for name, phase in in_phase.items():
        if phase:
            print(f"  {name} ({len(phase)} heartbeats): p50 {statistics.median(phase):.1f} ms, "
                  f"p99 {phase[int(len(phase) * 0.99)]:.1f} ms, max {phase[-1]:.1f} ms")
    busy.sort()
    print(f"GUI thread CPU between heartbeats: p50 {statistics.median(busy):.1f} ms, "
          f"p99 {busy[int(len(busy) * 0.99)]:.1f} ms, max {busy[-1]:.1f} ms")
    if late:
        print("stalls over 100 ms (ms at s into the run): "
              + ", ".join(f"{gap:.0f} at {at:.1f}" for gap, at in sorted(late, reverse=True)[:8])
              + f" (of {len(late)})")
    if run_queue_wait() >= 0:
        streaming = phases["while the followed log streams"]
        for name, chosen in (("stalls over 100 ms", stalls),
                             (f"beats late by over {HEARTBEAT_MS} ms while the log streams",
                              [b for b in late_beats if streaming[0] <= b[3] <= streaming[1]])):
            if chosen:
                print(f"{name}, {len(chosen)}: {breakdown(chosen)}")
    print(f"window process memory: {at_start:.0f} MB resident with the window open, {at_end:.0f} MB after the run, "
          f"peak {peak:.0f} MB")


if __name__ == "__main__":
    main()
