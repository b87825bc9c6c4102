"""Pushing through Dockpool's own uploader (direct) against pushing through the engine.

N images of L random layers of S MB each are built once; then, for each push path and
each number of pushers, they are pushed to a fresh registry behind a proxy that lets
4 MB/s through in total (an uplink). Printed per run: the makespan, the bytes that
crossed the uplink, the concurrency on the wire as the registry logged it, and every
image's outcome. Then the same run once more with one stall injected: one connection
stops being read in the middle of a blob and is held open, never reset.

Targets (issue #7): direct no slower than engine without stalls; with the stall, direct
finishes within stall-timeout + 10 % of its stall-free time, where engine fails the image.

Run it with `make bench-push` (a private engine and registry are started when needed);
`--images 4 --layers 1` gives a quick look.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gui.devservices import Registry  # noqa: E402
from gui.pipeline import events as ev  # noqa: E402
from gui.pipeline.docker_engine import connect, stream_client  # noqa: E402
from gui.pipeline.project import load  # noqa: E402
from gui.pipeline.streams import split_ref  # noqa: E402
from gui.pipeline.supervisor import Pipeline, RunOptions  # noqa: E402
from gui.pipeline.workers import prestart  # noqa: E402
from tests.helpers import bench_folder, max_concurrent, write_project  # noqa: E402
from tests.proxy import Proxy  # noqa: E402

MB = 1_000_000


def build_images(root: Path, count: int, layers: int, size: int) -> list[tuple[str, str]]:
    """(name, image id) of `count` images, each `layers` fresh random layers of `size` bytes."""
    client = stream_client()
    built = []
    for index in range(count):
        folder = root / f"push{index:02d}"
        folder.mkdir(parents=True)
        lines = ["FROM scratch"]
        for layer in range(layers):
            (folder / f"layer{layer}.bin").write_bytes(os.urandom(size))
            lines.append(f"COPY layer{layer}.bin /layer{layer}.bin")
        (folder / "Dockerfile").write_text("\n".join(lines) + "\n")
        image_id = None
        for item in client.build(path=str(folder), tag=f"dockpool-push-bench/push{index:02d}:keep", rm=True,
                                 decode=True):
            if "error" in item:
                raise RuntimeError(item["error"])
            image_id = (item.get("aux") or {}).get("ID", image_id)
        built.append((f"push{index:02d}", str(image_id)))
    return built


def registry_home(choice: str) -> Path | None:
    """Where the registries keep their blobs: None is the bench's temporary folder.

    On disk by default, as a registry on the same machine keeps them (a local registry,
    a CI service container). The registry syncs a file to disk at the end of every
    PATCH; on the same ext4 disk that sync waits for everything the pusher has written
    meanwhile (the next image's compressed layers) to reach the disk first, and the
    upload pauses: a cost of the direct path's temporary files that the engine's push,
    which writes none, does not pay. `--registry-storage ram` keeps the blobs in RAM, as
    for a registry on another machine, which never waits for the user's disk."""
    ram = Path("/dev/shm")
    if choice == "disk" or not (ram.is_dir() and os.access(ram, os.W_OK)):
        return None
    return ram


def push_run(root: Path, images: list[tuple[str, str]], via: str, pushers: int, rate: float,
             stall_after: int | None, stall_timeout: float, storage: Path | None = None) -> dict:
    """One push of every image to a fresh registry behind the uplink; returns the figures."""
    run_dir = Path(tempfile.mkdtemp(prefix=f"{via}-{pushers}-", dir=root))
    registry_dir = Path(tempfile.mkdtemp(prefix="dockpool-push-bench-registry-", dir=storage)) if storage \
        else run_dir / "registry"
    registry = Registry(registry_dir)
    registry.start()
    host, port = registry.address.split(":")
    uplink = Proxy((host, int(port)), total_rate=rate, stall_after=stall_after)
    os.environ["DOCKPOOL_CACHE_DIR"] = str(run_dir / "cache")  # a fresh registry: nothing cached
    client = stream_client()
    try:
        for name, image_id in images:
            client.tag(image_id, *split_ref(f"{uplink.address}/{name}:latest"))
        project = load(write_project(run_dir, [{"name": name, "context": f"../{name}"} for name, _ in images],
                                     registry=uplink.address, pushers=pushers, builders=1))
        options = RunOptions.from_project(project, push_via=via, stall_timeout=stall_timeout, retries=2,
                                          retry_backoff=1.0)
        pipeline = Pipeline(project, options, push_only=[name for name, _ in images])
        # The CLI and the window start the fork server while the project loads, so a run
        # finds it ready; so does every run here. Without it the first run (direct,
        # pushers 1) alone waited 0.4 s for it: its first upload started after 0.7 s,
        # the engine's (the fork server running by then) after 0.07 s.
        prestart(wait=True)
        # Every run starts with the disk clean: the images were just built (288 MB of layers
        # the kernel still writes back), and the run before left its own writes. Without
        # this, the run that comes first after the build (direct, pushers 1) waited for
        # that write-back at every sync of the registry: 1.5 to 2 s of a 73 s run.
        os.sync()
        started = time.monotonic()
        pipeline.start()
        while not isinstance(record := pipeline.events.get(), ev.RunFinished):
            pass
        took = time.monotonic() - started
        report = record.report
        blob_requests = [r for r in registry.requests() if r.from_pusher and "/blobs/" in r.uri]
        uploads = [(r.start, r.end) for r in blob_requests if r.method in ("PATCH", "PUT")]
        bodies = [(r.start, r.end) for r in blob_requests if r.method == "PATCH"]
        commits = sorted(r.duration for r in blob_requests if r.method == "PUT")
        return {"via": via, "pushers": pushers, "seconds": took, "bytes": uplink.uploaded,
                "on_wire": max_concurrent(uploads) if uploads else 0, "stalled": uplink.stalled.is_set(),
                "idle": idle_time(bodies), "commit_median": commits[len(commits) // 2] if commits else 0.0,
                "pushed": report.count(ev.Status.PUSHED), "failed": report.count(ev.Status.FAILED),
                "errors": sorted({i.error_kind for i in report.images if i.error_kind}),
                "resumes": sum(i.push.resumes for i in report.images),
                "retries": sum(max(0, i.push.attempts - 1) for i in report.images)}
    finally:
        uplink.close()
        registry.stop()
        if storage:
            shutil.rmtree(registry_dir, ignore_errors=True)
        for name, _ in images:
            try:
                client.remove_image(f"{uplink.address}/{name}:latest")
            except Exception:
                pass


def idle_time(intervals: list[tuple[float, float]]) -> float:
    """Seconds between the first body upload's start and the last one's end when no blob
    body was on its way (what the wire waits for: exports, HEADs, commits, manifests)."""
    if not intervals:
        return 0.0
    covered, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            covered += end - start
            reach = end
        elif end > reach:
            covered += end - reach
            reach = end
    return max(end for _, end in intervals) - min(start for start, _ in intervals) - covered


def show(result: dict) -> None:
    outcome = f"{result['pushed']} pushed" + (f", {result['failed']} failed {result['errors']}"
                                              if result["failed"] else "")
    print(f"{result['via']:6} pushers {result['pushers']}: {result['seconds']:6.1f} s, "
          f"{result['bytes'] / MB:6.1f} MB sent, at most {result['on_wire']} uploads on the wire, "
          f"{result['resumes']} resumes, {result['retries']} retries, {outcome}; no blob body on the wire "
          f"for {result['idle']:.2f} s, a blob's commit (PUT) {result['commit_median'] * 1000:.0f} ms (median)",
          flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="ignored: every run gets a fresh private registry")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--layer-mb", type=float, default=8)
    parser.add_argument("--uplink-mb", type=float, default=4, help="MB/s for all connections together")
    parser.add_argument("--pushers", default="1,2,4")
    parser.add_argument("--stall-timeout", type=float, default=10)
    parser.add_argument("--registry-storage", choices=("ram", "disk"), default="disk",
                        help="where the registries keep their blobs (see registry_home)")
    args = parser.parse_args()
    storage = registry_home(args.registry_storage)
    _, engine = connect()
    root = bench_folder("dockpool-push-bench-")
    size = int(args.layer_mb * MB)
    print(f"{engine}; {args.images} images x {args.layers} layers x {args.layer_mb:g} MB, "
          f"uplink {args.uplink_mb:g} MB/s in total; registry storage: {storage or 'disk'}", flush=True)
    images = build_images(root, args.images, args.layers, size)
    rate = args.uplink_mb * MB
    clean: dict[tuple[str, int], dict] = {}
    for pushers in (int(p) for p in args.pushers.split(",")):
        for via in ("direct", "engine"):
            clean[(via, pushers)] = result = push_run(root, images, via, pushers, rate, None, args.stall_timeout,
                                                       storage)
            show(result)
    pushers = 2 if (("direct", 2) in clean) else next(iter(clean))[1]
    print(f"one stall injected (a connection held open, never reset), pushers {pushers}, "
          f"stall timeout {args.stall_timeout:g} s:", flush=True)
    stall_at = size // 2  # in the middle of the first blob on a connection, for either path
    for via in ("direct", "engine"):
        result = push_run(root, images, via, pushers, rate, stall_at, args.stall_timeout, storage)
        show(result)
        if via == "direct":
            budget = args.stall_timeout + 1.1 * clean[("direct", pushers)]["seconds"]
            print(f"       target: within stall timeout + 10 % of the stall-free run = {budget:.1f} s "
                  f"({'met' if result['seconds'] <= budget and not result['failed'] else 'MISSED'})", flush=True)
    for pushers in sorted({p for _, p in clean}):
        direct, engine_run = clean[("direct", pushers)], clean[("engine", pushers)]
        difference = direct["seconds"] / engine_run["seconds"] - 1
        verdict = "met" if difference <= 0 else "within the 2 % noise" if difference <= 0.02 else "MISSED"
        print(f"pushers {pushers}: direct {direct['seconds']:.1f} s vs engine {engine_run['seconds']:.1f} s, "
              f"{difference:+.1%} (target: direct no slower: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
