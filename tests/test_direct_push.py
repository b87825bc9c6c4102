"""Dockpool's own uploader (push = "direct") against the real registry, failures made real.

Every stall here is the one users meet: held open forever, never reset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from types import SimpleNamespace

import pytest

from gui.devservices import DockerDaemon, Registry
from gui.pipeline import events as ev
from gui.pipeline.events import Status
from gui.pipeline.layer_cache import LayerCache
from gui.pipeline.project import load
from gui.pipeline.push_direct import DirectPush, _Reporter
from gui.pipeline.tasks import PushTask
from tests.containerd import manifest_in
from tests.helpers import (Run, htpasswd_file, left_behind, max_concurrent, own_temp_folder, registry_token,
                           run_pipeline, simple_project, wait_until_dead, write_image, write_project)
from tests.proxy import Proxy
from tests.token_service import TokenService

pytestmark = pytest.mark.docker


def _target(registry: Registry) -> tuple[str, int]:
    host, port = registry.address.split(":")
    return host, int(port)


def _record_pids(seen: list[int]):
    def hook(pipeline, event) -> None:
        seen.extend(pid for pid in pipeline.worker_pids() if pid not in seen)
    return hook


def _push_through(proxy: Proxy, tmp_path: Path, **options) -> Run:
    """One image of 2 MB pushed (direct) through `proxy`, which is closed afterwards."""
    try:
        project = simple_project(tmp_path, 1, registry=proxy.address, payload=2_000_000)
        return run_pipeline(project, push_via="direct", **options)
    finally:
        proxy.close()


@pytest.mark.parametrize("memory_mb", ["64", "0.5"], ids=["layer-in-memory", "layer-mostly-on-disk"])
def test_stall_held_open_forever_is_resumed_and_pushed(tmp_path: Path, registry: Registry, monkeypatch,
                                                       memory_mb: str) -> None:
    """Whether the compressed layer waits in memory or (a push allowed 0.5 MB) mostly in
    its file, the stalled upload is sent again from it, and nothing is left behind."""
    monkeypatch.setenv("DOCKPOOL_PUSH_MEMORY_MB", memory_mb)
    temp = own_temp_folder(tmp_path, monkeypatch)
    stalling = Proxy(_target(registry), stall_after=3_000_000)  # never resets, never reads again
    pids: list[int] = []
    on_disk: list[int] = []  # sizes of compressed layer files seen during the push

    def watch(pipeline, event) -> None:
        _record_pids(pids)(pipeline, event)
        if isinstance(event, ev.PushProgress):
            for folder in temp.glob("dockpool-push-*"):
                try:  # a push's folder and files go at its end, maybe while they are listed
                    on_disk.extend(path.stat().st_size for path in folder.rglob("*.gz"))
                except FileNotFoundError:
                    pass

    try:
        project = simple_project(tmp_path, 1, registry=stalling.address, payload=24_000_000)
        started = time.monotonic()
        run = run_pipeline(project, stall_timeout=3, push_via="direct", on_event=watch)
        took = time.monotonic() - started
        assert stalling.stalled.is_set(), "the proxy never stalled: the test proves nothing"
    finally:
        stalling.close()
    if memory_mb == "64":
        assert on_disk == [], "a layer that fits the push's memory was written to disk"
    else:
        assert on_disk and max(on_disk) > 20_000_000, "the layer was not on disk: the test proves nothing"
    assert left_behind(temp) == []
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert image.push.resumes >= 1 and '"resumes": ' in run.report.to_json()
    [resumed] = run.of(ev.UploadResumed)[:1]
    assert "no progress for 3 s" in resumed.reason or "no answer from the registry for 3 s" in resumed.reason
    assert image.push.attempts == 1, "the stall was handled inside the push, not by a retry"
    assert took < 60
    assert registry.manifest_digest("img00", "latest") == image.digest
    assert wait_until_dead(pids) == [], "a worker process was left running"


def test_blackhole_times_out_and_is_retried_until_it_forwards(tmp_path: Path, registry: Registry) -> None:
    proxy = Proxy(_target(registry))
    proxy.blackhole(True)
    try:
        project = simple_project(tmp_path, 1, registry=proxy.address)

        def open_up(pipeline, event) -> None:
            if isinstance(event, ev.RetryScheduled) and event.stage is ev.Stage.PUSH:
                proxy.blackhole(False)

        run = run_pipeline(project, stall_timeout=2, retries=4, retry_backoff=0.5, push_via="direct",
                           on_event=open_up)
    finally:
        proxy.close()
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert image.push.attempts >= 2
    first = run.of(ev.RetryScheduled)[0]
    assert first.failure.kind in (ev.FailureKind.UNREACHABLE, ev.FailureKind.NETWORK)
    assert "2 s" in first.failure.message
    assert registry.manifest_digest("img00", "latest") == image.digest


def test_registry_restarted_mid_push(tmp_path: Path, registry: Registry) -> None:
    slow = Proxy(_target(registry), rate=2_000_000)
    restarted = threading.Event()

    def restart() -> None:
        registry.stop()
        time.sleep(2)
        registry.start()
        restarted.set()

    def stop_during_upload(pipeline, event) -> None:
        if isinstance(event, ev.PushProgress) and event.done > 2_000_000 and not restarted.is_set() \
                and not getattr(stop_during_upload, "started", False):
            stop_during_upload.started = True
            threading.Thread(target=restart, daemon=True).start()

    try:
        project = simple_project(tmp_path, 2, registry=slow.address, pushers=1, payload=8_000_000)
        run = run_pipeline(project, stall_timeout=5, retries=5, retry_backoff=1, push_via="direct",
                           on_event=stop_during_upload)
    finally:
        slow.close()
    assert restarted.is_set()
    assert run.report.succeeded, [(i.name, i.status, i.error) for i in run.report.images]
    assert run.of(ev.RetryScheduled) or run.of(ev.UploadResumed)
    for image in run.report.images:
        assert registry.manifest_digest(image.name, "latest") == image.digest


def test_upload_purged_by_the_registry_mid_push_is_sent_again(tmp_path: Path, registry: Registry) -> None:
    """A registry purges upload sessions (its upload purging, an operator cleaning up, a
    restart on fresh storage): the next request of the upload gets 404 BLOB_UPLOAD_UNKNOWN.
    That blob goes again in a new upload, within the same push attempt."""
    slow = Proxy(_target(registry), rate=2_000_000)
    purged: list[Path] = []
    uploads = registry.root / "data" / "docker" / "registry" / "v2" / "repositories" / "img00" / "_uploads"

    def purge_during_upload(pipeline, event) -> None:
        if isinstance(event, ev.PushProgress) and event.done > 2_000_000 and not purged:
            for session in uploads.iterdir():
                shutil.rmtree(session, ignore_errors=True)
                purged.append(session)

    try:
        project = simple_project(tmp_path, 1, registry=slow.address, payload=8_000_000)
        run = run_pipeline(project, stall_timeout=10, push_via="direct", on_event=purge_during_upload)
    finally:
        slow.close()
    assert purged, "no upload session was purged: the test proves nothing"
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert image.push.attempts == 1, "the lost upload was sent again inside the push, not by a retry"
    assert any("BLOB_UPLOAD_UNKNOWN" in resumed.reason or "404" in resumed.reason
               for resumed in run.of(ev.UploadResumed)), run.of(ev.UploadResumed)
    # Only the blob on the wire went again: the session opened ahead for the config was
    # purged too, and is not the one that blob's next attempt (or the config) used.
    assert len(run.of(ev.UploadResumed)) == 1, run.of(ev.UploadResumed)
    assert registry.manifest_digest("img00", "latest") == image.digest


def test_an_engine_gone_mid_export_leaves_no_upload_on_the_registry(tmp_path: Path, registry: Registry,
                                                                     monkeypatch) -> None:
    """The engine dies while its export streams a layer that is uploaded as it is
    compressed (Docker Desktop restarting, its VM stopped): the push fails, saying the
    engine's export broke, and the upload is cancelled, so the registry need not keep
    the partial blob until its own purge (a week, by default)."""
    engine = DockerDaemon(Path(tempfile.mkdtemp(prefix="dockpool-engine-", dir="/tmp")))  # short socket paths
    killed = threading.Event()

    def kill_engine_once_uploading(pipeline, event) -> None:
        if isinstance(event, ev.PushProgress) and event.done > 0 and not killed.is_set():
            killed.set()
            os.killpg(engine.process.pid, signal.SIGKILL)  # dockerd (its containerd dies with it)

    slow = Proxy(_target(registry), rate=4_000_000)
    try:
        monkeypatch.setenv("DOCKER_HOST", engine.start())  # a private engine: this test kills it
        # 120 MB take the export and its compression 1 to 3 s here; the first bytes leave
        # (and the engine is killed) within a few tenths of a second.
        project = simple_project(tmp_path, 1, registry=slow.address, payload=120_000_000)
        run = run_pipeline(project, push_via="direct", retries=0, on_event=kill_engine_once_uploading)
    finally:
        slow.close()
        engine.stop()
        shutil.rmtree(engine.root, ignore_errors=True)
    assert killed.is_set(), "the engine was never killed: the test proves nothing"
    [image] = run.report.images
    assert image.status is Status.FAILED, "the engine was killed after its export ended: the test proves nothing"
    assert image.stage is ev.Stage.PUSH and image.error_kind == "engine", image.error
    assert "the engine's export broke off after" in image.error, image.error
    # Every upload session opened is cancelled (none was completed). The registry may still
    # keep a partial blob: distribution's PATCH handler, still reading what was sent
    # before the connection closed, writes it back after the cancel (seen here).
    # (The registry's access log: its "response completed" lines leave out answers it
    # counts as errors, and the cancel of an upload that grew meanwhile is answered 404.)
    asked = re.findall(r'"(POST|PUT|DELETE) /v2/img00/blobs/uploads/(\S*) HTTP/1.1" (\d+) .*"dockpool/',
                       registry.log_path.read_text())
    opened = [a for a in asked if a[0] == "POST" and a[2] == "202"]
    cancelled = {uri.split("?")[0] for method, uri, _ in asked if method == "DELETE"}
    assert opened and not [a for a in asked if a[0] == "PUT"] and len(cancelled) == len(opened), asked


@pytest.mark.parametrize("lost", ["blob", "manifest"])
def test_answer_lost_after_the_registry_committed(tmp_path: Path, registry: Registry, lost: str) -> None:
    """The connection is cut after the registry stored a layer (or the manifest) and
    before its answer arrives, as a load balancer's idle timeout does while a registry
    commits a big blob. The registry has it: the layer is not sent again, the image is
    pushed, and the digest is the registry's."""
    proxy = Proxy(_target(registry))
    if lost == "blob":
        proxy.lose_answer(b"PUT", b"/blobs/uploads/")  # the PUT that completes the first upload
    else:
        proxy.lose_answer(b"PUT", b"/manifests/")
    run = _push_through(proxy, tmp_path, stall_timeout=5, retries=2, retry_backoff=0.5)
    assert proxy.lost, "no answer was lost: the test proves nothing"
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    patches = [r for r in registry.requests() if r.method == "PATCH" and r.from_pusher]
    committed = {r.uri.rpartition("digest=")[2] for r in registry.requests()
                 if r.method == "PUT" and "/blobs/uploads/" in r.uri and r.from_pusher}
    assert len(patches) == len(committed), "a blob the registry had stored was uploaded again"
    if lost == "blob":
        assert image.push.attempts == 1, "a lost answer to a stored blob cost the whole push"
    assert registry.manifest_digest("img00", "latest") == image.digest


