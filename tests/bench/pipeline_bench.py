"""Dockpool side by side with what users would otherwise use, on one engine and registry.

For each N (24 and 100 small images by default; each run gets fresh image content,
so no engine cache flatters anyone), with pushers P = 2:
  - the naive loop: build, then push, one image after another (Docker SDK);
  - the seed's design: one forked process per image, a multiprocessing.Pool of P
    pushers fed through a Manager queue;
  - docker-compose (Debian's): `build --parallel`, then `push`;
  - Dockpool with builders 4, and builders N (at most 64), on the same footing as
    those (classic builder, the engine's push); then its defaults (BuildKit, its own
    uploader) and the same runs with workers started by spawn (Windows' method);
  - the lower bound from measured times: max(ceil(N/B) * wave(B) + p, b + ceil(N/P) * p),
    where wave(B) is one wave of B concurrent builds, b one build alone, p one push.
Printed for each Dockpool run: total time, and start to first build request (from
the run's own report: pipeline created to the first worker's build request).

Targets (issue #11): first build request under 0.3 s (builders 4) and under 1 s
(builders 32) on Linux; Dockpool at builders N no slower than the seed's design;
builders 4 within 10 % of the lower bound.

Run it with `make bench` (a private engine and registry are started when needed);
`make bench BENCH_ARGS="--sizes 100 --seed-pairs 3"` runs only the seed design and
builders N, alternately, three times each.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# Module-level imports stay to the engine. (Dockpool's workers do not run this script
# again: see workers._main_left_out; the seed design's forked processes share it.)
from gui.devservices import import_busybox  # noqa: E402
from gui.pipeline import events as ev  # noqa: E402
from gui.pipeline.build_backend import resolve_backend  # noqa: E402
from gui.pipeline.docker_engine import connect, stream_client  # noqa: E402
from gui.pipeline.project import BuildSettings, load  # noqa: E402
from gui.pipeline.streams import split_ref  # noqa: E402
from gui.pipeline.supervisor import Pipeline, RunOptions  # noqa: E402
from gui.pipeline.tasks import BuildBackend  # noqa: E402

PAYLOAD = 256 * 1024
SEED_WAIT = 600  # seconds the seed design waits for its next build


def make_images(root: Path, count: int) -> Path:
    """Fresh image folders (new random content) and their project; returns the project file."""
    from tests.helpers import write_project

    folder = Path(tempfile.mkdtemp(prefix="set-", dir=root))
    nonce = os.urandom(8).hex()
    images = []
    for index in range(count):
        image = folder / f"img{index:03d}"
        image.mkdir()
        (image / "payload.bin").write_bytes(os.urandom(PAYLOAD))
        (image / "Dockerfile").write_text(f"FROM dockpool-busybox\nRUN echo {nonce}-{index} > /nonce\n"
                                          "COPY payload.bin /payload.bin\n")
        # The name from the nonce, never the folder's: mkdtemp's letters may put two
        # separators in a row ("set-x_-001"), which no repository name may have.
        images.append({"name": f"bench/set-{nonce[:8]}-{index:03d}", "context": image.name})
    return write_project(folder, images, registry=REGISTRY, builders=4, pushers=2)


REGISTRY = ""


def build_one(context: str, refs: list[str]) -> None:
    client = stream_client()
    image_id = None
    for item in client.build(path=context, rm=True, decode=True, network_mode="host"):
        if "error" in item:
            raise RuntimeError(item["error"])
        image_id = (item.get("aux") or {}).get("ID", image_id)
    for ref in refs:
        client.tag(image_id, *split_ref(ref))


def push_one(refs: list[str]) -> None:
    client = stream_client()
    for ref in refs:
        repository, tag = split_ref(ref)
        for item in client.push(repository, tag=tag, stream=True, decode=True):
            if "error" in item:
                raise RuntimeError(item["error"])


def measured_parts(root: Path, builders: int) -> tuple[float, float, float]:
    """b (one build alone), wave(B) (B builds at once), p (one push)."""
    project = load(make_images(root, builders + 1))
    first = project.images[0]
    started = time.monotonic()
    build_one(str(project.context_path(first)), first.refs(REGISTRY))
    b = time.monotonic() - started
    threads = [threading.Thread(target=build_one, args=(str(project.context_path(i)), i.refs(REGISTRY)))
               for i in project.images[1:]]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wave = time.monotonic() - started
    started = time.monotonic()
    push_one(first.refs(REGISTRY))
    return b, wave, time.monotonic() - started


def naive(path: Path) -> float:
    project = load(path)
    started = time.monotonic()
    for image in project.images:
        build_one(str(project.context_path(image)), image.refs(REGISTRY))
        push_one(image.refs(REGISTRY))
    return time.monotonic() - started


def _seed_build(context: str, refs: list[str], done: object) -> None:
    build_one(context, refs)
    done.put(refs)  # type: ignore[attr-defined]


def seed_design(path: Path, pushers: int) -> float:
    """The design Dockpool started from: a process per image, a Pool of pushers."""
    project = load(path)
    fork = multiprocessing.get_context("fork")
    started = time.monotonic()
    with fork.Manager() as manager, fork.Pool(pushers) as pool:
        built = manager.Queue()
        builds = [fork.Process(target=_seed_build, args=(str(project.context_path(i)), i.refs(REGISTRY), built))
                  for i in project.images]
        for process in builds:
            process.start()
        # A build that dies (or an engine that stops starting build containers, seen once
        # with 100 at a time) never puts its refs: fail the bench, never hang it.
        try:
            pushes = [pool.apply_async(push_one, (built.get(timeout=SEED_WAIT),)) for _ in project.images]
        except queue.Empty:
            raise SystemExit(f"the seed design: a build did not finish within {SEED_WAIT} s") from None
        for push in pushes:
            push.get()
        for process in builds:
            process.join()
    return time.monotonic() - started


def compose(path: Path) -> float:
    project = load(path)
    lines = ["services:"]
    for index, image in enumerate(project.images):
        lines += [f"  s{index:03d}:", f"    image: {image.refs(REGISTRY)[0]}",
                  f"    build: {{context: {project.context_path(image)}, network: host}}"]
    compose_file = path.parent / "docker-compose.yml"
    compose_file.write_text("\n".join(lines) + "\n")
    started = time.monotonic()
    # No -q for push: docker-compose 1.29 has none, and `push -q` prints its usage and
    # exits 0 having pushed nothing (the README's compose figures before 2026-11-29 were
    # builds only). What the registry holds afterwards is checked.
    for command in (["build", "--parallel", "-q"], ["push"]):
        subprocess.run(["docker-compose", "-f", str(compose_file), *command], check=True,
                       capture_output=True, env={**os.environ, "COMPOSE_PARALLEL_LIMIT": "64"})
    took = time.monotonic() - started
    missing = [ref for image in project.images for ref in image.refs(REGISTRY) if not in_registry(ref)]
    if missing:
        raise SystemExit(f"docker-compose left {len(missing)} image(s) unpushed, {missing[0]} first")
    return took


def in_registry(ref: str) -> bool:
    """The registry (plain HTTP on this machine) serves a manifest for `ref`."""
    repository, tag = split_ref(ref)
    host, _, name = repository.partition("/")
    request = urllib.request.Request(f"http://{host}/v2/{name}/manifests/{tag}", method="HEAD", headers={
        "Accept": "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def dockpool(path: Path, builders: int, pushers: int, backend: BuildBackend, push_via: str,
             start_method: str | None = None) -> tuple[float, float]:
    """Total seconds, and seconds from the pipeline's creation to the first build request."""
    previous = os.environ.get("DOCKPOOL_START_METHOD")
    if start_method:
        os.environ["DOCKPOOL_START_METHOD"] = start_method
    try:
        import gui.pipeline.workers as workers

        workers._context = None  # pick up the start method asked for
        # The CLI and the window start the fork server while the project loads, so a run
        # finds it ready; so does every run here, the first one too (0.4 s otherwise).
        workers.prestart(wait=True)
        if workers.start_method() == "forkserver":
            # The server imports the workers' modules after it starts: one process forked
            # from it and joined waits for that, as a user's run finds it (0.23 s otherwise).
            warm = workers.context().Process(target=time.sleep, args=(0,))
            warm.start()
            warm.join()
        project = load(path)
        options = RunOptions.from_project(project, builders=builders, pushers=pushers, backend=backend,
                                          push_via=push_via, network="host")
        started = time.monotonic()
        pipeline = Pipeline(project, options)
        pipeline.start()
        while not isinstance(record := pipeline.events.get(), ev.RunFinished):
            pass
        total = time.monotonic() - started
    finally:
        if start_method:
            if previous is None:
                os.environ.pop("DOCKPOOL_START_METHOD", None)
            else:
                os.environ["DOCKPOOL_START_METHOD"] = previous
    report = record.report
    if not report.succeeded:
        raise SystemExit(f"Dockpool run failed: {[(i.name, i.error) for i in report.images if i.error][:3]}")
    first = min(i.build.start for i in report.images if i.build.start) - report.started
    return total, first


