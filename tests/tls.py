"""An HTTPS registry for tests and benchmarks: a test CA, a server certificate it signed,
and an address that is not loopback (loopback registries get Docker's insecure fallbacks,
which would hide what verification does)."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import subprocess
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gui.devservices import Registry


def non_loopback_address() -> str:
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


def certificates(folder: Path, address: str) -> tuple[Path, Path, Path]:
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


def system_bundle_with(ca: Path, path: Path) -> Path:
    """The system's CA bundle with the test CA added, as an administrator would add it,
    written to `path` (for SSL_CERT_FILE)."""
    path.write_bytes(Path(ssl.get_default_verify_paths().openssl_cafile).read_bytes() + ca.read_bytes())
    return path


def start_tls_registry(root: Path) -> tuple[Registry, Path]:
    """A started registry serving HTTPS with a certificate of a fresh test CA: (registry, CA file)."""
    address = non_loopback_address()
    ca, cert, key = certificates(root / "pki", address)
    registry = Registry(root / "tls-registry", host=address, tls=(cert, key))
    registry.start()
    return registry, ca
