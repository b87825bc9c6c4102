"""A pusher's memory and temporary disk while Dockpool's own uploader pushes big images.

Issue #7 asks that images of several GB push with bounded memory. For each size (one
layer of random bytes, so compression cannot shrink it), the image is built, then pushed
alone (pushers 1; direct, and with `--via direct,engine` the engine's push too) to a
fresh registry, and printed: the time, the pusher's peak
resident memory (VmHWM, from /proc, the whole life of the process), the peak size of
its temporary files, and whatever is left behind after the push. A flat peak across sizes
is the claim: the pusher holds a few MiB plus at most DOCKPOOL_PUSH_MEMORY_MB (64) of
layer bytes whatever the image's size.

Disk needed: about six times the largest size (context, the engine's layer and export,
the pusher's spool, the registry). Run it with `make bench-large-push`;
`BENCH_ARGS="--sizes-mb 16,256,2048"` for other sizes.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
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
from tests.helpers import bench_folder, write_project  # noqa: E402

MB = 1024 * 1024


def build_image(root: Path, size: int) -> str:
    """An image of one layer of `size` random bytes; its context is removed once built."""
    folder = root / f"large-{size // MB}"
    folder.mkdir()
    with open(folder / "payload.bin", "wb") as payload:
        for _ in range(size // MB):
            payload.write(os.urandom(MB))
    (folder / "Dockerfile").write_text("FROM scratch\nCOPY payload.bin /payload.bin\n")
    image_id = None
    try:
        for item in stream_client().build(path=str(folder), tag=f"dockpool-large-push-bench/{folder.name}:keep",
                                          rm=True, decode=True):
            if "error" in item:
                raise RuntimeError(item["error"])
            image_id = (item.get("aux") or {}).get("ID", image_id)
    finally:
        shutil.rmtree(folder)
    return str(image_id)


def status_kib(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None


def temp_bytes() -> int:
    """Bytes in every push's temporary folder right now."""
    total = 0
    for folder in Path(tempfile.gettempdir()).glob("dockpool-push-[0-9]*"):  # dockpool-push-<pid>-…
        for path in folder.glob("*"):
            try:
                total += path.stat().st_size
            except OSError:
                pass  # removed while listed
    return total


def push_alone(root: Path, name: str, image_id: str, via: str) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))
    registry = Registry(run_dir / "registry")
    registry.start()
    os.environ["DOCKPOOL_CACHE_DIR"] = str(run_dir / "cache")  # a fresh registry: nothing cached
    client = stream_client()
    ref = f"{registry.address}/{name}:latest"
    client.tag(image_id, *split_ref(ref))
    peaks = {"rss_kib": 0, "temp": 0}
    stop = threading.Event()

    def sample(pipeline: Pipeline) -> None:
        while not stop.is_set():
            for pid in pipeline.worker_pids(ev.Stage.PUSH):
                peaks["rss_kib"] = max(peaks["rss_kib"], status_kib(pid, "VmHWM") or 0)
            peaks["temp"] = max(peaks["temp"], temp_bytes())
            time.sleep(0.1)

    try:
        (run_dir / "Dockerfile").write_text("FROM scratch\n")  # for the project's check: it is not built
        project = load(write_project(run_dir, [{"name": name, "context": "."}], registry=registry.address,
                                     pushers=1, builders=1))
        options = RunOptions.from_project(project, push_via=via, retries=0)
        pipeline = Pipeline(project, options, push_only=[name])
        os.sync()
        started = time.monotonic()
        pipeline.start()
        sampler = threading.Thread(target=sample, args=(pipeline,), daemon=True)
        sampler.start()
        while not isinstance(record := pipeline.events.get(), ev.RunFinished):
            pass
        took = time.monotonic() - started
        stop.set()
        sampler.join()
        [image] = record.report.images
        if image.status is not ev.Status.PUSHED:
            raise RuntimeError(f"{name}: {image.status.value}: {image.error}")
        if registry.manifest_digest(name, "latest") != image.digest:
            raise RuntimeError(f"{name}: the registry serves another digest")
        return {"seconds": took, "rss_mib": peaks["rss_kib"] / 1024, "temp_mib": peaks["temp"] / MB,
                "left_mib": temp_bytes() / MB}
    finally:
        stop.set()
        registry.stop()
        shutil.rmtree(run_dir, ignore_errors=True)
        client.remove_image(ref)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="ignored: every push gets a fresh private registry")
    parser.add_argument("--sizes-mb", default="16,256,1024,2048")
    parser.add_argument("--via", default="direct", help="push paths, comma-separated: direct, engine")
    args = parser.parse_args()
    _, engine = connect()
    prestart(wait=True)
    root = bench_folder("dockpool-large-push-bench-")
    budget = os.environ.get("DOCKPOOL_PUSH_MEMORY_MB", "64 (the default)")
    print(f"{engine}; push memory budget {budget} MiB; temporary folder {tempfile.gettempdir()}", flush=True)
    for size_mb in (int(size) for size in args.sizes_mb.split(",")):
        image_id = build_image(root, size_mb * MB)
        for via in args.via.split(","):
            result = push_alone(root, f"large{size_mb}", image_id, via)
            print(f"{size_mb:6d} MiB, {via:6s}: pushed in {result['seconds']:6.1f} s; pusher's peak resident "
                  f"{result['rss_mib']:5.1f} MiB; temporary files at most {result['temp_mib']:7.1f} MiB, "
                  f"{result['left_mib']:.1f} MiB left after the push", flush=True)
        stream_client().remove_image(image_id, force=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
