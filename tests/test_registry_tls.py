"""HTTPS registries for Dockpool's own uploader: the system's trust store, Docker's
certs.d, `insecure = true`, and HTTPS_PROXY / NO_PROXY. The registry listens on a
non-loopback address, which (as for Docker) gets no plain-HTTP or unverified fallback."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gui.devservices import Registry
from gui.pipeline import events as ev
from gui.pipeline.events import Status
from tests.helpers import run_pipeline, simple_project
from tests.proxy import ConnectProxy

pytestmark = pytest.mark.docker


def _address() -> str:
    """An address of this machine that is not loopback (a dummy interface if it has none)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.254.254.254", 1))
        address = probe.getsockname()[0]
        if not ipaddress.ip_address(address).is_loopback:
            return address
    except OSError:
        pass
    finally:
        probe.close()
    subprocess.run(["ip", "link", "add", "dockpool0", "type", "dummy"], check=False, capture_output=True)
    subprocess.run(["ip", "addr", "add", "198.18.0.1/32", "dev", "dockpool0"], check=False, capture_output=True)
    subprocess.run(["ip", "link", "set", "dockpool0", "up"], check=True, capture_output=True)
    return "198.18.0.1"


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def _certificates(folder: Path, address: str) -> tuple[Path, Path, Path]:
    """A test CA, and a server certificate it signed for `address`: (ca, cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Dockpool test CA")).issuer_name(_name("Dockpool test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(address)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def tls_registry(tmp_path: Path, docker_host: str):
    address = _address()
    ca, cert, key = _certificates(tmp_path / "pki", address)
    registry = Registry(tmp_path / "tls-registry", host=address, tls=(cert, key))
    registry.start()
    yield registry, ca
    registry.stop()


def test_untrusted_certificate_fails_as_tls_and_is_not_retried(tmp_path: Path, tls_registry) -> None:
    registry, _ = tls_registry
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address), retries=2)
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "tls", image.error
    assert "CERTIFICATE_VERIFY_FAILED" in image.error or "certificate verify failed" in image.error
    assert image.push.attempts == 1 and "trust store" in image.hint


def test_the_system_trust_store_is_used(tmp_path: Path, tls_registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """On Linux the system store is OpenSSL's (SSL_CERT_FILE can point it elsewhere); on
    Windows and macOS truststore asks the OS's own store."""
    registry, ca = tls_registry
    bundle = tmp_path / "system-bundle.pem"
    bundle.write_bytes(Path(ssl.get_default_verify_paths().openssl_cafile).read_bytes() + ca.read_bytes())
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    run = run_pipeline(simple_project(tmp_path, 1, registry=registry.address))
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert registry.manifest_digest("img00", "latest") == image.digest
    assert any(f"pushing to https://{registry.address}/v2/img00" in line.text for line in run.of(ev.LogLine))


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
