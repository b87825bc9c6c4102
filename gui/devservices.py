"""A private Docker engine and registry, for the tests and `make run`.

Nothing can be pulled on an offline machine and no engine runs by default, so
the tests (and the demo) start their own: a `dockerd` with its own socket,
data root and pid file under a temporary folder, and Debian's `docker-registry`
on a free loopback port, whose request log the tests read to see what the
registry really received. Base images come from busybox-static via an import.

Usage: python -m gui.devservices run -- COMMAND ... ({registry} in COMMAND is
replaced by the registry's host:port; DOCKER_HOST is set for COMMAND).
"""

from __future__ import annotations

import calendar
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUSYBOX_IMAGE = "dockpool-busybox:latest"
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "dd", "head", "true", "false", "ls", "mkdir", "rm",
                   "cp", "touch", "date", "env", "test", "wc", "sha256sum", "tr", "seq", "grep")
START_TIMEOUT = 60.0


class ServiceError(RuntimeError):
    """A service did not start; the message includes the end of its log."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 20.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_service(name: str, command: list[str], log_path: Path,
                   answers: Callable[[], bool]) -> subprocess.Popen[bytes]:
    """Start a service with its output appended to its log; return once it answers."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{name} exited with {process.returncode}:\n{_tail(log_path)}")
        if answers():
            return process
        time.sleep(0.1)
    stop_process(process)
    raise ServiceError(f"{name} did not answer within {START_TIMEOUT:.0f} s:\n{_tail(log_path)}")


def _mounted(path: Path) -> bool:
    """Whether something is mounted on `path` (a bind mount on the same disk too, which
    os.path.ismount cannot tell)."""
    try:
        mounts = Path("/proc/self/mounts").read_text()
    except OSError:
        return False
    wanted = str(path).replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012")
    return any(line.split()[1] == wanted for line in mounts.splitlines() if len(line.split()) > 1)


