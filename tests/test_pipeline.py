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
