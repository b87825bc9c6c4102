"""Dockpool against the naive loop (build, then push, one image after another).

Prints both times, their ratio, the lower bound max(ceil(N/B)*b + p, b + ceil(N/P)*p)
from the measured single-image build time b and push time p, the time from
start to the first build request, and the workers' resident memory and whether
any of them mapped Qt. Pushes go through a proxy limited to --push-rate bytes/s
per connection, so that pushing costs what it costs on a real network.

Run it with `make bench` (starts a private engine and registry when needed).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Spawned workers re-import this script as __mp_main__: keep module-level imports
# to the engine, so what they load is what the real entry points give them.
from gui.devservices import import_busybox  # noqa: E402
from gui.pipeline import events as ev  # noqa: E402
from gui.pipeline.docker_engine import connect, stream_client  # noqa: E402
from gui.pipeline.project import load  # noqa: E402
from gui.pipeline.supervisor import Pipeline, RunOptions  # noqa: E402
from gui.pipeline.worker import split_ref  # noqa: E402


def make_images(root: Path, count: int, sleep: float, payload: int) -> None:
    """Fresh random layer data and RUN steps every call, so no run is flattered by the cache."""
    nonce = os.urandom(8).hex()
    for index in range(count):
        folder = root / f"bench{index:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "payload.bin").write_bytes(os.urandom(payload))
        (folder / "Dockerfile").write_text(
            f"FROM dockpool-busybox\nRUN echo {nonce}-{index} > /nonce && sleep {sleep}\n"
            "COPY payload.bin /payload.bin\n")


def naive(project, client) -> tuple[float, list[float], list[float]]:
    builds, pushes = [], []
    started = time.monotonic()
    for image in project.images:
        t0 = time.monotonic()
        image_id = None
        for item in client.build(path=str(project.context_path(image)), rm=True, decode=True):
            if "error" in item:
                raise RuntimeError(item["error"])
            image_id = (item.get("aux") or {}).get("ID", image_id)
        for ref in image.refs(project.registry):
            client.tag(image_id, *split_ref(ref))
        t1 = time.monotonic()
        for ref in image.refs(project.registry):
            repository, tag = split_ref(ref)
            for item in client.push(repository, tag=tag, stream=True, decode=True):
                if "error" in item:
                    raise RuntimeError(item["error"])
        builds.append(t1 - t0)
        pushes.append(time.monotonic() - t1)
    return time.monotonic() - started, builds, pushes


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def maps_qt(pid: int) -> bool:
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False
    return "PySide6" in maps or "libQt6" in maps


def dockpool(project, builders: int, pushers: int, api_version: str) -> dict[str, float]:
    options = RunOptions.from_project(project, builders=builders, pushers=pushers)
    started = time.monotonic()
    pipeline = Pipeline(project, options, api_version=api_version)
    peak: dict[int, int] = {}
    qt: set[int] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for pid in pipeline.worker_pids():
                peak[pid] = max(peak.get(pid, 0), rss_kb(pid))
                if maps_qt(pid):
                    qt.add(pid)
            time.sleep(0.2)

    threading.Thread(target=sample, daemon=True).start()
    pipeline.start()
    first_build = None
    while True:
        record = pipeline.events.get()
        if isinstance(record, ev.BuildStarted) and first_build is None:
            first_build = time.monotonic() - started
        if isinstance(record, ev.RunFinished):
            break
    total = time.monotonic() - started
    stop.set()
    if not record.report.succeeded:
        raise SystemExit(f"Dockpool run failed: {[(i.name, i.error) for i in record.report.images]}")
    return {"total": total, "first_build": first_build or 0.0, "workers": len(peak),
            "max_rss_mb": max(peak.values(), default=0) / 1024, "qt_workers": len(qt)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="host:port of a registry the engine can push to")
    parser.add_argument("-n", "--images", type=int, default=24)
    parser.add_argument("-b", "--builders", type=int, default=4)
    parser.add_argument("-p", "--pushers", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=2.0, help="seconds of RUN sleep per build")
    parser.add_argument("--payload", type=int, default=4_000_000, help="random layer bytes per image")
    parser.add_argument("--push-rate", type=float, default=4_000_000, help="bytes/s per push connection")
    args = parser.parse_args()
    import PySide6.QtCore  # noqa: F401  (the parent has Qt loaded, as the window does)

    from tests.helpers import write_project
    from tests.proxy import Proxy

    _, engine = connect()
    client = stream_client(engine.api_version)
    import_busybox(client)
    host, port = args.registry.split(":")
    proxy = Proxy((host, int(port)), rate=args.push_rate)
    root = Path(tempfile.mkdtemp(prefix="dockpool-bench-"))
    images = [{"name": f"bench/img{i:02d}", "context": f"bench{i:02d}"} for i in range(args.images)]
    path = write_project(root, images, registry=proxy.address, builders=args.builders, pushers=args.pushers)

    make_images(root, args.images, args.sleep, args.payload)
    naive_total, builds, pushes = naive(load(path), client)
    b, p = sum(builds) / len(builds), sum(pushes) / len(pushes)
    n, big_b, big_p = args.images, args.builders, args.pushers
    bound = max(math.ceil(n / big_b) * b + p, b + math.ceil(n / big_p) * p)

    make_images(root, args.images, args.sleep, args.payload)
    result = dockpool(load(path), big_b, big_p, engine.api_version)
    proxy.close()

    print(f"engine: {engine}")
    print(f"N={n} B={big_b} P={big_p}, RUN sleep {args.sleep:g} s, {args.payload / 1e6:g} MB layer, "
          f"pushes limited to {args.push_rate / 1e6:g} MB/s per connection")
    print(f"single image: build b = {b:.2f} s, push p = {p:.2f} s")
    print(f"naive loop:   {naive_total:.1f} s")
    print(f"dockpool:     {result['total']:.1f} s  ({naive_total / result['total']:.2f}x faster)")
    print(f"lower bound:  {bound:.1f} s  (dockpool is {100 * (result['total'] / bound - 1):+.1f}% over it)")
    print(f"first build request after {result['first_build']:.2f} s")
    print(f"workers: {result['workers']}, peak RSS {result['max_rss_mb']:.1f} MB, "
          f"mapping Qt: {result['qt_workers']}")


if __name__ == "__main__":
    main()