def seed_pairs(root: Path, n: int, builders: int, pushers: int, pairs: int, classic: BuildBackend) -> None:
    """The seed design and Dockpool builders N, alternately, on the same footing (classic
    builder, the engine's push): a mean over pairs says more than one run on a shared machine."""
    seeds, ours = [], []
    for pair in range(pairs):
        runs = [lambda: seeds.append(seed_design(make_images(root, n), pushers)),
                lambda: ours.append(dockpool(make_images(root, n), builders, pushers, classic, "engine")[0])]
        for run in runs if pair % 2 == 0 else reversed(runs):  # neither always goes first
            run()
        print(f"  N = {n}, pair {pair + 1}: seed design {seeds[-1]:6.1f} s, dockpool builders {builders} "
              f"{ours[-1]:6.1f} s ({100 * (ours[-1] / seeds[-1] - 1):+.1f} %)", flush=True)
    mean_seed, mean_ours = sum(seeds) / pairs, sum(ours) / pairs
    print(f"  N = {n}, mean of {pairs}: seed design {mean_seed:.1f} s, dockpool builders {builders} "
          f"{mean_ours:.1f} s ({100 * (mean_ours / mean_seed - 1):+.1f} %: "
          f"{'no slower than' if mean_ours <= mean_seed else 'SLOWER than'} the seed design)",
          flush=True)


