"""The engine end to end, on the real private engine and registry.

Tests that push run behind both push paths: Dockpool's own uploader (the
default) and the engine's push (`push = "engine"`).
"""

from __future__ import annotations

import multiprocessing.connection
import os
import threading
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from gui.devservices import Registry
from gui.pipeline import events as ev
from gui.pipeline import supervisor, workers
from gui.pipeline.events import Status
from gui.pipeline.project import load
from gui.pipeline.supervisor import Pipeline, RunOptions
from tests.helpers import (left_behind, max_concurrent, own_temp_folder, run_pipeline, simple_project,
                           wait_until_dead, write_image, write_project)
from tests.proxy import Proxy

pytestmark = pytest.mark.docker
BOTH_PATHS = pytest.mark.parametrize("push_via", ["direct", "engine"])


def registry_push_windows(registry: Registry) -> dict[str, tuple[float, float]]:
    """Per repository, from its first request to its last manifest PUT, as the registry logged them."""
    windows: dict[str, list[float]] = defaultdict(list)
    for request in registry.requests():
        if request.repository and request.from_pusher:
            windows[request.repository] += [request.start, request.end]
    return {repo: (min(times), max(times)) for repo, times in windows.items()}


def _target(registry: Registry) -> tuple[str, int]:
    host, port = registry.address.split(":")
    return host, int(port)


@BOTH_PATHS
def test_twelve_images_all_tags_pushed_within_push_limit(tmp_path: Path, registry: Registry, push_via: str) -> None:
    project = simple_project(tmp_path, 12, registry=registry.address, builders=4, pushers=2,
                             tags=("latest", "1.0"), payload=2_000_000)
    run = run_pipeline(project, push_via=push_via)

    report = run.report
    assert report.succeeded, [(i.name, i.status, i.error) for i in report.images]
    assert report.push_via == push_via
    for image in report.images:
        assert image.status is Status.PUSHED
        for tag in ("latest", "1.0"):
            # The registry itself says the tag exists, with the digest Dockpool reported.
            assert registry.manifest_digest(image.name, tag) == image.digest
            assert image.digests[f"{registry.address}/{image.name}:{tag}"] == image.digest
        assert image.build.start <= image.build.end <= image.push.start <= image.push.end

    windows = registry_push_windows(registry)
    assert set(windows) == {image.name for image in report.images}
    pushes = [(i.push.start, i.push.end) for i in report.images]
    assert max_concurrent(pushes) <= 2  # pushing, in the report: never more than 2 images
    if push_via == "engine":
        # Whole pushes, from the registry's log: never more than 2.
        assert max_concurrent(list(windows.values())) <= 2
    else:
        # Blob uploads on the wire, from the registry's log: never more than 2 (one more
        # image may be prepared meanwhile: exported, read, checked with HEADs).
        uploads = [(r.start, r.end) for r in registry.requests() if r.method == "PATCH" and r.from_pusher]
        assert max_concurrent(uploads) == 2
    assert max_concurrent([(i.build.start, i.build.end) for i in report.images]) <= 4


def test_failing_run_step_fails_only_that_image(tmp_path: Path, registry: Registry, base_image: str) -> None:
    write_image(tmp_path, "good", base=base_image, run="echo fine > /ok")
    write_image(tmp_path, "bad", base=base_image, run="curl --connect-timeout 5 x; echo about to fail && exit 3")
    project = load(write_project(tmp_path, [{"name": "good", "context": "good"},
                                            {"name": "bad", "context": "bad"}],
                                 registry=registry.address))
    run = run_pipeline(project, retries=2)
    results = {image.name: image for image in run.report.images}
    assert results["good"].status is Status.PUSHED
    bad = results["bad"]
    assert bad.status is Status.FAILED and bad.stage is ev.Stage.BUILD
    assert bad.error_kind == "build-step", bad.error
    assert "returned a non-zero code: 3" in bad.error
    assert bad.build.attempts == 1, "a failing RUN is not worth retrying"
    [failed] = run.of(ev.BuildFailed, "bad")
    assert failed.failure.hint
    # The RUN output and the error are in the image's log.
    log = run.log("bad")
    assert "about to fail" in log
    assert any(line.endswith("returned a non-zero code: 3") for line in log)
    assert registry.manifest_digest("bad", "latest") is None
    assert not run.report.succeeded


