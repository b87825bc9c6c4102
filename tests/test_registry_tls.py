"""HTTPS registries for Dockpool's own uploader: the system's trust store, Docker's
certs.d, `insecure = true`, and HTTPS_PROXY / NO_PROXY. The registry listens on a
non-loopback address, which (as for Docker) gets no plain-HTTP or unverified fallback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import truststore

from gui.pipeline import events as ev
from gui.pipeline import registry_http
from gui.pipeline.events import FailureKind, Status
from gui.pipeline.registry_http import VERIFIER_SETTING, RegistryClient, RegistryError, check_registry
from tests.helpers import run_pipeline, simple_project
from tests.proxy import ConnectProxy
from tests.tls import start_tls_registry, system_bundle_with

pytestmark = pytest.mark.docker


@pytest.fixture
def tls_registry(tmp_path: Path, docker_host: str):
    registry, ca = start_tls_registry(tmp_path)
    yield registry, ca
    registry.stop()


def test_untrusted_certificate_fails_as_tls_and_is_not_retried(tmp_path: Path, tls_registry) -> None:
    registry, _ = tls_registry
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address), retries=2)
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "tls", image.error
    assert "CERTIFICATE_VERIFY_FAILED" in image.error or "certificate verify failed" in image.error
    assert image.push.attempts == 1 and "trust store" in image.hint


def _trusting(tmp_path: Path, ca: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system's CA bundle with the test CA in it, as an administrator would add it."""
    bundle = system_bundle_with(ca, tmp_path / "system-bundle.pem")
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    return bundle


def _connect(registry) -> None:
    """What a push does first, in this process: the scheme and a HEAD."""
    client = RegistryClient(registry.address, None, insecure=False, timeout=10)
    try:
        client.connect()
        assert client.blob_size("img00", "sha256:" + "0" * 64) is None
    finally:
        client.close()


@pytest.mark.parametrize("verifier", ["openssl", "os"])
def test_the_system_trust_store_is_used(tmp_path: Path, tls_registry, monkeypatch: pytest.MonkeyPatch,
                                        verifier: str) -> None:
    """On Linux the system store is OpenSSL's (SSL_CERT_FILE can point it elsewhere); on
    Windows and macOS ("os") truststore asks the OS's own store, and here, on Linux, runs
    its OpenSSL code: the path is exercised, not Windows' verifier."""
    registry, ca = tls_registry
    _trusting(tmp_path, ca, monkeypatch)
    monkeypatch.setenv(VERIFIER_SETTING, verifier)
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address))
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert registry.manifest_digest("img00", "latest") == image.digest
    assert any(f"pushing to https://{registry.address}/v2/img00" in line.text for line in run.of(ev.LogLine))


def test_the_trust_store_is_read_once_not_at_every_connection(tmp_path: Path, tls_registry,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the system's CA bundle parses about 140 certificates: some 50 ms of CPU.
    A pusher makes new connections for every image (a client per push, and one more for
    each request made ahead); the bundle must not be read again for each of them
    (truststore, on Linux, read it at every connection: about 130 ms more of a pusher's CPU
    per image)."""
    registry, ca = tls_registry
    _trusting(tmp_path, ca, monkeypatch)
    monkeypatch.delenv(VERIFIER_SETTING, raising=False)
    loads: list[str] = []

    def count(frame, event: str, arg) -> None:
        if event == "c_call" and getattr(arg, "__name__", "") in ("set_default_verify_paths",
                                                                  "load_verify_locations"):
            loads.append(arg.__name__)

    sys.setprofile(count)
    try:
        for _ in range(3):  # three pushes, one after another, as in one pusher
            _connect(registry)
    finally:
        sys.setprofile(None)
    assert len(loads) == 1, loads


def test_the_distributions_bundle_when_openssl_looks_elsewhere(tmp_path: Path, tls_registry,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A Python (or a packaged app) whose OpenSSL was built for another system's folders
    finds no certificates where it looks; the distribution's own bundle is used then."""
    registry, ca = tls_registry
    bundle = _trusting(tmp_path, ca, monkeypatch)
    monkeypatch.delenv(VERIFIER_SETTING, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))
    (tmp_path / "empty-certs").mkdir()
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty-certs"))
    monkeypatch.setattr(registry_http, "SYSTEM_BUNDLES", ())
    with pytest.raises(RegistryError) as refused:  # nothing to fall back on: nothing is trusted
        _connect(registry)
    assert refused.value.kind is FailureKind.TLS, refused.value.failure
    monkeypatch.setattr(registry_http, "SYSTEM_BUNDLES", (str(tmp_path / "missing.crt"), str(bundle)))
    _connect(registry)


