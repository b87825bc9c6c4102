"""What verifying an HTTPS registry's certificate costs Dockpool's own uploader, in CPU.

A pusher opens new connections for every image it pushes (its client, and the requests
it makes ahead on threads of their own), and each is a TLS handshake. N small images
are built once, then pushed, each time to a fresh HTTPS registry (a test CA, a
non-loopback address, so nothing falls back to plain HTTP), in rounds that alternate:

  - openssl:  verified, the system's CA bundle read once per process (Linux's default);
  - os:       verified through truststore (Windows' and macOS's default; on Linux it
              reads the CA bundle again at every connection, as Dockpool did here before);
  - insecure: not verified (`insecure = true`), the floor.

Printed per run: the makespan, and the CPU the pushers used, in all and per image
(read from /proc while they run). Run it with `make bench-tls`; with
`BENCH_ARGS="--cli dist/Dockpool/dockpool"` each round runs that CLI (the bundle of
`make package`) as users run it, and the CPU is that of all its processes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gui.pipeline import events as ev  # noqa: E402
from gui.pipeline.registry_http import VERIFIER_SETTING  # noqa: E402
from gui.pipeline.workers import prestart  # noqa: E402
from tests.helpers import bench_folder, run_pipeline, simple_project  # noqa: E402
from tests.test_package import _descendants  # noqa: E402
from tests.tls import start_tls_registry, system_bundle_with  # noqa: E402

MODES = ("openssl", "os", "insecure")


def cpu_seconds(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def push_round(root: Path, count: int, pushers: int, mode: str, cli: str | None) -> dict[str, float]:
    """Build (from the engine's cache after the first round) and push `count` images to a
    fresh HTTPS registry, in this process (the pushers' CPU) or with `cli` (all of its
    processes' CPU); CPU is read from /proc while the processes run, the last reading kept."""
    folder = Path(tempfile.mkdtemp(prefix=f"{mode}-", dir=root))
    registry, ca = start_tls_registry(folder)
    bundle = system_bundle_with(ca, folder / "system-bundle.pem")
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", VERIFIER_SETTING)}
    os.environ["SSL_CERT_FILE"] = str(bundle)
    os.environ[VERIFIER_SETTING] = "openssl" if mode == "insecure" else mode
    try:
        project = simple_project(root / "images", count, registry=registry.address, pushers=pushers)
        started = time.monotonic()
        cpu = (run_cli(cli, project.path, mode) if cli else run_here(project, mode))
        seconds = time.monotonic() - started
    finally:
        registry.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return {"seconds": seconds, "cpu": cpu}


def run_here(project, mode: str) -> float:
    cpu: dict[int, float] = {}

    def watch(pipeline, event) -> None:
        for pid in pipeline.worker_pids(ev.Stage.PUSH):
            if (used := cpu_seconds(pid)) is not None:
                cpu[pid] = used

    run = run_pipeline(project, on_event=watch, insecure=mode == "insecure", timeout=900)
    failed = [image.name for image in run.report.images if image.status is not ev.Status.PUSHED]
    if failed:
        raise RuntimeError(f"{mode}: not pushed: {failed}")
    return sum(cpu.values())


def run_cli(cli: str, path: Path, mode: str) -> float:
    if mode == "insecure":
        path.write_text(path.read_text().replace("[registry]\n", "[registry]\ninsecure = true\n", 1))
    command = [cli, "run", str(path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu: dict[int, float] = {}
    while process.poll() is None:
        for pid in [process.pid, *_descendants(process.pid)]:
            if (used := cpu_seconds(pid)) is not None:
                cpu[pid] = used
        time.sleep(0.05)
    if process.returncode != 0:
        raise RuntimeError(f"{mode}: {' '.join(command)} exited with {process.returncode}")
    return sum(cpu.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", help="ignored: every run gets a fresh private HTTPS registry")
    parser.add_argument("--images", type=int, default=40)
    parser.add_argument("--pushers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cli", help="run this CLI (e.g. dist/Dockpool/dockpool) instead of the pipeline here")
    args = parser.parse_args()
    prestart(wait=True)  # as the CLI and the window start it, while the project loads
    root = bench_folder("dockpool-tls-bench-")
    print(f"{args.images} small images, pushers {args.pushers}, HTTPS registry with a test CA", flush=True)
    push_round(root, args.images, args.pushers, "insecure", args.cli)  # builds them: later rounds hit the cache
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    whose = "the CLI's processes'" if args.cli else "pushers'"
    for round_ in range(args.rounds):
        for mode in MODES:
            result = push_round(root, args.images, args.pushers, mode, args.cli)
            results[mode].append(result)
            print(f"round {round_ + 1} {mode:9s} {result['seconds']:6.1f} s, {whose} CPU {result['cpu']:5.2f} s, "
                  f"{result['cpu'] / args.images * 1000:4.0f} ms per image", flush=True)
    for mode in MODES:
        per_image = [r["cpu"] / args.images * 1000 for r in results[mode]]
        print(f"{mode:9s} per image: " + ", ".join(f"{value:.0f} ms" for value in per_image))
    return 0


if __name__ == "__main__":
    sys.exit(main())