def test_other_success_statuses_are_taken_as_docker_takes_them(tmp_path: Path, registry: Registry) -> None:
    """Registries differ in the 2xx they answer: Pulp answered a PATCH with 204 until 2026
    (pulp/pulp_container#2199), as go-containerregistry's registry did (#2198), and
    distribution 2.0 answered a manifest PUT with 202. `docker push` takes any 2xx; so
    must the direct path. The real registry answers, the proxy rewrites the status line."""
    proxy = Proxy(_target(registry))
    proxy.answer_instead(b"PATCH", b"202 Accepted", b"204 No Content")
    proxy.answer_instead(b"PUT", b"201 Created", b"202 Accepted")  # blob commits and manifests
    run = _push_through(proxy, tmp_path, retries=0)
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert {b"PATCH 202 Accepted", b"PUT 201 Created"} <= set(proxy.rewritten), "nothing rewritten: proves nothing"
    assert registry.manifest_digest("img00", "latest") == image.digest


def test_a_patch_the_registry_holds_less_of_restarts_the_blob(tmp_path: Path, registry: Registry) -> None:
    """ECR has answered a PATCH with 202 and dropped its bytes (aws/containers-roadmap#2831):
    the Range it reports after the PATCH is the registry's word for what it holds. One
    short of what was sent restarts the blob in a new upload (the short one cancelled);
    the image is pushed. The real registry's answer has its Range edited, once."""
    proxy = Proxy(_target(registry))
    proxy.edit_answer_once(b"PATCH", rb"(?i)(\r\nrange: )0-\d+", rb"\g<1>0-1023")
    run = _push_through(proxy, tmp_path, retries=0)
    assert proxy.rewritten, "no Range edited: proves nothing"
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert image.push.attempts == 1 and image.push.resumes == 1, (image.push.attempts, image.push.resumes)
    # (as the layer streamed while it was compressed, or was sent whole once compressed)
    assert any("did not take the whole layer" in line or "holds 1024 of" in line for line in run.log()), \
        "\n".join(run.log())
    patches = [r for r in registry.requests() if r.method == "PATCH" and r.from_pusher]
    cancelled = [r for r in registry.requests() if r.method == "DELETE" and "/blobs/uploads/" in r.uri]
    assert len(patches) == len(registry.manifest("img00", "latest")["layers"]) + 2 and cancelled, \
        (len(patches), len(cancelled))
    assert registry.manifest_digest("img00", "latest") == image.digest