@BOTH_PATHS
def test_registry_down_fails_pushes_with_clear_reason(tmp_path: Path, registry: Registry, push_via: str) -> None:
    project = simple_project(tmp_path, 2, registry=registry.address)
    registry.stop()
    run = run_pipeline(project, retries=1, push_via=push_via)
    for image in run.report.images:
        assert image.status is Status.FAILED and image.stage is ev.Stage.PUSH
        assert image.error_kind == "registry-unreachable", image.error
        assert "connection refused" in image.error.lower()
        assert image.push.attempts == 2  # first try and one retry
        assert image.image_id  # the build itself succeeded and is kept
    assert len(run.of(ev.RetryScheduled)) == 2


def test_registry_server_errors_are_retried(tmp_path: Path, registry: Registry) -> None:
    """Behind push = "engine" the engine retries 503s itself for about a minute before it
    reports them ("received unexpected HTTP status: 503 Service Unavailable", a message
    test_failures checks is retried); Dockpool's own uploader reports them at once."""
    front = Proxy(_target(registry))
    front.fail_next(2)
    try:
        project = simple_project(tmp_path, 1, registry=front.address)
        run = run_pipeline(project, retries=3)
    finally:
        front.close()
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    [retry] = run.of(ev.RetryScheduled)[:1]
    assert retry.failure.kind is ev.FailureKind.REGISTRY_ERROR and "503" in retry.failure.message


def _children(pid: int) -> list[str]:
    """The pids of a process's children (every thread's), from /proc."""
    children: list[str] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            children += (task / "children").read_text().split()
    except OSError:
        pass
    return children


@BOTH_PATHS
def test_registry_refuses_push_without_credentials(tmp_path: Path, auth_registry: Registry, push_via: str) -> None:
    project = simple_project(tmp_path, 1, registry=auth_registry.address)
    run = run_pipeline(project, push_via=push_via)
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error
    assert image.push.attempts == 1, "a refused login is not retried"
    assert "log in" in image.hint

    # The same push with credentials given for the run goes through, and they never leak:
    # not into the report or the events, nor the argv or the environment (as each process
    # was started with it) of any worker or of a process a worker started (the BuildKit
    # CLI), read from /proc at every event of the run.
    leaked: list[str] = []
    looked: set[int] = set()

    def look_at_workers(pipeline, event) -> None:
        pids = list(pipeline.worker_pids())
        for pid in pids:
            pids.extend(int(child) for child in _children(pid))
        for pid in pids:
            for part in ("cmdline", "environ"):
                try:
                    if b"secret-pass" in Path(f"/proc/{pid}/{part}").read_bytes():
                        leaked.append(f"{pid} {part}")
                except OSError:
                    continue  # gone meanwhile
                looked.add(pid)

    again = run_pipeline(project, auth={"username": "dockpool", "password": "secret-pass"}, push_via=push_via,
                         on_event=look_at_workers)
    assert looked, "no worker was looked at: proves nothing"
    assert leaked == []
    [image] = again.report.images
    assert image.status is Status.PUSHED, image.error
    assert auth_registry.manifest_digest("img00", "latest", ("dockpool", "secret-pass")) == image.digest
    assert "secret-pass" not in again.report.to_json()
    assert not any("secret-pass" in repr(event) for event in again.events)