def main() -> None:
    global REGISTRY
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", required=True, help="host:port of a registry the engine can push to")
    parser.add_argument("--sizes", default="24,100")
    parser.add_argument("-b", "--builders", type=int, default=4)
    parser.add_argument("-p", "--pushers", type=int, default=2)
    parser.add_argument("--skip", default="", help="comma-separated: naive, seed, compose")
    parser.add_argument("--seed-pairs", type=int, default=0, metavar="K",
                        help="instead of the table: K alternating runs of the seed design and Dockpool "
                             "builders N at each size (their difference is within one run's noise)")
    args = parser.parse_args()
    import PySide6.QtCore  # noqa: F401  (the parent has Qt loaded, as the window does)

    REGISTRY = args.registry
    _, engine = connect()
    import_busybox(stream_client(engine.api_version))
    from tests.helpers import bench_folder

    root = bench_folder("dockpool-bench-")
    classic = BuildBackend(detail="classic")
    buildkit = resolve_backend(BuildSettings(backend="buildkit"))
    skip = set(filter(None, args.skip.split(",")))
    print(f"{engine}; pushers {args.pushers}; images: RUN echo + COPY {PAYLOAD // 1024} KB; "
          f"registry {args.registry} (not throttled)", flush=True)
    for n in (int(size) for size in args.sizes.split(",")):
        big_b = min(n, 64)
        if args.seed_pairs:
            seed_pairs(root, n, big_b, args.pushers, args.seed_pairs, classic)
            continue
        b, wave, p = measured_parts(root, args.builders)
        bound = max(math.ceil(n / args.builders) * wave + p, b + math.ceil(n / args.pushers) * p)
        print(f"\nN = {n}: one build b = {b:.2f} s, one wave of {args.builders} builds = {wave:.2f} s, "
              f"one push p = {p:.2f} s; lower bound for builders {args.builders}: {bound:.1f} s", flush=True)
        if "naive" not in skip:
            print(f"  naive loop                         {naive(make_images(root, n)):7.1f} s", flush=True)
        seed = None
        if "seed" not in skip:
            seed = seed_design(make_images(root, n), args.pushers)
            print(f"  seed design (process per image)    {seed:7.1f} s", flush=True)
        if "compose" not in skip:
            print(f"  docker-compose build + push        {compose(make_images(root, n)):7.1f} s", flush=True)
        rows = [(f"builders {args.builders}", args.builders, classic, "engine", None),
                (f"builders {big_b}", big_b, classic, "engine", None),
                (f"builders {args.builders}, BuildKit", args.builders, buildkit, "engine", None),
                (f"builders {args.builders}, defaults", args.builders, buildkit, "direct", None),
                (f"builders {args.builders}, spawn", args.builders, classic, "engine", "spawn"),
                (f"builders {big_b}, spawn", big_b, classic, "engine", "spawn")]
        if n >= 32:
            rows.insert(2, ("builders 32", 32, classic, "engine", None))
        for label, builders, backend, push_via, method in rows:
            total, first = dockpool(make_images(root, n), builders, args.pushers, backend, push_via, method)
            note = ""
            if builders == args.builders and method is None and backend is classic:
                note = f"  ({100 * (total / bound - 1):+.1f}% against the lower bound)"
            if builders == big_b and method is None and seed is not None:
                note = (f"  ({100 * (total / seed - 1):+.1f} %: "
                        f"{'no slower than' if total <= seed else 'SLOWER than'} the seed design, in one run)")
            print(f"  dockpool {label:26} {total:7.1f} s, first build request after {first:.2f} s{note}",
                  flush=True)


if __name__ == "__main__":
    main()