def test_a_head_the_registry_cannot_answer_means_upload(tmp_path: Path, registry: Registry) -> None:
    """A front end that refuses HEAD (405), or a registry that redirects it to storage
    signed for GET only (403 for a blob it has): `docker push` uploads the layer then,
    and so does the direct path, on a first run (every blob new) and on a second one
    (every blob there, its layers found through the layer cache)."""
    proxy = Proxy(_target(registry))
    proxy.answer_instead(b"HEAD", b"404 Not Found", b"405 Method Not Allowed")
    proxy.answer_instead(b"HEAD", b"200 OK", b"403 Forbidden")
    try:
        project = simple_project(tmp_path, 1, registry=proxy.address, payload=2_000_000)
        runs = [run_pipeline(project, retries=0, push_via="direct") for _ in range(2)]
    finally:
        proxy.close()
    assert {b"HEAD 404 Not Found", b"HEAD 200 OK"} <= set(proxy.rewritten), "no HEAD refused: proves nothing"
    for run in runs:
        [image] = run.report.images
        assert image.status is Status.PUSHED, image.error
        assert registry.manifest_digest("img00", "latest") == image.digest


def test_commit_held_on_its_way_is_resumed_at_the_registrys_offset(tmp_path: Path, registry: Registry) -> None:
    """The PUT that completes a layer's upload never reaches the registry: a middlebox
    dropped the kept-alive connection and holds it open, unanswered. The registry has
    every byte of the layer in the upload, and says so (GET on the upload, its Range):
    the upload resumes at its end (the PUT alone goes again), and no byte goes twice."""
    proxy = Proxy(_target(registry))
    proxy.hold_request(b"PUT", b"/blobs/uploads/")  # the PUT that completes the first upload
    run = _push_through(proxy, tmp_path, stall_timeout=3)
    assert proxy.held, "no request was held: the test proves nothing"
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert image.push.attempts == 1 and image.push.resumes == 1
    [resumed] = run.of(ev.UploadResumed)
    manifest = registry.manifest("img00", "latest")
    sizes = {blob["digest"][7:19]: blob["size"] for blob in manifest["layers"] + [manifest["config"]]}
    assert resumed.offset == sizes[resumed.blob], "not resumed at the end of the layer the registry holds"
    assert "no answer from the registry for 3 s" in resumed.reason
    assert any(f"resumed at byte {resumed.offset}" in line.text for line in run.of(ev.LogLine))
    patches = [r for r in registry.requests() if r.method == "PATCH" and r.from_pusher]
    assert len(patches) == len(sizes), "a byte the registry held was sent again"
    assert registry.manifest_digest("img00", "latest") == image.digest


