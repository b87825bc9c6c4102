"""A private containerd, for the exports that engines newer than this machine's hand out.

Docker 25+ with the containerd image store (Docker Desktop's default for new installs,
and Docker Engine 29's) exports an image with containerd's own exporter: an OCI layout
(`index.json`, `blobs/sha256/…`) whose manifest keeps the media types the image has in
the store (Docker's, for an image pulled or loaded with them) and gzip layers, plus a
`manifest.json` naming those gzip blobs. This machine's engine (20.10) cannot, so the
tests import its `docker save` into a containerd of their own and export it with `ctr`:
the bytes are containerd's, not rewritten by a test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

from gui.devservices import ServiceError, start_service, stop_process

NAMESPACE = "dockpool-tests"


class Containerd:
    """containerd with its own root, state and socket under `root` (no snapshotter is
    needed: images are imported without unpacking)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "containerd.sock"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        binary, ctr = shutil.which("containerd"), shutil.which("ctr")
        if binary is None or ctr is None:
            raise ServiceError("containerd and ctr are not installed (Debian package containerd)")
        self.root.mkdir(parents=True, exist_ok=True)
        config = self.root / "config.toml"
        config.write_text(f'version = 2\nroot = "{self.root / "data"}"\nstate = "{self.root / "state"}"\n'
                          f'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
                          f'[grpc]\n  address = "{self.socket}"\n')
        self.process = start_service("containerd", [binary, "--config", str(config)], self.root / "containerd.log",
                                      lambda: self.socket.exists() and self._answers())

    def _answers(self) -> bool:
        try:
            return subprocess.run(self._ctr("version"), capture_output=True, timeout=10).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def _ctr(self, *args: str) -> list[str]:
        return ["ctr", "--address", str(self.socket), "--namespace", NAMESPACE, *args]

    def ctr(self, *args: str) -> str:
        done = subprocess.run(self._ctr(*args), capture_output=True, text=True, timeout=120)
        if done.returncode:
            raise AssertionError(f"ctr {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def export(self, saved: Path, name: str, target: Path, *, compress: bool) -> Path:
        """`saved` (a `docker save` of one image tagged `name`) as containerd exports it:
        with gzip layers as the store holds a pulled image (`compress`), or uncompressed
        as an image loaded from a classic export. Always with a `manifest.json`, as
        Docker's `docker save` writes it (this ctr also ignores `--skip-manifest-json`)."""
        self.ctr("images", "import", "--no-unpack", *(["--compress-blobs"] if compress else []), str(saved))
        try:
            self.ctr("images", "export", str(target), f"docker.io/{name}")
        finally:
            self.ctr("images", "rm", "--sync", f"docker.io/{name}")
        return target

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)


def manifest_in(archive: Path) -> dict:
    """The image manifest an OCI layout's index.json points at, as its writer wrote it."""
    with tarfile.open(archive) as tar:
        [top] = json.load(tar.extractfile("index.json"))["manifests"]  # type: ignore[arg-type]
        return json.load(tar.extractfile(f"blobs/sha256/{top['digest'][7:]}"))  # type: ignore[arg-type]
