"""Which builder builds: BuildKit through a docker CLI that can, or the classic builder.

Finding a `docker` is not enough. CLIs from 18.09 to 22.x have BuildKit built in
(`DOCKER_BUILDKIT=1 docker build`); from 23 on, `docker build` needs the buildx
plugin and fails without it ("the buildx component is missing"). A machine can
have several CLIs on PATH (this one has a 28.x without buildx ahead of Debian's
20.10), so every candidate is asked what it can do, in PATH order, and the
first that can build with BuildKit wins. The classic builder (the Docker SDK) is
the fallback when none can, and a choice.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .project import BuildSettings, Project
from .tasks import BuildBackend

PROBE_TIMEOUT = 15.0
INSTALL_HINT = ("install Docker Desktop (Windows, macOS), or Docker's docker-buildx-plugin package (Linux), "
                "or point [build] docker / --docker-cli at a docker CLI that can build with BuildKit")
_VERSION_RE = re.compile(r"version (\d+)\.(\d+)[.\w+~-]*", re.I)


class BackendUnavailable(RuntimeError):
    """The chosen backend cannot be used here; the message says why and what to do."""


@dataclass(frozen=True)
class CliAbility:
    path: str
    version: str  # the client's version, "" when it did not answer
    buildx: bool
    builtin: bool  # BuildKit built into `docker build` (CLI 18.09 to 22.x)
    problem: str = ""  # why it cannot build with BuildKit

    @property
    def can_build(self) -> bool:
        return self.buildx or self.builtin

    def describe(self, builder: str = "") -> str:
        how = "buildx" if self.buildx else "built-in BuildKit"
        return f"docker {self.version} at {self.path}, {how}" + (f", builder {builder}" if builder else "")


def _docker_desktop_folders() -> list[Path]:
    if sys.platform == "win32":
        roots = [os.environ.get("ProgramFiles", r"C:\Program Files"), os.environ.get("ProgramW6432", "")]
        return [Path(root) / "Docker" / "Docker" / "resources" / "bin" for root in roots if root]
    if sys.platform == "darwin":
        return [Path("/Applications/Docker.app/Contents/Resources/bin")]
    return []


def candidates() -> list[str]:
    """Every docker CLI on PATH in order (as `which -a docker`), then Docker Desktop's."""
    found: list[str] = []
    seen: set[str] = set()
    folders = [Path(p) for p in os.environ.get("PATH", "").split(os.pathsep) if p] + _docker_desktop_folders()
    for folder in folders:
        hit = shutil.which("docker", path=str(folder))
        if hit:
            real = os.path.realpath(hit)
            if real not in seen:
                seen.add(real)
                found.append(hit)
    return found


def _run(command: list[str]) -> tuple[int, str]:
    """Run a probe with no console window, its output decoded as UTF-8."""
    env = {key: value for key, value in os.environ.items() if key != "DOCKER_BUILDKIT"}
    try:
        done = subprocess.run(command, capture_output=True, timeout=PROBE_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return -1, str(exc)
    return done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace")


PROBE_CACHE_SECONDS = 60.0  # a plugin installed meanwhile is seen within a minute
_probed: dict[tuple[str, int], tuple[float, CliAbility]] = {}


def probe(path: str) -> CliAbility:
    """Ask one docker CLI what it can do (cached a minute per file and modification time)."""
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError as exc:
        return CliAbility(path, "", False, False, f"cannot be run: {exc.strerror}")
    cached = _probed.get((path, stamp))
    if cached and time.monotonic() - cached[0] < PROBE_CACHE_SECONDS:
        return cached[1]
    code, text = _run([path, "--version"])
    match = _VERSION_RE.search(text)
    if code != 0 or not match:
        ability = CliAbility(path, "", False, False, f"does not answer as a docker CLI ({text.strip()[:200]})")
    else:
        version = match.group(0).split()[-1]
        major, minor = int(match.group(1)), int(match.group(2))
        buildx = _run([path, "buildx", "version"])[0] == 0
        builtin = (18, 9) <= (major, minor) < (23, 0)
        problem = "" if buildx or builtin else (
            f"docker {version} has no buildx plugin, and from Docker 23 on `docker build` needs it for BuildKit")
        ability = CliAbility(path, version, buildx, builtin, problem)
    _probed[(path, stamp)] = (time.monotonic(), ability)
    return ability


def resolve_backend(settings: BuildSettings, choice: str | None = None, cli: str | None = None) -> BuildBackend:
    """The backend a run uses, from [build] and the command line's overrides.

    Raises BackendUnavailable when BuildKit was asked for (backend = "buildkit", an
    explicit CLI, a buildx builder) and cannot be had; `auto` falls back to classic
    and says why in the backend's detail.
    """
    choice = choice or settings.backend
    explicit = cli or settings.docker
    if choice == "classic":
        return BuildBackend(detail="Docker SDK, classic builder, chosen")
    if explicit:
        path = shutil.which(explicit) or explicit
        if not Path(path).is_file():
            raise BackendUnavailable(f"the docker CLI '{explicit}' does not exist")
        abilities = [probe(path)]
    else:
        abilities = [probe(path) for path in candidates()]
    for ability in abilities:
        if not ability.can_build:
            continue
        if settings.builder and not ability.buildx:
            continue  # a named builder needs buildx
        return BuildBackend("buildkit", ability.path, ability.buildx, settings.builder,
                            ability.describe(settings.builder))
    reasons = "; ".join(f"{a.path}: {a.problem or f'has no buildx plugin, which builder {settings.builder!r} needs'}"
                        for a in abilities) or "no docker CLI found on PATH"
    if choice == "buildkit" or explicit or settings.builder:
        raise BackendUnavailable(f"BuildKit is not available ({reasons}); {INSTALL_HINT}")
    return BuildBackend(detail=f"Docker SDK, classic builder: no docker CLI here can build with BuildKit ({reasons})")


def backend_problems(project: Project, backend: BuildBackend) -> list[str]:
    """What the chosen builder cannot do for this project (beyond BuildKit-only syntax,
    which project.validate reports): `cache_to` needs buildx."""
    label = str(project.path) if project.path else "project"
    problems = []
    for index, image in enumerate(project.images):
        if not image.enabled:
            continue
        where = f"{label}: image {index + 1} ('{image.name}')"
        if not backend.buildx and image.cache_to:
            problems.append(f"{where}: cache_to needs docker buildx, and {backend.detail} has none; {INSTALL_HINT}")
        exporters = [source for source in image.cache_from if "type=" in source]
        if not backend.buildx and exporters:
            problems.append(f"{where}: cache_from {exporters[0]!r} (a cache backend) needs docker buildx; without "
                            "it cache_from takes image references only")
    return problems
