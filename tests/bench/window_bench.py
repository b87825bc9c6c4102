"""How responsive the window stays while 100 images stream logs and layer progress.

A 10 ms heartbeat timer on the GUI thread records how late each tick fires; the
worst lateness is how long the GUI thread was busy. Prints p50, p99 and max.
Run it with `make bench-window` (offscreen; a private engine and registry when needed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

HEARTBEAT_MS = 10


def make_project(root: Path, count: int, lines: int, payload: int, registry: str, builders: int,
                 pushers: int) -> Path:
    from tests.helpers import write_project

    nonce = os.urandom(6).hex()
    images = []
    for index in range(count):
        folder = root / f"img{index:03d}"
        folder.mkdir(parents=True)
        (folder / "payload.bin").write_bytes(os.urandom(payload))
        (folder / "Dockerfile").write_text(
            "FROM dockpool-busybox\n"
            f"RUN echo {nonce}; for i in $(seq 1 {lines}); do echo \"log line $i of image {index}\"; done\n"
            "COPY payload.bin /payload.bin\n")
        images.append({"name": f"load/img{index:03d}", "context": folder.name})
    return write_project(root, images, registry=registry, builders=builders, pushers=pushers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("-n", "--images", type=int, default=100)
    parser.add_argument("--lines", type=int, default=200, help="log lines each build prints")
    parser.add_argument("--payload", type=int, default=1_000_000)
    parser.add_argument("-b", "--builders", type=int, default=8)
    parser.add_argument("-p", "--pushers", type=int, default=2)
    args = parser.parse_args()

    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from gui.devservices import import_busybox
    from gui.pipeline.docker_engine import short_client
    from gui.window.main_window import MainWindow

    import_busybox(short_client())
    root = Path(tempfile.mkdtemp(prefix="dockpool-window-bench-"))
    path = make_project(root, args.images, args.lines, args.payload, args.registry, args.builders, args.pushers)

    app = QApplication([])
    window = MainWindow()
    window.show()
    window.open_path(path, confirmed=True)
    window.select_row(0)  # the log view follows a streaming image, as a user would watch it
    gaps: list[float] = []
    clock = QElapsedTimer()
    clock.start()
    last = [clock.elapsed()]

    def beat() -> None:
        now = clock.elapsed()
        gaps.append(max(0.0, now - last[0] - HEARTBEAT_MS))
        last[0] = now

    heartbeat = QTimer(interval=HEARTBEAT_MS, timeout=beat)
    result: list[object] = []
    window.runFinished.connect(lambda report: (result.append(report), app.quit()))
    started = time.monotonic()
    heartbeat.start()
    QTimer.singleShot(0, window.start)
    app.exec()
    heartbeat.stop()
    took = time.monotonic() - started
    report = result[0]
    window._dirty = False
    window.close()

    gaps.sort()
    p99 = gaps[int(len(gaps) * 0.99)]
    print(f"{args.images} images, {args.lines} log lines each, {args.payload / 1e6:g} MB layers, "
          f"builders {args.builders}, pushers {args.pushers}: run took {took:.1f} s, "
          f"succeeded: {report.succeeded}")
    print(f"GUI thread lateness over {len(gaps)} heartbeats of {HEARTBEAT_MS} ms: "
          f"p50 {statistics.median(gaps):.1f} ms, p99 {p99:.1f} ms, max {gaps[-1]:.1f} ms")


if __name__ == "__main__":
    main()