@pytest.fixture
def token_registry(tmp_path: Path, docker_host: str):
    service = TokenService(tmp_path / "tokens", {"dockpool": "secret-pass"}, lifetime=4)
    registry = Registry(tmp_path / "token-registry", auth=service.registry_auth())
    registry.start()
    yield service, registry
    registry.stop()
    service.close()


def test_token_auth_refreshes_an_expiring_token(tmp_path: Path, token_registry) -> None:
    service, registry = token_registry
    slow = Proxy(_target(registry), rate=1_000_000)  # 8 MB take longer than a token lives
    try:
        project = simple_project(tmp_path, 1, registry=slow.address, payload=8_000_000)
        run = run_pipeline(project, push_via="direct", auth={"username": "dockpool", "password": "secret-pass"})
    finally:
        slow.close()
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    push_tokens = [at for at, user, scopes in service.issued if user == "dockpool" and any("push" in s for s in scopes)]
    assert len(push_tokens) >= 2 and push_tokens[-1] - push_tokens[0] >= service.lifetime - 1, \
        "the push token was never renewed"
    token = registry_token(service, "img00", "dockpool", "secret-pass")
    assert registry.manifest_digest("img00", "latest", token) == image.digest
    assert "secret-pass" not in run.report.to_json()
    assert not any("secret-pass" in repr(event) for event in run.events)


def _push_behind(tmp_path: Path, service: TokenService, *others: TokenService,
                 auth: dict[str, str] | None = None, identity_token: str = ""):
    """One image pushed (direct) to a registry whose tokens `service` issues, with the
    run's login or an identity token stored as `docker login` stores one; the registry
    is stopped and every token service closed afterwards."""
    registry = Registry(tmp_path / "token-registry", auth=service.registry_auth())
    registry.start()
    try:
        if identity_token:
            config = Path(os.environ["DOCKER_CONFIG"])
            config.mkdir(parents=True, exist_ok=True)
            (config / "config.json").write_text(json.dumps(
                {"auths": {registry.address: {"identitytoken": identity_token}}}), encoding="utf-8")
        project = simple_project(tmp_path, 1, registry=registry.address)
        return run_pipeline(project, retries=0, push_via="direct", auth=auth)
    finally:
        registry.stop()
        for each in (service, *others):
            each.close()


def test_token_request_as_docker_sends_it(tmp_path: Path, docker_host: str) -> None:
    """A token service behind a front end: its realm has a query of its own and answers
    with a redirect first (Harbor or GitLab behind a proxy that sends http to https). As
    `docker push` does, the redirect is followed, the realm's query kept, and the user
    named in `account` (Portus takes the token's user from it)."""
    service = TokenService(tmp_path / "tokens", {"dockpool": "secret-pass"}, realm_path="/moved?tenant=team")
    run = _push_behind(tmp_path, service, auth={"username": "dockpool", "password": "secret-pass"})
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert service.queries and all(q.get("tenant") == ["team"] and q.get("account") == ["dockpool"]
                                   for q in service.queries), service.queries