def test_waiting_for_an_upload_slot_is_not_a_stall(tmp_path: Path, registry: Registry,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A pusher that waited longer than the hung-pusher limit for its slot is not killed the
    moment it gets one. The limit (six minutes and more for real) is shortened to 8 s here,
    well above any silence of a working pusher; each push takes about 14 s through the
    1 MB/s proxy, so the second image waits that long for the only slot."""
    monkeypatch.setattr(supervisor, "export_timeout", lambda stall_timeout: 0.0)
    monkeypatch.setattr(supervisor, "PUSHER_SAFETY_MARGIN", 8.0)
    slow = Proxy(_target(registry), rate=1_000_000)
    try:
        project = simple_project(tmp_path, 2, registry=slow.address, pushers=1, payload=14_000_000)
        run = run_pipeline(project, push_via="direct", retries=0)
    finally:
        slow.close()
    for image in run.report.images:
        assert image.status is Status.PUSHED, image.error
        assert image.push.attempts == 1


@BOTH_PATHS
def test_worker_killed_mid_push_is_retried(tmp_path: Path, registry: Registry, push_via: str, monkeypatch) -> None:
    temp = own_temp_folder(tmp_path, monkeypatch)
    slow = Proxy(_target(registry), rate=2_000_000)  # 2 MB/s: an 8 MB push takes seconds
    try:
        project = simple_project(tmp_path, 2, registry=slow.address, pushers=1, payload=8_000_000)
        killed: list[str] = []

        def kill_first_pusher(pipeline, event) -> None:
            if isinstance(event, ev.PushProgress) and not killed and 1_000_000 < event.done < event.total:
                os.kill(pipeline.worker_pid(event.image), signal.SIGKILL)
                killed.append(event.image)

        run = run_pipeline(project, on_event=kill_first_pusher, push_via=push_via)
    finally:
        slow.close()
    assert killed
    victim = next(image for image in run.report.images if image.name == killed[0])
    assert victim.status is Status.PUSHED and victim.push.attempts == 2
    [retry] = run.of(ev.RetryScheduled, victim.name)
    assert retry.failure.kind is ev.FailureKind.WORKER_DIED
    assert "killed by signal 9" in retry.failure.message
    assert run.report.succeeded
    assert registry.manifest_digest(victim.name, "latest") == victim.digest
    assert left_behind(temp) == [], "the killed pusher's files outlived the retry"


def test_engine_push_cannot_recover_from_a_stall_that_is_never_reset(tmp_path: Path, registry: Registry) -> None:
    """The engine keeps its stuck layer upload and attaches every retry to it: this is
    why push = "direct" is the default (test_direct_push covers the same stall there)."""
    stalling = Proxy(_target(registry), stall_after=1_000_000)
    try:
        project = simple_project(tmp_path, 1, registry=stalling.address, payload=8_000_000)
        run = run_pipeline(project, stall_timeout=3, retries=1, push_via="engine")
    finally:
        stalling.close()
    assert stalling.stalled.is_set()
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "stalled"
    assert image.push.attempts == 2
    assert any(line.text == "no push progress for 3 s" and line.error for line in run.of(ev.LogLine))


@pytest.mark.docker
def test_workers_run_below_the_callers_priority(tmp_path: Path, base_image: str) -> None:
    """A run's workers (and the build CLIs they start) give way to the window when cores
    are scarce: 8 builds starting kept its GUI thread off the CPU for 1.5 s before. So do
    the supervisor and the pipe readers, threads of the caller's own process: with them
    at the window's priority, a chatty build's log kept the GUI thread waiting for a core
    (streaming p99 320 ms in `tests/bench/window_bench.py -n 100`, 145 ms below it)."""
    write_image(tmp_path / "images", "slow", base=base_image, run="sleep 3")
    project = load(write_project(tmp_path, [{"name": "slow", "context": "images/slow"}]))
    seen: list[int] = []
    threads: dict[str, int] = {}

    def note_priority(pipeline, event) -> None:
        if isinstance(event, ev.BuildStarted):
            seen.append(os.getpriority(os.PRIO_PROCESS, pipeline.worker_pid(event.image)))
            for thread in threading.enumerate():
                if thread.name == "dockpool-supervisor" or thread.name.startswith("dockpool-read-"):
                    try:
                        threads[thread.name] = os.getpriority(os.PRIO_PROCESS, thread.native_id)
                    except ProcessLookupError:
                        pass  # the reader of a worker that has just exited

    caller = os.getpriority(os.PRIO_PROCESS, 0)
    assert run_pipeline(project, on_event=note_priority).report.succeeded
    assert seen == [min(19, caller + 10)], seen
    assert "dockpool-supervisor" in threads and len(threads) >= 2, threads
    assert set(threads.values()) == {min(19, caller + 10)}, threads
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == caller, "the caller's thread was lowered"


def unread_lines(pipeline: Pipeline) -> int:
    """Log lines (and other records) the workers have sent that wait in the supervisor's inbox."""
    return sum(w.unread for w in list(pipeline._workers))


@pytest.mark.docker
def test_cancelling_one_image_does_not_wait_behind_a_chatty_build(tmp_path: Path, base_image: str) -> None:
    """A build that prints fast can leave thousands of lines waiting for the supervisor;
    a cancel of another image must not wait behind them (#11: a chatty build must not
    delay cancel). The supervisor is held at the top of its loop (its limits lock) while
    the backlog grows, the cancel is asked, and the supervisor is let go: the image is
    cancelled before the backlog's lines are handled, not after."""
    write_image(tmp_path / "images", "chatty", base=base_image, run="seq 1 400000")
    write_image(tmp_path / "images", "quiet", base=base_image, run="sleep 120")
    project = load(write_project(tmp_path, [{"name": "chatty", "context": "images/chatty"},
                                            {"name": "quiet", "context": "images/quiet"}], builders=2))
    pipeline = Pipeline(project, RunOptions.from_project(project))
    pipeline.start()
    chatty_lines = burst = 0  # lines seen; the most one record held (a burst travels as one)

    def next_event(timeout: float = 60) -> object:
        nonlocal chatty_lines, burst
        record = pipeline.events.get(timeout=timeout)
        if getattr(record, "image", None) == "chatty":
            lines = ev.record_lines(record) if isinstance(record, ev.LogLine) else getattr(record, "skipped", 0)
            chatty_lines += lines
            burst = max(burst, lines if isinstance(record, ev.LogLine) else 0)
        return record

    try:
        started: set[str] = set()
        while len(started) < 2 or chatty_lines < 100:
            record = next_event()
            if isinstance(record, ev.BuildStarted):
                started.add(record.image)
        with pipeline._limits_lock:  # the supervisor stops where its loop reads the limits
            deadline = time.monotonic() + 30
            while unread_lines(pipeline) < workers.MAX_UNREAD and time.monotonic() < deadline:
                time.sleep(0.05)
            backlog = unread_lines(pipeline)
            time.sleep(0.2)  # the batch it was handling when it stopped is done
            while not pipeline.events.empty():
                next_event()
            before = chatty_lines
            pipeline.cancel_image("quiet")
        assert backlog >= workers.MAX_UNREAD >= 2 * supervisor.MAX_BATCH, \
            f"the build printed too slowly to test anything ({backlog} waiting)"
        while not (isinstance(record := next_event(), ev.Cancelled) and record.image == "quiet"):
            pass
        print("handled before the cancel", chatty_lines - before, "backlog", backlog, "burst", burst)  # pytest -s
        assert chatty_lines - before <= supervisor.MAX_BATCH + burst < backlog, \
            f"the cancel waited behind {chatty_lines - before} of the {backlog} lines waiting (bursts of {burst})"
    finally:
        pipeline.cancel()
        assert pipeline.wait(30)


@pytest.mark.docker
def test_a_chatty_build_waits_for_a_busy_supervisor_instead_of_filling_memory(tmp_path: Path,
                                                                            base_image: str) -> None:
    """#11: a build that prints faster than the supervisor handles its lines must not grow the
    supervisor's inbox without limit. The supervisor is held (its limits lock) for 8 s while
    a build prints 400,000 lines: about MAX_UNREAD of them wait in memory, the build waits
    for the rest, and once the supervisor goes on every line reaches the image's log file,
    in order, and the build succeeds."""
    write_image(tmp_path / "images", "chatty", base=base_image, run="seq 1 400000")
    project = load(write_project(tmp_path, [{"name": "chatty", "context": "images/chatty"}], builders=1))
    logs = tmp_path / "logs"
    pipeline = Pipeline(project, RunOptions.from_project(project), log_dir=logs)
    pipeline.start()
    try:
        lines = 0  # lines, not records: a record carries a burst, and the engine may send
        while lines < 100:  # the whole output in fewer than 100 of them
            record = pipeline.events.get(timeout=60)
            if isinstance(record, ev.LogLine) and record.image == "chatty":
                lines += ev.file_lines(record.text)
        with pipeline._limits_lock:
            waiting = []
            for _ in range(16):
                time.sleep(0.5)
                waiting.append(unread_lines(pipeline))
        # One record beyond the bound at most: a burst of lines (a 64 KB read of the CLI's
        # output or one item of the engine's stream; seq's short lines make up to ~10,000).
        print("waiting", waiting)  # pytest -s
        assert max(waiting) <= workers.MAX_UNREAD + 12_000, f"the inbox grew to {max(waiting)} lines: {waiting}"
        assert waiting[-1] >= workers.MAX_UNREAD // 2, f"the build printed too slowly to test anything: {waiting}"
        assert pipeline.wait(180)
    finally:
        pipeline.cancel()
        assert pipeline.wait(30)
    result = pipeline.report.images[0]
    assert result.status is Status.BUILT, (result.status, result.error)
    numbers = [line.split("] ", 1)[1] for line in (logs / "chatty.log").read_text().splitlines()
               if line.split("] ", 1)[-1].isdigit()]
    assert numbers == [str(n) for n in range(1, 400_001)], f"{len(numbers)} of 400,000 lines in the log file"


def test_cancel_stops_everything_within_five_seconds(tmp_path: Path, docker_client, base_image: str,
                                                     registry: Registry) -> None:
    images = []
    for index in range(4):
        write_image(tmp_path, f"slow{index}", base=base_image, run="sleep 60")
        images.append({"name": f"slow{index}", "context": f"slow{index}"})
    project = load(write_project(tmp_path, images, registry=registry.address, builders=2))
    seen: dict[str, object] = {}

    def cancel_when_running(pipeline, event) -> None:
        if isinstance(event, ev.BuildContainer) and "at" not in seen:
            seen["pids"] = pipeline.worker_pids()
            seen["at"] = time.monotonic()
            pipeline.cancel()
        if isinstance(event, ev.RunFinished):
            seen["done"] = time.monotonic()

    run = run_pipeline(project, on_event=cancel_when_running, timeout=120)
    assert seen["done"] - seen["at"] < 5
    assert run.report.cancelled
    assert {image.status for image in run.report.images} == {Status.CANCELLED}
    assert {e.image for e in run.of(ev.Cancelled)} == {f"slow{i}" for i in range(4)}
    assert wait_until_dead(seen["pids"], 0) == [], "a worker process was left running"
    while docker_client.containers(all=True) and time.monotonic() - seen["at"] < 5:
        time.sleep(0.1)  # the engine removes cancelled build containers on its own clock
    assert docker_client.containers(all=True) == [], "a build container was left behind"


def test_cancel_that_races_the_last_push_reports_what_happened(tmp_path: Path, registry: Registry) -> None:
    project = simple_project(tmp_path, 2, registry=registry.address)

    def cancel_at_the_end(pipeline, event) -> None:
        if isinstance(event, ev.PushDone) and sum(1 for i in pipeline.report.images
                                                  if i.status is Status.PUSHED) == 2:
            pipeline.cancel()

    run = run_pipeline(project, on_event=cancel_at_the_end)
    assert {image.status for image in run.report.images} == {Status.PUSHED}
    assert not run.report.cancelled and run.report.succeeded
    assert not run.of(ev.Cancelled)


def test_build_only_when_no_registry(tmp_path: Path, docker_client) -> None:
    project = simple_project(tmp_path, 3, registry="", tags=("latest", "dev"))
    run = run_pipeline(project)
    assert run.report.succeeded
    for image in run.report.images:
        assert image.status is Status.BUILT and image.push.attempts == 0
        for tag in ("latest", "dev"):
            assert docker_client.inspect_image(f"{image.name}:{tag}")["Id"] == image.image_id
    assert not run.of(ev.PushStarted)


def test_limits_change_during_run(tmp_path: Path, registry: Registry, base_image: str) -> None:
    images = []
    for index in range(6):
        write_image(tmp_path, f"s{index}", base=base_image, run="sleep 1")
        images.append({"name": f"s{index}", "context": f"s{index}"})
    project = load(write_project(tmp_path, images, registry=registry.address, builders=1, pushers=1))

    def widen(pipeline, event) -> None:
        if isinstance(event, ev.BuildStarted) and event.image == "s0":
            pipeline.set_limits(builders=3)

    run = run_pipeline(project, on_event=widen)
    assert run.report.succeeded
    assert [(e.builders, e.pushers) for e in run.of(ev.LimitsChanged)] == [(1, 1), (3, 1)]
    builds = [(i.build.start, i.build.end) for i in run.report.images]
    assert max_concurrent(builds) == 3


def test_pushers_start_once_builds_are_under_way(tmp_path: Path, registry: Registry) -> None:
    """#11: at most one pusher before the first build request (it is ready when the first
    image is built); the others only once a build has started, not at time zero competing
    with the first builds. The pushers' processes are watched from outside, as they appear."""
    project = simple_project(tmp_path, 4, registry=registry.address, builders=2, pushers=3)
    pipeline = Pipeline(project, RunOptions.from_project(project, retry_backoff=0.2))
    seen: list[tuple[float, int]] = []  # (wall clock, pushers running) at each change
    watching = threading.Event()

    def watch() -> None:
        while not watching.is_set():
            count = len(pipeline.worker_pids(ev.Stage.PUSH))
            if not seen or seen[-1][1] != count:
                seen.append((time.time(), count))
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        pipeline.start()
        records = []
        while not isinstance(record := pipeline.events.get(timeout=120), ev.RunFinished):
            records.append(record)
    finally:
        watching.set()
        watcher.join()
        if pipeline.alive:  # it failed before the end: no worker left behind
            pipeline.cancel()
            pipeline.wait(30)
    assert record.report.succeeded
    first_build = min(r.at for r in records if isinstance(r, ev.BuildStarted))
    before = [count for at, count in seen if at < first_build]
    assert max(before, default=0) <= 1, f"{max(before)} pushers before the first build request"
    assert max(count for _, count in seen) >= 2  # the others came, once builds were under way


def test_lowering_limits_mid_run_retires_workers_as_they_finish(tmp_path: Path, registry: Registry,
                                                                base_image: str) -> None:
    """Busy workers above a lowered limit finish their image, then retire; builders are
    retired as soon as nothing is left to build. The registry and the process table agree."""
    slow = Proxy(_target(registry), rate=2_000_000)
    images = []
    # Ten images: under spawn a pusher takes a second to start, and by the first PushStarted
    # all of the second round of four builds may be under way; the third round starts after.
    for index in range(10):
        write_image(tmp_path, f"s{index}", base=base_image, run="sleep 2", payload=2_000_000)
        images.append({"name": f"s{index}", "context": f"s{index}"})
    project = load(write_project(tmp_path, images, registry=slow.address, builders=4, pushers=2))
    state: dict[str, object] = {"samples": []}

    def lower_and_watch(pipeline, event) -> None:
        now = time.time()
        if isinstance(event, ev.PushStarted) and "lowered" not in state:
            state["lowered"] = now
            pipeline.set_limits(builders=1, pushers=1)
        state["samples"].append((now, len(pipeline.worker_pids(ev.Stage.BUILD)),
                                 len(pipeline.worker_pids(ev.Stage.PUSH)),
                                 all(i.build.end for i in pipeline.report.images)))

    try:
        run = run_pipeline(project, on_event=lower_and_watch)
    finally:
        slow.close()
    report = run.report
    assert report.succeeded
    lowered = state["lowered"]
    # What was running when the limits went down finishes; what starts afterwards obeys them.
    builds_settled = max(i.build.end for i in report.images if i.build.start <= lowered)
    later_builds = [(i.build.start, i.build.end) for i in report.images if i.build.start > builds_settled]
    assert later_builds and max_concurrent(later_builds) == 1
    pushes_settled = max((i.push.end for i in report.images if i.push.start and i.push.start <= lowered),
                         default=lowered)
    later_uploads = [(r.start, r.end) for r in registry.requests()
                     if r.method == "PATCH" and r.from_pusher and r.start > pushes_settled + 0.5]
    assert later_uploads and max_concurrent(later_uploads) == 1
    # The process table: one builder at most once the busy ones are done, none when nothing
    # is left to build, and two pushers (one uploading, one preparing the next image) once
    # the pushes under way have ended.
    samples = state["samples"]
    assert all(builders <= 1 for at, builders, _, _ in samples if at > builds_settled + 1)
    all_built = max(i.build.end for i in report.images)
    assert any(at > all_built + 0.5 for at, *_ in samples), "no sample after the last build: test too weak"
    assert all(builders == 0 for at, builders, _, _ in samples if at > all_built + 0.5)
    assert all(pushers <= 2 for at, _, pushers, _ in samples if at > pushes_settled + 1)


def test_dead_idle_workers_are_replaced(tmp_path: Path, registry: Registry, base_image: str) -> None:
    """Idle workers die (killed between images): the run goes on with fresh ones."""
    images = []
    for index in range(3):
        write_image(tmp_path, f"s{index}", base=base_image, run="sleep 2")
        images.append({"name": f"s{index}", "context": f"s{index}"})
    project = load(write_project(tmp_path, images, registry=registry.address, builders=2, pushers=2))
    killed: list[int] = []

    def kill_idle(pipeline, event) -> None:
        if isinstance(event, ev.BuildStep) and event.step == 3 and not killed:
            # The pushers wait, idle, for the first build to end; the third image waits
            # for a builder while the two builders are busy.
            deadline = time.monotonic() + 5
            while len(pipeline.worker_pids(ev.Stage.PUSH)) < 3 and time.monotonic() < deadline:
                time.sleep(0.05)  # pushers 2, and one more preparing (direct pushes)
            for pid in pipeline.worker_pids(ev.Stage.PUSH):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
        if isinstance(event, ev.BuildDone) and event.image == "s2":
            for pid in pipeline.worker_pids(ev.Stage.BUILD):  # the builders left idle at the end
                os.kill(pid, signal.SIGKILL)

    run = run_pipeline(project, on_event=kill_idle)
    assert len(killed) == 3
    assert run.report.succeeded, [(i.name, i.status, i.error) for i in run.report.images]
    assert all(image.push.attempts == 1 for image in run.report.images), "an idle worker's death cost an image"


def test_forty_builders_and_eight_pushers(tmp_path: Path, registry: Registry, monkeypatch) -> None:
    """Windows' multiprocessing.connection.wait takes at most 63 handles; the supervisor
    never hands it more, however many workers run (it reads each worker on a thread)."""
    import sys

    largest = [0]
    real_wait = multiprocessing.connection.wait

    def windows_wait(handles, timeout=None):
        """Windows' limit, here: more than 63 handles in one call is an error."""
        handles = list(handles)
        largest[0] = max(largest[0], len(handles))
        if len(handles) > 63:
            raise ValueError(f"need at most 63 handles, got a sequence of length {len(handles)}")
        return real_wait(handles, timeout)

    monkeypatch.setattr(multiprocessing.connection, "wait", windows_wait)
    # Also where an engine module imported it by name.
    for name, module in list(sys.modules.items()):
        if name.startswith("gui.pipeline"):
            for attribute, value in list(vars(module).items()):
                if value is real_wait:
                    monkeypatch.setattr(module, attribute, windows_wait)
    peak = [0]

    def count_workers(pipeline, event) -> None:
        peak[0] = max(peak[0], len(pipeline.worker_pids()))

    project = simple_project(tmp_path, 48, registry=registry.address, builders=40, pushers=8, payload=1024)
    run = run_pipeline(project, on_event=count_workers, timeout=400)
    assert run.report.succeeded, [(i.name, i.status, i.error) for i in run.report.images if i.error][:3]
    assert peak[0] > 31, f"only {peak[0]} workers ran at once: the limit was never approached"
    assert largest[0] <= 63


def test_build_timeout_stops_and_fails_the_build(tmp_path: Path, docker_client, base_image: str) -> None:
    write_image(tmp_path, "forever", base=base_image, run="sleep 300")
    write_image(tmp_path, "quick", base=base_image, run="true")
    project = load(write_project(tmp_path, [{"name": "forever", "context": "forever"},
                                            {"name": "quick", "context": "quick"}]))
    pids: list[int] = []
    started = time.monotonic()
    run = run_pipeline(project, build_timeout=4, on_event=lambda p, e: pids.extend(p.worker_pids()))
    assert time.monotonic() - started < 30
    results = {image.name: image for image in run.report.images}
    forever = results["forever"]
    assert forever.status is Status.FAILED and forever.error_kind == "timeout", forever.error
    assert forever.build.attempts == 1 and "4 s" in forever.error
    assert 4 <= forever.build.seconds < 10
    assert results["quick"].status is Status.BUILT
    assert wait_until_dead(sorted(set(pids))) == []
    deadline = time.monotonic() + 5
    while docker_client.containers(all=True) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert docker_client.containers(all=True) == [], "the timed-out build's container was left behind"


def test_internal_error_fails_unfinished_images_where_they_were(tmp_path: Path, registry: Registry,
                                                               monkeypatch) -> None:
    """A supervisor bug still ends the run: images keep what they reached, and those that
    were pushing fail at the push stage, with a kind and a hint."""
    original = Pipeline._handle

    def broken(self, w, job, record):
        original(self, w, job, record)
        if isinstance(record, ev.PushStarted):
            raise RuntimeError("injected supervisor fault")

    monkeypatch.setattr(Pipeline, "_handle", broken)
    project = simple_project(tmp_path, 2, registry=registry.address, builders=1, pushers=1)
    run = run_pipeline(project)
    statuses = {image.name: image for image in run.report.images}
    pushing = [i for i in statuses.values() if i.stage is ev.Stage.PUSH]
    assert pushing, "no image was pushing when the fault hit"
    for image in statuses.values():
        assert image.status is Status.FAILED
        assert image.error_kind == "other" and "injected supervisor fault" in image.error and image.hint
    assert {e.image for e in run.of(ev.PushFailed)} == {i.key for i in pushing}
    assert not any(e.image in {i.key for i in pushing} for e in run.of(ev.BuildFailed))


def test_report_keeps_its_own_digests(tmp_path: Path, registry: Registry) -> None:
    project = simple_project(tmp_path, 1, registry=registry.address)
    run = run_pipeline(project)
    [done] = run.of(ev.PushDone)
    expected = dict(done.digests)
    done.digests.clear()  # a caller that mutates what it got must not change the report
    assert run.report.images[0].digests == expected


def test_bad_arguments_are_refused_by_the_engine(tmp_path: Path) -> None:
    project = simple_project(tmp_path, 1, registry="")
    with pytest.raises(ValueError, match="registry"):
        Pipeline(project, RunOptions.from_project(project), push_only=["img00"])
    pipeline = Pipeline(project, RunOptions.from_project(project))
    for builders, pushers in ((0, None), (None, -1), (65, None)):
        with pytest.raises(ValueError, match="from 1 to 64"):
            pipeline.set_limits(builders, pushers)
    with pytest.raises(ValueError):
        Pipeline(project, RunOptions.from_project(project, builders=0))


@pytest.mark.slow
def test_silent_build_longer_than_the_sdk_default_timeout(tmp_path: Path, base_image: str) -> None:
    """The SDK's default 60 s read timeout would end this build mid-stream (urllib3's
    ReadTimeoutError): the step prints nothing for 65 s."""
    write_image(tmp_path, "patient", base=base_image, run="sleep 65")
    project = load(write_project(tmp_path, [{"name": "patient", "context": "patient"}]))
    run = run_pipeline(project, timeout=200)
    [image] = run.report.images
    assert image.status is Status.BUILT, image.error
    assert image.build.seconds > 65


def test_dockerignore_with_a_bom_excludes_its_first_pattern(tmp_path: Path, base_image: str) -> None:
    """Windows editors save .dockerignore with a byte-order mark; Docker ignores it, so the
    first pattern still applies (the SDK alone would keep the file in the context)."""
    folder = write_image(tmp_path, "ignoring", base=base_image,
                         run="test ! -e /ctx/secret.txt && test ! -e /ctx/x.tmp && test -e /ctx/keep.txt")
    (folder / "secret.txt").write_text("do not ship")
    (folder / "x.tmp").write_text("scratch")
    (folder / "keep.txt").write_text("ship")
    (folder / ".dockerignore").write_bytes(b"\xef\xbb\xbfsecret.txt\r\n*.tmp\r\n")
    dockerfile = folder / "Dockerfile"
    dockerfile.write_bytes(b"\xef\xbb\xbf" + dockerfile.read_bytes().replace(b"RUN", b"COPY . /ctx/\r\nRUN"))
    project = load(write_project(tmp_path, [{"name": "ignoring", "context": "ignoring"}]))
    run = run_pipeline(project)
    [image] = run.report.images
    assert image.status is Status.BUILT, "\n".join(line.text for line in run.of(ev.LogLine))


def test_run_logs_keep_every_line_on_disk(tmp_path: Path, base_image: str) -> None:
    write_image(tmp_path, "chatty", base=base_image, run="seq 1 30000")
    project = load(write_project(tmp_path, [{"name": "chatty", "context": "chatty"}]))
    run = run_pipeline(project, log_dir=tmp_path / "logs")
    assert run.report.succeeded
    text = (tmp_path / "logs" / "chatty.log").read_text(encoding="utf-8")
    assert "[build] 30000" in text and "[build] 1\n" in text
    assert run.pipeline.log_path("chatty") == tmp_path / "logs" / "chatty.log"

