"""How the memory of a run grows with the number of images (issue #11: by a small constant
per image, logs on disk, not in memory).

Runs the Qt-free pipeline, as the CLI and the window's controller do, on projects of
N small images (sizes from --sizes), each printing --lines log lines as it builds and
then pushed to the registry. Python's own allocations are traced (tracemalloc) over
the whole run, and the process's resident memory read before and after. Printed for
each N: the memory held once the run has finished (its report and results still
alive, as the window keeps them), the peak during the run, and then the slope between
the smallest and the largest N: the cost of one more image.

Run it with `make bench-memory` (a private engine and registry are started when needed).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gui.devservices import import_busybox  # noqa: E402
from gui.pipeline import events as ev  # noqa: E402
from gui.pipeline.build_backend import resolve_backend  # noqa: E402
from gui.pipeline.docker_engine import connect, stream_client  # noqa: E402
from gui.pipeline.project import load  # noqa: E402
from gui.pipeline.supervisor import Pipeline, RunOptions  # noqa: E402
from tests.helpers import bench_folder, write_project  # noqa: E402

MB = 1024 * 1024


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def make_project(root: Path, count: int, lines: int, registry: str) -> Path:
    folder = Path(tempfile.mkdtemp(prefix=f"memory-{count}-", dir=root))
    nonce = os.urandom(4).hex()
    images = []
    for index in range(count):
        image = folder / f"img{index:04d}"
        image.mkdir()
        (image / "Dockerfile").write_text(f"FROM dockpool-busybox\nRUN echo {nonce}-{index} && seq 1 {lines}\n")
        images.append({"name": f"memory/m{nonce}-{index:04d}", "context": image.name})
    return write_project(folder, images, registry=registry, builders=8, pushers=2)


def measure(path: Path, log_dir: Path) -> dict[str, float]:
    project = load(path)
    options = RunOptions.from_project(project, backend=resolve_backend(project.build))  # as the CLI chooses
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    rss_before = rss_mb()
    started = time.monotonic()
    pipeline = Pipeline(project, options, log_dir=log_dir)
    pipeline.start()
    while not isinstance(record := pipeline.events.get(), ev.RunFinished):
        pass
    pipeline.wait()
    took = time.monotonic() - started
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    report = record.report
    failed = [image.key for image in report.images if image.status is ev.Status.FAILED]
    if failed:
        raise SystemExit(f"{len(failed)} image(s) failed, e.g. {failed[0]}: the figures would mean nothing")
    return {"images": len(report.images), "seconds": took, "held": (held - before) / MB,
            "peak": (peak - before) / MB, "rss": rss_mb() - rss_before,
            "logs": sum(f.stat().st_size for f in log_dir.iterdir()) / MB}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True)
    parser.add_argument("--sizes", default="100,400")
    parser.add_argument("--lines", type=int, default=500, help="log lines each build prints")
    args = parser.parse_args()
    _, engine = connect()
    import_busybox(stream_client())
    root = bench_folder("dockpool-memory-bench-")
    print(f"{engine}; {args.lines} log lines per image, builders 8, pushers 2, pushed to {args.registry}", flush=True)
    results = []
    for count in (int(size) for size in args.sizes.split(",")):
        path = make_project(root, count, args.lines, args.registry)
        result = measure(path, Path(tempfile.mkdtemp(prefix="logs-", dir=root)))
        results.append(result)
        print(f"N = {count:5d}: {result['seconds']:6.1f} s; Python memory held after the run "
              f"{result['held']:6.2f} MB, peak during it {result['peak']:6.2f} MB; resident "
              f"+{result['rss']:.0f} MB; logs on disk {result['logs']:.1f} MB", flush=True)
    if len(results) > 1:
        small, large = results[0], results[-1]
        extra = large["images"] - small["images"]
        print(f"per image (N = {small['images']} to {large['images']}): "
              f"held {(large['held'] - small['held']) / extra * 1024:.1f} KB, "
              f"peak {(large['peak'] - small['peak']) / extra * 1024:.1f} KB, "
              f"while each wrote {(large['logs'] - small['logs']) / extra * 1024:.0f} KB of log to disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