def test_a_refresh_token_never_follows_a_redirect_to_another_host(tmp_path: Path, docker_host: str) -> None:
    """`docker login` may store an identity token (an OAuth refresh token), which is POSTed
    to the realm. A 307 keeps a POST's body: a realm that redirects to another host would
    hand it the user's long-lived token. It is not followed there; the push fails as
    `auth`, and the other host receives nothing."""
    elsewhere = TokenService(tmp_path / "elsewhere", {}, listen="127.0.0.2")
    service = TokenService(tmp_path / "tokens", {"dockpool": "secret-pass"}, realm_path="/away")
    service.redirect_to = elsewhere.realm
    run = _push_behind(tmp_path, service, elsewhere, identity_token="refresh-token-of-the-user")
    assert elsewhere.posted == [], "the refresh token was sent to another host"
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error
    assert "does not send the stored identity token" in image.error, "the token was never POSTed: proves nothing"


def test_a_password_never_follows_a_token_redirect_to_another_host(tmp_path: Path, docker_host: str) -> None:
    """The token GET carries the password (Basic) and follows redirects, as Docker's does;
    one to another host arrives there without it (httpx drops Authorization across
    origins): that host issues an anonymous token, and the push fails as `auth`."""
    elsewhere = TokenService(tmp_path / "elsewhere", {}, listen="127.0.0.2")
    service = TokenService(tmp_path / "tokens", {"dockpool": "secret-pass"}, realm_path="/away")
    service.redirect_to = elsewhere.realm
    run = _push_behind(tmp_path, service, elsewhere, auth={"username": "dockpool", "password": "secret-pass"})
    assert elsewhere.logins_seen, "the redirect was not followed: proves nothing"
    assert elsewhere.logins_seen == [None] * len(elsewhere.logins_seen), "the password reached another host"
    assert any(service.logins_seen), "the realm itself was never sent the login: proves nothing"
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error


def test_credentials_go_to_the_registrys_own_host_only(tmp_path: Path, docker_host: str) -> None:
    """A registry whose uploads are sent elsewhere (its Location names another host, here
    through its `http.host`): the login is never sent there, as Docker never sends it.
    The push fails, naming the host and what to fix."""
    registry = Registry(tmp_path / "registry", htpasswd=htpasswd_file(tmp_path, "dockpool", "secret-pass"))
    elsewhere = Proxy(("127.0.0.1", registry.port), listen="127.0.0.2")
    try:
        registry.public_url = f"http://{elsewhere.address}"
        registry.start()
        project = simple_project(tmp_path, 1, registry=registry.address, payload=100_000)
        run = run_pipeline(project, push_via="direct", retries=0,
                           auth={"username": "dockpool", "password": "secret-pass"})
    finally:
        registry.stop()
        elsewhere.close()
    assert elsewhere.connections, ("nothing was sent to the other host: the test proves nothing",
                                   [(i.status, i.error) for i in run.report.images])
    assert elsewhere.authorized == 0, "the registry's login was sent to another host"
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error
    assert elsewhere.address in image.error and "http.host" in (image.hint or ""), (image.error, image.hint)


def test_a_push_asks_for_the_push_scope_only_as_docker_does(tmp_path: Path, token_registry) -> None:
    """Every request of a push, its HEADs included, goes with one token for pull and push
    on the repository: a registry may grant no pull on a repository that does not exist
    yet, and a second scope costs a second token per push."""
    service, registry = token_registry
    project = simple_project(tmp_path, 1, registry=registry.address, payload=100_000)
    run = run_pipeline(project, push_via="direct", auth={"username": "dockpool", "password": "secret-pass"})
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    asked = {tuple(scopes) for _, user, scopes in service.issued if user == "dockpool"}
    assert asked == {("repository:img00:pull,push",)}, asked


def test_token_auth_wrong_password_fails_clearly(tmp_path: Path, token_registry, monkeypatch) -> None:
    service, registry = token_registry
    temp = own_temp_folder(tmp_path, monkeypatch)
    project = simple_project(tmp_path, 1, registry=registry.address)
    run = run_pipeline(project, push_via="direct", auth={"username": "dockpool", "password": "wrong"})
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error
    assert image.push.attempts == 1, "a refused login is not retried"
    assert "401" in image.error and "wrong username or password" in image.error
    assert "log in" in image.hint
    assert service.refused >= 1
    assert left_behind(temp) == [], "a failed push left its files behind"


def _same_layer_for_two_teams(tmp_path: Path, registry: str, payload: int, between=lambda: None,
                              first: dict | None = None, **second) -> Run:
    """The same layer pushed (direct) as team-a/app, which must succeed, then, after
    `between()`, as team-b/app; `first` and `second` are the two runs' options. Returns
    the second run."""
    write_image(tmp_path, "ctx", payload=payload)
    runs = []
    for team, options in (("team-a", first or {}), ("team-b", second)):
        (tmp_path / team).mkdir()
        path = write_project(tmp_path / team, [{"name": f"{team}/app", "context": "../ctx"}], registry=registry)
        runs.append(run_pipeline(load(path), push_via="direct", **options))
        if team == "team-a":
            assert runs[0].report.succeeded, [(i.status, i.error) for i in runs[0].report.images]
            between()
    return runs[1]


def _mount_sources(registry: str) -> list:
    """What the layer cache knows of each layer pushed to `registry`."""
    cache = LayerCache(registry)
    return [cache.get(path.stem.replace("-", ":", 1)) for path in cache.folder.glob("sha256-*.json")]