@pytest.mark.parametrize("setting", ["openssl", "os", "OS", "no-such-verifier"])
def test_a_ca_added_to_certs_d_while_open_is_used_at_the_next_push(tmp_path: Path, tls_registry,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   setting: str) -> None:
    """The window's process lives for hours: a TLS failure, the CA put in certs.d, and the
    next check or push trusts it (a context kept by the process is made anew). The setting
    picks the verifier in any case; one it does not know means the platform's default."""
    registry, ca = tls_registry
    monkeypatch.setenv(VERIFIER_SETTING, setting)
    expected = {"openssl": "openssl", "os": "os", "OS": "os"}.get(setting, "openssl")  # Linux's default
    assert registry_http.verifier() == expected
    home = tmp_path / "home"
    folder = home / ".docker" / "certs.d" / registry.address
    folder.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(RegistryError) as refused:
        _connect(registry)
    assert refused.value.kind is FailureKind.TLS, refused.value.failure
    (folder / "ca.crt").write_bytes(ca.read_bytes())
    _connect(registry)
    context = registry_http.ssl_context(registry.address, True)
    assert isinstance(context, truststore.SSLContext) is (expected == "os")


def test_the_ca_bundle_rewritten_in_place_is_read_again(tmp_path: Path, tls_registry,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """update-ca-certificates rewrites the bundle where it is: the kept context is made anew."""
    registry, ca = tls_registry
    monkeypatch.delenv(VERIFIER_SETTING, raising=False)
    bundle = _trusting(tmp_path, ca, monkeypatch)
    with_ca = bundle.read_bytes()
    bundle.write_bytes(with_ca[:-len(ca.read_bytes())])  # the system's certificates alone
    with pytest.raises(RegistryError) as refused:
        _connect(registry)
    assert refused.value.kind is FailureKind.TLS, refused.value.failure
    with open(bundle, "r+b") as rewritten:
        rewritten.write(with_ca)
    _connect(registry)


def test_an_unusable_file_in_certs_d_is_named(tmp_path: Path, tls_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """In a push and in the window's check at Start: the file, and what is wrong with it."""
    registry, _ = tls_registry
    folder = tmp_path / "home" / ".docker" / "certs.d" / registry.address
    folder.mkdir(parents=True)
    (folder / "ca.crt").write_text("saved from a web page, not a certificate\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address))
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "tls", image.error
    assert f"{folder / 'ca.crt'}: is not a usable CA certificate" in image.error and "certs.d" in image.hint
    assert image.push.attempts == 1
    problem = check_registry(registry.address, "img00", None, insecure=False)
    assert problem is not None and f"{folder / 'ca.crt'}: is not a usable CA certificate" in problem
    (folder / "ca.crt").unlink()
    (folder / "ca.crt").symlink_to(tmp_path / "moved-away.crt")  # a link to a file that is gone
    problem = check_registry(registry.address, "img00", None, insecure=False)
    assert problem is not None and f"{folder / 'ca.crt'}: cannot be read" in problem


def test_certs_d_folders_are_named_as_docker_names_them_on_windows(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A Windows folder's name cannot hold ':': Docker drops it (certs.d\\registry5000)."""
    monkeypatch.setenv("ProgramData", str(tmp_path / "ProgramData"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("USERPROFILE", str(tmp_path / "home"))  # the home folder on Windows
    machine = tmp_path / "ProgramData" / "docker" / "certs.d" / "registry.example5000"
    user = tmp_path / "home" / ".docker" / "certs.d" / "registry.example5000"
    for folder in (machine, user, tmp_path / "home" / ".docker" / "certs.d" / "registry.example:5000"):
        folder.mkdir(parents=True)
    assert registry_http.certs_folders("registry.example:5000", windows=True) == [machine, user]
    assert registry_http.certs_folders("registry.example:5000", windows=False) == [
        tmp_path / "home" / ".docker" / "certs.d" / "registry.example:5000"]


def test_docker_certs_d_is_honoured(tmp_path: Path, tls_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, ca = tls_registry
    home = tmp_path / "home"
    (home / ".docker" / "certs.d" / registry.address).mkdir(parents=True)
    (home / ".docker" / "certs.d" / registry.address / "ca.crt").write_bytes(ca.read_bytes())
    monkeypatch.setenv("HOME", str(home))
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address))
    assert run.report.succeeded, run.report.images[0].error


def test_insecure_registry_skips_verification(tmp_path: Path, tls_registry) -> None:
    registry, _ = tls_registry
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address), insecure=True)
    assert run.report.succeeded, run.report.images[0].error


def test_https_proxy_and_no_proxy(tmp_path: Path, tls_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    registry, _ = tls_registry
    proxy = ConnectProxy()
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        project = simple_project(tmp_path, 1, registry=registry.address)
        assert run_pipeline(project, insecure=True).report.succeeded
        assert registry.address in proxy.tunnels, "the push did not go through HTTPS_PROXY"
        proxy.tunnels.clear()
        monkeypatch.setenv("NO_PROXY", registry.host)
        assert run_pipeline(project, insecure=True).report.succeeded
        assert proxy.tunnels == [], "NO_PROXY was not honoured"
    finally:
        proxy.close()
