"""Building blocks for test projects: image folders, project files, event runs."""

from __future__ import annotations

import atexit
import os
import queue
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import tomli_w

from gui.pipeline import events as ev
from gui.pipeline.project import Project, load
from gui.pipeline.supervisor import Pipeline, RunOptions


def htpasswd_file(folder: Path, user: str, password: str) -> Path:
    path = folder / "htpasswd"
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()
    path.write_text(f"{user}:{hashed}\n")
    return path


def write_image(root: Path, name: str, *, payload: int = 4096, run: str | None = None,
                base: str = "scratch", extra: str = "") -> Path:
    """An image folder whose layer differs on every call (fresh random payload)."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "payload.bin").write_bytes(os.urandom(payload))
    lines = [f"FROM {base}", "COPY payload.bin /payload.bin"]
    if run is not None:
        lines.append(f"RUN {run}")
    if extra:
        lines.append(extra)
    (folder / "Dockerfile").write_text("\n".join(lines) + "\n")
    return folder


def write_project(root: Path, images: list[dict[str, Any]], *, registry: str = "",
                  builders: int = 4, pushers: int = 2, build: dict[str, Any] | None = None) -> Path:
    """A project file. The tests' private engine has no bridge network (dockerd
    --bridge=none), so BuildKit's RUN steps use the host's unless `build` says otherwise."""
    path = root / "dockpool.toml"
    document = {"registry": {"url": registry}, "concurrency": {"builders": builders, "pushers": pushers},
                "build": {"network": "host", **(build or {})}, "image": images}
    path.write_text(tomli_w.dumps(document))
    return path


def simple_project(root: Path, count: int, *, registry: str, builders: int = 4, pushers: int = 2,
                   tags: tuple[str, ...] = ("latest",), payload: int = 4096) -> Project:
    images = []
    for index in range(count):
        name = f"img{index:02d}"
        write_image(root / "images", name, payload=payload)
        images.append({"name": name, "context": f"images/{name}", "tags": list(tags)})
    return load(write_project(root, images, registry=registry, builders=builders, pushers=pushers))


@dataclass
class Run:
    """A finished run: every event in order, and the report."""

    events: list[Any] = field(default_factory=list)
    report: Any = None
    pipeline: Any = None

    def of(self, kind: type, image: str | None = None) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind) and (image is None or e.image == image)]

    def log(self, image: str | None = None) -> list[str]:
        """The log lines, one per line (a LogLine may carry a burst of lines)."""
        return [line for record in self.of(ev.LogLine, image) for line in record.text.splitlines()]


def run_pipeline(project: Project, *, timeout: float = 240, on_event=None, push_only: tuple[str, ...] = (),
                 log_dir: Path | None = None, **overrides: Any) -> Run:
    """Run to the end, calling on_event(pipeline, event) for each event as it arrives."""
    overrides.setdefault("retry_backoff", 0.2)
    options = RunOptions.from_project(project, **overrides)
    pipeline = Pipeline(project, options, push_only=push_only, log_dir=log_dir)
    pipeline.start()
    run = Run(pipeline=pipeline)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            pipeline.cancel()
            raise AssertionError(f"run did not finish in {timeout} s; last events: {run.events[-10:]}")
        try:
            record = pipeline.events.get(timeout=min(remaining, 1.0))
        except queue.Empty:
            continue
        run.events.append(record)
        if on_event:
            on_event(pipeline, record)
        if isinstance(record, ev.RunFinished):
            run.report = record.report
            assert pipeline.wait(10), "supervisor thread still running after RunFinished"
            return run


def loopback_name() -> str:
    """A host name (not "localhost", which is special everywhere) that resolves only to IPv4
    loopback addresses, inside the engine's default insecure range 127.0.0.0/8: the
    machine's own name on Debian (127.0.1.1) and on this project's machines. A machine
    without one (a Docker container maps its name to its bridge address) skips the test."""
    import ipaddress
    import socket

    import pytest

    for name in (socket.gethostname(), socket.getfqdn(), "localhost.localdomain", "localhost4"):
        try:
            answers = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except OSError:
            continue
        addresses = {ipaddress.ip_address(answer[4][0].partition("%")[0]) for answer in answers}
        if name != "localhost" and addresses and all(a.version == 4 and a.is_loopback for a in addresses):
            return name
    pytest.skip("no host name here resolves to 127.0.0.0/8 only (add one to /etc/hosts to run this test)")


def code_page_locale(folder: Path) -> dict[str, str]:
    """Environment for a process whose locale is a Windows code page's, not UTF-8: GBK,
    Windows' cp936 (Simplified Chinese), compiled into `folder` with Debian's `locales`.
    Python opens files without an encoding in it, as it does in cp936 on Windows; the C
    locale would not do (Python turns UTF-8 mode on there)."""
    subprocess.run(["localedef", "-i", "zh_CN", "-f", "GBK", str(folder / "zh_CN.GBK")], check=True,
                   capture_output=True, timeout=60)
    return {"LOCPATH": str(folder), "LC_ALL": "zh_CN.GBK"}


def own_temp_folder(root: Path, monkeypatch: Any) -> Path:
    """A TMPDIR of the test's own (the workers get the caller's environment), so what
    pushers leave behind there can be seen."""
    folder = root / "tmp"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    return folder


def left_behind(folder: Path) -> list[str]:
    """What Dockpool's workers (pushers, BuildKit builders) left in a temporary folder: it
    must be nothing."""
    return sorted(path.name for path in folder.glob("dockpool-*"))


def max_concurrent(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda point: (point[0], point[1]))
    open_now = peak = 0
    for _, change in points:
        open_now += change
        peak = max(peak, open_now)
    return peak


def wait_until_dead(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids still alive (zombies count as dead) after waiting up to `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        alive = [pid for pid in pids if is_alive(pid)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.1)


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def registry_token(service: Any, repository: str, user: str, password: str) -> str:
    """A pull token for `repository` from a test token service (to ask the registry's API)."""
    import base64
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{service.realm}?service=dockpool-test-registry&scope=repository:{repository}:pull",
        headers={"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read())["token"]


def bench_folder(prefix: str) -> Path:
    """A benchmark's temporary folder, removed when it exits, by an error or Ctrl+C too
    (not when it is killed): its image contexts and registries take gigabytes (the push
    bench's, 2.5 GB a run)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