def test_a_layer_another_repository_has_is_mounted_not_uploaded(tmp_path: Path, registry: Registry) -> None:
    """The same layer pushed to a second repository is mounted from the first (the layer
    cache knows where it is): the registry sees a mount and no PATCH for it."""
    marks: list[float] = []

    def mark() -> None:
        marks.append(time.time())
        time.sleep(1.1)  # the registry's log has whole-second resolution at worst

    run = _same_layer_for_two_teams(tmp_path, registry.address, 2_000_000, mark)
    between = marks[0]
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert any(line.text.endswith("mounted from team-a/app") for line in run.of(ev.LogLine)), \
        [line.text for line in run.of(ev.LogLine)]
    later = [r for r in registry.requests() if r.end > between + 1 and r.from_pusher]
    assert any(r.method == "POST" and "mount=" in r.uri and "from=team-a" in r.uri for r in later), later
    assert not [r for r in later if r.method == "PATCH" and r.duration > 0.05], "the layer was uploaded again"
    assert registry.manifest_digest("team-b/app", "latest") == image.digest


def test_refused_mount_falls_back_to_an_upload(tmp_path: Path, token_registry) -> None:
    """A layer the cache knows from another repository is mounted from there; when the
    registry refuses the mount (here: the user lost access to that repository), the layer
    is uploaded instead, as Docker does, not the push failed (every run again)."""
    service, registry = token_registry
    login = {"username": "dockpool", "password": "secret-pass"}
    run = _same_layer_for_two_teams(tmp_path, registry.address, 1_000_000, lambda: service.denied.add("team-a/app"),
                                    first={"auth": login}, auth=login)
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    lines = [line.text for line in run.of(ev.LogLine)]
    assert any("mount from team-a/app refused" in line for line in lines), lines
    token = registry_token(service, "team-b/app", "dockpool", "secret-pass")
    assert registry.manifest_digest("team-b/app", "latest", token) == image.digest
    # The refused source is forgotten: no later run tries that mount again.
    layers = _mount_sources(registry.address)
    assert layers and all(layer.repositories == ["team-b/app"] for layer in layers if layer), layers


def test_a_mount_the_registry_fails_falls_back_to_an_upload(tmp_path: Path, registry: Registry) -> None:
    """A server error on a mount (its storage, its token service) is no reason to fail
    the push: `docker push` uploads the layer then, and so does the direct path. The
    source stays a mount source for the next run: the error was the registry's."""
    proxy = Proxy(_target(registry))
    try:
        run = _same_layer_for_two_teams(  # only a mount answers a POST with 201
            tmp_path, proxy.address, 1_000_000,
            lambda: proxy.answer_instead(b"POST", b"201 Created", b"500 Internal Server Error"), retries=0)
    finally:
        proxy.close()
    assert proxy.rewritten, "no mount failed: proves nothing"
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert any("mount from team-a/app failed" in line for line in run.log()), run.log()
    assert registry.manifest_digest("team-b/app", "latest") == image.digest
    layers = _mount_sources(proxy.address)
    assert layers and all("team-a/app" in layer.repositories for layer in layers if layer), layers


def test_a_wrong_login_keeps_the_layer_caches_mount_sources(tmp_path: Path, auth_registry: Registry) -> None:
    """A HEAD refused for the login (401) is the login's failure, not "the blob is not
    there": the push fails as `auth` at once, and the mount sources the layer cache
    knows stay for the run with the right password (they were forgotten one by one as
    each mount was refused in turn)."""
    run = _same_layer_for_two_teams(tmp_path, auth_registry.address, 500_000,
                                    first={"auth": {"username": "dockpool", "password": "secret-pass"}},
                                    retries=0, auth={"username": "dockpool", "password": "wrong-pass"})
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "auth", image.error
    layers = _mount_sources(auth_registry.address)
    assert layers and all(layer and "team-a/app" in layer.repositories for layer in layers), layers


def test_pushed_image_pulls_and_runs(tmp_path: Path, registry: Registry, docker_client, base_image: str) -> None:
    """Pulled back and run; the image has the same layer twice (the payload copied in,
    replaced, copied in again), so a layer repeated in the export is handled too."""
    folder = write_image(tmp_path, "runme", base=base_image, payload=3_000_000,
                         extra="COPY other.bin /payload.bin\nCOPY payload.bin /payload.bin")
    (folder / "other.bin").write_bytes(os.urandom(1000))
    expected = hashlib.sha256((folder / "payload.bin").read_bytes()).hexdigest()
    project = load(write_project(tmp_path, [{"name": "team/runme", "context": "runme", "tags": ["1.0", "latest"]}],
                                 registry=registry.address))
    run = run_pipeline(project, push_via="direct")
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    layers = docker_client.inspect_image(image.image_id)["RootFS"]["Layers"]
    assert len(set(layers)) < len(layers), "no layer twice: the test would prove nothing"
    manifest = registry.manifest("team/runme", "1.0")
    blobs = {layer["digest"]: layer["size"] for layer in manifest["layers"]}  # the repeated layer goes once
    sizes = manifest["config"]["size"] + sum(blobs.values())
    last = run.of(ev.PushProgress)[-1]
    assert (last.done, last.total) == (sizes, sizes), "the progress is not the compressed bytes sent"
    for tag in ("1.0", "latest"):
        assert registry.manifest_digest("team/runme", tag) == image.digest == image.digests[
            f"{registry.address}/team/runme:{tag}"]
    docker_client.remove_image(image.image_id, force=True)
    assert _pulled_payload_sum(docker_client, f"{registry.address}/team/runme", "1.0") == expected