class DockerDaemon:
    """A private dockerd: own socket, data root, exec root and pid file under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.log_path = root / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> str:
        binary = shutil.which("dockerd")
        if binary is None:
            raise ServiceError("dockerd is not installed (Debian package docker.io)")
        self.root.mkdir(parents=True, exist_ok=True)
        command = [binary, "--host", self.host, "--data-root", str(self.root / "data"),
                   "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "docker.pid"),
                   "--iptables=false", "--bridge=none", "--storage-driver=vfs",
                   "--userland-proxy=false"]
        self.process = start_service("dockerd", command, self.log_path,
                                      lambda: self.socket.exists() and self._answers())
        return self.host

    def _answers(self) -> bool:
        import docker

        try:
            docker.APIClient(base_url=self.host, version="auto", timeout=5).ping()
            return True
        except Exception:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        data = self.root / "data"
        for _ in range(5):  # a killed dockerd leaves its data root bind-mounted on itself, once per start
            if not _mounted(data):
                break
            subprocess.run(["umount", "--lazy", str(data)], check=False)
        shutil.rmtree(data, ignore_errors=True)


@dataclass(frozen=True)
class RegistryRequest:
    """One request as the registry logged it ("response completed")."""

    end: float  # epoch seconds
    duration: float
    method: str
    uri: str
    status: int
    agent: str

    @property
    def from_docker(self) -> bool:
        """Sent by a Docker engine (not by a test asking the registry's API)."""
        return self.agent.startswith("docker/")

    @property
    def from_pusher(self) -> bool:
        """Sent by a push: the engine's, or Dockpool's own uploader."""
        return self.agent.startswith(("docker/", "dockpool/"))

    @property
    def start(self) -> float:
        return self.end - self.duration

    @property
    def repository(self) -> str | None:
        match = re.match(r"^/v2/(.+?)/(blobs|manifests)/", self.uri)
        return match.group(1) if match else None


_FIELD_RE = re.compile(r'([\w.]+)=("(?:[^"\\]|\\.)*"|\S+)')
_DURATION_RE = re.compile(r"([\d.]+)(ns|µs|us|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration(text: str) -> float:
    return sum(float(number) * _UNITS[unit] for number, unit in _DURATION_RE.findall(text))


def _go_time(text: str) -> float:
    """RFC 3339 with up to nanoseconds, as logrus writes it."""
    main, _, fraction = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(main, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


class Registry:
    """Debian's docker-registry on a free loopback port, optionally with htpasswd auth or
    another auth section (a token service's). Stopping and starting it again keeps its
    port, its storage and its log, like a registry restarted by its operator."""

    def __init__(self, root: Path, htpasswd: Path | None = None, port: int | None = None,
                 auth: str | None = None, host: str = "127.0.0.1", tls: tuple[Path, Path] | None = None,
                 public_url: str = "") -> None:
        """`tls`: (certificate, key) to serve HTTPS; `host`: the address to listen on;
        `public_url`: the URL it names in its Location headers (its `http.host`)."""
        self.root = root
        self.public_url = public_url
        self.htpasswd = htpasswd
        self.auth = auth
        self.host = host
        self.tls = tls
        self.port = port or free_port()
        self.log_path = root / "registry.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def _open(self, request: urllib.request.Request | str, timeout: float) -> Any:
        """urlopen for this registry's own checks (a test's own CA is not verified here)."""
        import ssl

        context = ssl._create_unverified_context() if self.tls else None  # noqa: S323
        return urllib.request.urlopen(request, timeout=timeout, context=context)

    def start(self) -> str:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise ServiceError("docker-registry is not installed (Debian package docker-registry)")
        self.root.mkdir(parents=True, exist_ok=True)
        auth = self.auth or (f"auth:\n  htpasswd:\n    realm: dockpool-test\n    path: {self.htpasswd}\n"
                             if self.htpasswd else "")
        config = self.root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: info\n  formatter: text\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n" + (f"  host: {self.public_url}\n" if self.public_url else "")
            + (f"  tls:\n    certificate: {self.tls[0]}\n    key: {self.tls[1]}\n" if self.tls else "") + auth)
        self.process = start_service("docker-registry", [binary, "serve", str(config)], self.log_path,
                                      self._answers)
        return self.address

    def _answers(self) -> bool:
        try:
            self._open(f"{self.url}/v2/", 2).close()
            return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401
        except OSError:
            return False

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def requests(self) -> list[RegistryRequest]:
        found = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if 'msg="response completed"' not in line:
                continue
            fields = {key: value.strip('"') for key, value in _FIELD_RE.findall(line)}
            found.append(RegistryRequest(
                _go_time(fields["time"]), go_duration(fields.get("http.response.duration", "0s")),
                fields.get("http.request.method", ""), fields.get("http.request.uri", ""),
                int(fields.get("http.response.status", 0)), fields.get("http.request.useragent", "")))
        return found

    def manifest(self, repository: str, tag: str) -> dict[str, Any]:
        """The manifest a tag points at, as the registry serves it (no auth)."""
        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{tag}",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                               "application/vnd.oci.image.manifest.v1+json"})
        with self._open(request, 5) as response:
            return json.loads(response.read())

    def manifest_digest(self, repository: str, tag: str, auth: tuple[str, str] | str | None = None) -> str | None:
        """Ask the registry's HTTP API which digest a tag points at (None: no such tag).
        `auth`: (user, password) for Basic auth, or a bearer token."""
        request = urllib.request.Request(
            f"{self.url}/v2/{repository}/manifests/{tag}", method="HEAD",
            headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                               "application/vnd.oci.image.manifest.v1+json"})
        if isinstance(auth, str):
            request.add_header("Authorization", f"Bearer {auth}")
        elif auth:
            import base64
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        try:
            with self._open(request, 5) as response:
                return response.headers.get("Docker-Content-Digest")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise


def busybox_rootfs() -> bytes:
    """A tar of a minimal root file system: static busybox and its applet links."""
    source = Path(shutil.which("busybox") or "/bin/busybox")
    if not source.exists():
        raise ServiceError("busybox is not installed (Debian package busybox-static)")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for folder in ("bin", "tmp", "etc"):
            info = tarfile.TarInfo(folder)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if folder == "tmp" else 0o755
            archive.addfile(info)
        archive.add(str(source), arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            archive.addfile(link)
    return buffer.getvalue()


def import_busybox(client: Any, reference: str = BUSYBOX_IMAGE) -> str:
    """Import the busybox base image (no network needed); returns the reference."""
    repository, _, tag = reference.rpartition(":")
    client.import_image_from_data(busybox_rootfs(), repository=repository, tag=tag)
    return reference


def _engine_reachable() -> bool:
    import docker

    try:
        docker.from_env(timeout=5).ping()
        return True
    except Exception:
        return False


def run_with_services(command: list[str]) -> int:
    """Run `command` with an engine (private one if none answers) and a private registry."""
    import docker

    root = Path(tempfile.mkdtemp(prefix="dockpool-dev-", dir="/tmp"))
    daemon = None
    registry = Registry(root / "registry")
    try:
        if not _engine_reachable():
            if os.geteuid() != 0:
                print("No Docker engine answers and a private one needs root; start Docker or run as root.",
                      file=sys.stderr)
                return 3
            print(f"No Docker engine answers; starting a private one under {root} ...", file=sys.stderr)
            daemon = DockerDaemon(root / "engine")
            os.environ["DOCKER_HOST"] = daemon.start()
        address = registry.start()
        print(f"Private registry at {address} (log: {registry.log_path})", file=sys.stderr)
        import_busybox(docker.from_env(timeout=60).api)
        filled = [part.replace("{registry}", address) for part in command]
        # Ctrl+C reaches the child too, which cancels its run in order; this process
        # must outlive it to stop the services, so it only notes the signal.
        signal.signal(signal.SIGINT, lambda *_: None)
        return subprocess.Popen(filled).wait()
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    finally:
        registry.stop()
        if daemon:
            daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[0] != "run" or argv[1] != "--":  # {registry} in COMMAND is optional
        print(__doc__, file=sys.stderr)
        return 2
    return run_with_services(argv[2:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
