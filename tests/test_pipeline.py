"""The engine end to end, on the real private engine and registry."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from gui.devservices import Registry
from gui.pipeline import events as ev
from gui.pipeline.events import Status
from tests.helpers import max_concurrent, run_pipeline, simple_project

pytestmark = pytest.mark.docker


def registry_push_windows(registry: Registry) -> dict[str, tuple[float, float]]:
    """Per repository, from its first request to its last manifest PUT, as the registry logged them."""
    windows: dict[str, list[float]] = defaultdict(list)
    for request in registry.requests():
        if request.repository and request.from_docker:
            windows[request.repository] += [request.start, request.end]
    return {repo: (min(times), max(times)) for repo, times in windows.items()}


def test_twelve_images_all_tags_pushed_within_push_limit(tmp_path: Path, registry: Registry) -> None:
    project = simple_project(tmp_path, 12, registry=registry.address, builders=4, pushers=2,
                             tags=("latest", "1.0"), payload=2_000_000)
    run = run_pipeline(project)

    report = run.report
    assert report.succeeded, [(i.name, i.status, i.error) for i in report.images]
    for image in report.images:
        assert image.status is Status.PUSHED
        for tag in ("latest", "1.0"):
            # The registry itself says the tag exists, with the digest Dockpool reported.
            assert registry.manifest_digest(image.name, tag) == image.digest
            assert image.digests[f"{registry.address}/{image.name}:{tag}"] == image.digest
        assert image.build.start <= image.build.end <= image.push.start <= image.push.end

    windows = registry_push_windows(registry)
    assert set(windows) == {image.name for image in report.images}
    assert max_concurrent(list(windows.values())) <= 2
    # The engine's own view agrees: never more than 2 PushStarted without their end.
    assert max_concurrent([(i.push.start, i.push.end) for i in report.images]) <= 2
    assert max_concurrent([(i.build.start, i.build.end) for i in report.images]) <= 4


def test_failing_run_step_fails_only_that_image(tmp_path: Path, registry: Registry, base_image: str) -> None:
    from tests.helpers import write_image, write_project
    from gui.pipeline.project import load

    write_image(tmp_path, "good", base=base_image, run="echo fine > /ok")
    write_image(tmp_path, "bad", base=base_image, run="echo about to fail && exit 3")
    project = load(write_project(tmp_path, [{"name": "good", "context": "good"},
                                            {"name": "bad", "context": "bad"}],
                                 registry=registry.address))
    run = run_pipeline(project, retries=2)
    results = {image.name: image for image in run.report.images}
    assert results["good"].status is Status.PUSHED
    bad = results["bad"]
    assert bad.status is Status.FAILED and bad.stage is ev.Stage.BUILD
    assert bad.error_kind == "build-step"
    assert "returned a non-zero code: 3" in bad.error
    assert bad.build.attempts == 1, "a failing RUN is not worth retrying"
    [failed] = run.of(ev.BuildFailed, "bad")
    assert failed.failure.hint
    # The RUN output and the error are in the image's log.
    log = [line.text for line in run.of(ev.LogLine, "bad")]
    assert "about to fail" in log
    assert any(line.endswith("returned a non-zero code: 3") for line in log)
    assert registry.manifest_digest("bad", "latest") is None
    assert not run.report.succeeded


def test_registry_down_fails_pushes_with_clear_reason(tmp_path: Path, registry: Registry) -> None:
    project = simple_project(tmp_path, 2, registry=registry.address)
    registry.stop()
    run = run_pipeline(project, retries=1)
    for image in run.report.images:
        assert image.status is Status.FAILED and image.stage is ev.Stage.PUSH
        assert image.error_kind == "registry-unreachable", image.error
        assert "connection refused" in image.error
        assert image.push.attempts == 2  # first try and one retry
        assert image.image_id  # the build itself succeeded and is kept
    assert len(run.of(ev.RetryScheduled)) == 2


def test_registry_refuses_push_without_credentials(tmp_path: Path, auth_registry: Registry) -> None:
    project = simple_project(tmp_path, 1, registry=auth_registry.address)
    run = run_pipeline(project)
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error
    assert image.push.attempts == 1, "a refused login is not retried"
    assert "log in" in image.hint

    # The same push with credentials given for the run goes through, and they never leak.
    again = run_pipeline(project, auth={"username": "dockpool", "password": "secret-pass"})
    [image] = again.report.images
    assert image.status is Status.PUSHED, image.error
    assert auth_registry.manifest_digest("img00", "latest", ("dockpool", "secret-pass")) == image.digest
    assert "secret-pass" not in again.report.to_json()
    assert not any("secret-pass" in repr(event) for event in again.events)


def test_worker_killed_mid_push_is_retried(tmp_path: Path, registry: Registry) -> None:
    import os
    import signal

    from tests.proxy import Proxy

    host, port = registry.address.split(":")
    slow = Proxy((host, int(port)), rate=1_000_000)  # 1 MB/s: an 8 MB push takes seconds
    try:
        project = simple_project(tmp_path, 2, registry=slow.address, pushers=1, payload=8_000_000)
        killed: list[int] = []

        def kill_first_pusher(pipeline, event) -> None:
            if isinstance(event, ev.PushProgress) and not killed and 0 < event.done < event.total:
                [pid] = pipeline.worker_pids(ev.Stage.PUSH)
                os.kill(pid, signal.SIGKILL)
                killed.append(event.image)

        run = run_pipeline(project, on_event=kill_first_pusher)
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


def test_stalled_upload_is_aborted_and_retried(tmp_path: Path, registry: Registry) -> None:
    from tests.proxy import Proxy

    host, port = registry.address.split(":")
    # The proxy stops forwarding mid-blob, then resets that connection after 4.5 s, as a
    # NAT or firewall would: until then the engine holds its stuck layer upload, and a
    # retry waits on it.
    stalling = Proxy((host, int(port)), stall_after=1_000_000, stall_for=4.5)
    try:
        project = simple_project(tmp_path, 1, registry=stalling.address, payload=4_000_000)
        run = run_pipeline(project, stall_timeout=3)
    finally:
        stalling.close()
    assert stalling.stalled.is_set()
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert image.push.attempts >= 2
    retries = run.of(ev.RetryScheduled)
    assert retries and all(retry.failure.kind is ev.FailureKind.STALLED for retry in retries)
    assert any(line.text == "no push progress for 3 s" and line.error for line in run.of(ev.LogLine))
    assert registry.manifest_digest("img00", "latest") == image.digest


def test_cancel_stops_everything_within_five_seconds(tmp_path: Path, docker_client, base_image: str,
                                                     registry: Registry) -> None:
    import time

    from tests.helpers import write_image, write_project
    from gui.pipeline.project import load

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
    for pid in seen["pids"]:
        assert not _alive(pid), f"worker {pid} still running"
    while docker_client.containers(all=True) and time.monotonic() - seen["at"] < 5:
        time.sleep(0.1)  # the engine removes cancelled build containers on its own clock
    assert docker_client.containers(all=True) == [], "a build container was left behind"


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


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
    from tests.helpers import write_image, write_project
    from gui.pipeline.project import load

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


@pytest.mark.slow
def test_silent_build_longer_than_the_sdk_default_timeout(tmp_path: Path, base_image: str) -> None:
    """The SDK's default 60 s read timeout would end this build mid-stream (urllib3's
    ReadTimeoutError): the step prints nothing for 65 s."""
    from tests.helpers import write_image, write_project
    from gui.pipeline.project import load

    write_image(tmp_path, "patient", base=base_image, run="sleep 65")
    project = load(write_project(tmp_path, [{"name": "patient", "context": "patient"}]))
    run = run_pipeline(project, timeout=200)
    [image] = run.report.images
    assert image.status is Status.BUILT, image.error
    assert image.build.seconds > 65