def _pulled_payload_sum(docker_client, reference: str, tag: str) -> str:
    """Pull the image from the registry and run it: the sha256 of its /payload.bin."""
    docker_client.pull(reference, tag=tag)
    container = docker_client.create_container(f"{reference}:{tag}", command=["sha256sum", "/payload.bin"],
                                               network_disabled=True)
    try:
        docker_client.start(container)
        assert docker_client.wait(container, timeout=60)["StatusCode"] == 0
        return docker_client.logs(container).decode().split()[0]
    finally:
        docker_client.remove_container(container, force=True)


class _ExportedByContainerd(DirectPush):
    """A push whose export is containerd's (what the containerd image store, Docker
    Desktop's default, answers), which this machine's engine cannot write: the export's
    bytes are read from containerd's archive instead of the engine's stream. Everything
    else is the engine's (its inspect) and the registry's."""

    archive: Path

    def _open_export(self, image_id: str) -> tuple[object, object]:
        stream = self.archive.open("rb")
        return stream, SimpleNamespace(raw=stream, close=stream.close)


def test_containerd_store_export_is_pushed_as_it_is_and_runs(tmp_path: Path, registry: Registry, docker_client,
                                                            base_image: str, containerd) -> None:
    """The store's gzip layers go to the registry byte for byte under the store's own
    media types; the image pulls back and runs."""
    folder = write_image(tmp_path, "stored", base=base_image, payload=2_000_000)
    expected = hashlib.sha256((folder / "payload.bin").read_bytes()).hexdigest()
    image_id = None
    for item in docker_client.build(path=str(folder), tag="dockpool-tests/stored:1", rm=True, decode=True):
        assert "error" not in item, item
        image_id = (item.get("aux") or {}).get("ID", image_id)
    saved = tmp_path / "save.tar"
    with saved.open("wb") as target:
        for chunk in docker_client.get_image("dockpool-tests/stored:1"):
            target.write(chunk)
    archive = containerd.export(saved, "dockpool-tests/stored:1", tmp_path / "containerd.tar", compress=True)
    theirs = manifest_in(archive)
    reference = f"{registry.address}/desktop/stored"
    task = PushTask(image="stored", refs=(f"{reference}:1",), attempt=1, stall_timeout=10, image_id=image_id)
    events: list[object] = []
    push = _ExportedByContainerd(SimpleNamespace(stream=docker_client, api_version=None), task,
                                 _Reporter(task.image, events.append), nullcontext())
    push.archive = archive
    try:
        digests = push.run()
    finally:
        push.close()
    served = registry.manifest("desktop/stored", "1")
    assert (served["mediaType"], served["config"], served["layers"]) == (
        theirs["mediaType"], theirs["config"], theirs["layers"])
    assert registry.manifest_digest("desktop/stored", "1") == digests[f"{reference}:1"]
    docker_client.remove_image(image_id, force=True)
    assert _pulled_payload_sum(docker_client, reference, "1") == expected


def test_an_image_without_layers_is_pushed(tmp_path: Path, registry: Registry) -> None:
    """FROM scratch with labels only: this engine (Docker before 25) refuses to export an
    image without layers ("empty export - not implemented"), so its config cannot be read
    from the export; the engine pushes it (a config of a few hundred bytes: nothing to stall)."""
    folder = tmp_path / "labels-only"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\nLABEL org.example.only=labels\n")
    project = load(write_project(tmp_path, [{"name": "labels-only", "context": "labels-only"}],
                                 registry=registry.address))
    run = run_pipeline(project, push_via="direct")
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert registry.manifest("labels-only", "latest")["layers"] == []
    assert registry.manifest_digest("labels-only", "latest") == image.digest
    assert any("pushed by the engine" in line for line in run.log("labels-only"))


def test_second_run_of_unchanged_images_uploads_nothing(tmp_path: Path, registry: Registry, monkeypatch) -> None:
    temp = own_temp_folder(tmp_path, monkeypatch)
    project = simple_project(tmp_path, 3, registry=registry.address, payload=1_000_000)
    first = run_pipeline(project, push_via="direct")
    assert first.report.succeeded
    assert left_behind(temp) == [], "a push left its files behind"
    between = time.time()
    time.sleep(1.1)  # the registry's log has whole-second resolution at worst
    second = run_pipeline(project, push_via="direct")
    assert second.report.succeeded
    assert [i.digest for i in second.report.images] == [i.digest for i in first.report.images]
    later = [r for r in registry.requests() if r.end > between + 1 and r.from_pusher]
    assert later, "the registry saw nothing of the second run"
    assert not [r for r in later if r.method in ("PATCH", "POST")], [(r.method, r.uri) for r in later]
    assert all(any("are in the registry already" in line.text for line in second.of(ev.LogLine, image.key))
               for image in second.report.images), "an image whose registry had all of it was exported again"
    # What the registry has is known from what was pushed, never from the engine's image ID
    # (the config's digest in the classic store only): without the image's entry in the
    # cache, the image is exported again, and still nothing is uploaded.
    cache = LayerCache(registry.address)
    for image in first.report.images:
        known = cache.image(image.image_id)
        assert known and known.config == registry.manifest(image.name, "latest")["config"]["digest"]
    shutil.rmtree(cache.folder / "images")
    between = time.time()
    time.sleep(1.1)
    third = run_pipeline(project, push_via="direct")
    assert [i.digest for i in third.report.images] == [i.digest for i in first.report.images]
    later = [r for r in registry.requests() if r.end > between + 1 and r.from_pusher]
    assert not [r for r in later if r.method == "PATCH"], [(r.method, r.uri) for r in later]
    assert not any("are in the registry already" in line.text for line in third.of(ev.LogLine))


def test_at_most_pushers_uploads_on_the_wire(tmp_path: Path, registry: Registry) -> None:
    slow = Proxy(_target(registry), rate=4_000_000)
    try:
        project = simple_project(tmp_path, 6, registry=slow.address, builders=6, pushers=2, payload=3_000_000)
        run = run_pipeline(project, push_via="direct")
    finally:
        slow.close()
    assert run.report.succeeded
    uploads = [(r.start, r.end) for r in registry.requests() if r.method == "PATCH" and r.from_pusher]
    assert len(uploads) >= 6
    assert max_concurrent(uploads) == 2, "uploads never overlapped (test too weak) or exceeded the limit"


def test_the_next_upload_is_opened_while_a_blob_is_on_the_wire(tmp_path: Path, registry: Registry,
                                                               monkeypatch) -> None:
    """With one pusher the link carries one blob at a time; the registry's answers to the
    next blob's HEAD and POST (it creates the upload's files) must not add to the pause
    between two blobs, so they are asked while the blob before it still streams. No
    session opened that way is left behind: each ends in a commit or a cancel (a second
    push from a machine whose layer cache is empty streams its first layer again, finds
    the others with their HEADs, and cancels the session it opened for the config,
    which the registry has)."""
    folder = tmp_path / "images" / "layers"
    folder.mkdir(parents=True)
    lines = ["FROM scratch"]
    for layer in range(3):
        (folder / f"layer{layer}.bin").write_bytes(os.urandom(1_500_000))
        lines.append(f"COPY layer{layer}.bin /layer{layer}.bin")
    (folder / "Dockerfile").write_text("\n".join(lines) + "\n")
    uplink = Proxy(_target(registry), total_rate=2_000_000)  # each layer on the wire for about 0.75 s
    project = load(write_project(tmp_path, [{"name": "layers", "context": "images/layers"}],
                                 registry=uplink.address, builders=1, pushers=1))
    try:
        monkeypatch.setenv("DOCKPOOL_CACHE_DIR", str(tmp_path / "cache-first"))
        first = run_pipeline(project, push_via="direct")
        assert first.report.succeeded, first.log()
        between = time.time()
        time.sleep(1.1)  # the registry's log has whole-second resolution at worst
        monkeypatch.setenv("DOCKPOOL_CACHE_DIR", str(tmp_path / "cache-second"))
        second = run_pipeline(project, push_via="direct", push_only=("layers",))
        assert second.report.succeeded, second.log()
    finally:
        uplink.close()
    requests = [r for r in registry.requests() if r.from_pusher and "/blobs/" in r.uri]
    first_push = [r for r in requests if r.end < between]
    bodies = sorted((r for r in first_push if r.method == "PATCH"), key=lambda r: r.start)
    assert len(bodies) == 4  # three layers and the config
    assert len([r for r in first_push if r.method == "POST"]) == 4, "an upload was opened for nothing"
    assert max_concurrent([(r.start, r.end) for r in requests if r.method in ("PATCH", "PUT")]) == 1
    pauses = [(before.end, after.start) for before, after in zip(bodies, bodies[1:])]
    in_pauses = [(r.method, r.uri) for r in first_push if r.method in ("HEAD", "POST")
                 and any(start < r.start and r.end < end for start, end in pauses)]
    assert not in_pauses, "asked in the pause between two blobs"
    opened = [r for r in requests if r.method == "POST"]
    committed = [r for r in requests if r.method == "PUT" and "digest=" in r.uri]
    cancelled = [r for r in requests if r.method == "DELETE"]
    assert [r for r in cancelled if r.end > between], "the upload opened for the config was not cancelled"
    assert len(opened) == len(committed) + len(cancelled), "an upload opened ahead was left open in the registry"
