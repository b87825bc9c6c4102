"""The project file: the list of images and the run settings, as TOML.

The CLI and the window share this one format. Loading checks everything a run
would trip over later (syntax, keys, names, tags, duplicates, folders,
Dockerfiles) and reports every problem with the file, image and field it is in,
so a user fixes them all in one pass instead of one per attempted run.

Validation is linear in the number of images (duplicates through one index of
name:tag, never pairwise) and reads each Dockerfile once: parses are cached by
path, size and modification time, so the window can re-check a row per keystroke
at 1,000 rows.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import tomllib
from collections import Counter
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomli_w

from . import dockerfile, reference

MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 64
DEFAULT_BUILDERS = 4
DEFAULT_PUSHERS = 2

BACKENDS = ("auto", "buildkit", "classic")
NETWORKS = ("default", "none", "host")
PUSH_PATHS = ("direct", "engine")

_TOP_KEYS = {"registry", "concurrency", "build", "image"}
_REGISTRY_KEYS = {"url", "push", "insecure"}
_CONCURRENCY_KEYS = {"builders", "pushers"}
_BUILD_KEYS = {"backend", "docker", "network", "timeout", "builder"}
_IMAGE_KEYS = {"name", "context", "dockerfile", "tags", "build_args", "target", "enabled", "network",
               "secrets", "ssh", "platform", "cache_from", "cache_to"}
_SECRET_ID_RE = re.compile(r"[A-Za-z0-9_.-]+", re.ASCII)
_PLATFORM_RE = re.compile(r"[a-z0-9]+/[a-z0-9_]+(?:/[a-z0-9]+)?", re.ASCII)
_BUILDER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)


@dataclass
class ImageSpec:
    """One image to build and push; paths are as written in the project file."""

    name: str
    context: str
    dockerfile: str = "Dockerfile"
    tags: list[str] = field(default_factory=lambda: ["latest"])
    build_args: dict[str, str] = field(default_factory=dict)
    target: str = ""
    enabled: bool = True
    network: str = ""  # "" = the [build] default
    secrets: dict[str, str] = field(default_factory=dict)  # id -> file path (relative to the project)
    ssh: list[str] = field(default_factory=list)  # "default", "ID", "ID=path[,path]"
    platform: str = ""
    cache_from: list[str] = field(default_factory=list)
    cache_to: list[str] = field(default_factory=list)

    def refs(self, registry: str) -> list[str]:
        """Full references (registry/name:tag) this image is tagged and pushed as."""
        repo = reference.repository(registry, self.name)
        return [f"{repo}:{tag}" for tag in self.tags]

    def copy(self) -> ImageSpec:
        """A copy with lists and dicts of its own (they hold only strings): what a run keeps
        while the project is edited, or a duplicate; twice as fast as deepcopy."""
        return replace(self, **{name: type(value)(value) for name, value in _fields(self).items()
                                if isinstance(value, (list, dict))})

    @property
    def needs_buildkit(self) -> list[str]:
        """The keys of this image that only BuildKit can honour."""
        return [key for key in ("secrets", "ssh", "cache_to") if getattr(self, key)]


def build_inputs(image: ImageSpec, build: BuildSettings) -> str:
    """What an image's build depends on, as far as the project says: a build kept from
    an earlier run is only pushed again while this is unchanged (its name and tags may
    change: the kept build is tagged anew; Retry after a build arg was fixed rebuilds)."""
    inputs = {key: value for key, value in _fields(image).items() if key not in ("name", "tags", "enabled", "cache_to")}
    inputs["build"] = {key: value for key, value in _fields(build).items() if key != "timeout"}
    return json.dumps(inputs, sort_keys=True)


def _fields(value: ImageSpec | BuildSettings) -> dict[str, Any]:
    """A flat dataclass's fields as they are (asdict would deep-copy every list and dict)."""
    return {item.name: getattr(value, item.name) for item in fields(value)}


@dataclass
class BuildSettings:
    """The [build] table: which builder builds, and defaults for every image."""

    backend: str = "auto"
    docker: str = ""  # the docker CLI to use; "" = find one that can build with BuildKit
    network: str = "default"
    timeout: float | None = None  # seconds; a build running longer is stopped
    builder: str = ""  # a buildx builder (remote, kubernetes, docker-container drivers)


@dataclass
class Project:
    """A loaded project. `path` anchors the relative context folders."""

    registry: str = ""
    builders: int = DEFAULT_BUILDERS
    pushers: int = DEFAULT_PUSHERS
    images: list[ImageSpec] = field(default_factory=list)
    path: Path | None = None
    push: str = "direct"
    insecure: bool = False
    build: BuildSettings = field(default_factory=BuildSettings)

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def context_path(self, image: ImageSpec) -> Path:
        return (self.base_dir / image.context).resolve()

    def dockerfile_path(self, image: ImageSpec) -> Path:
        return self.context_path(image) / image.dockerfile

    def file_path(self, relative: str) -> Path:
        """A path written in the project file (a secret, an ssh key), made absolute."""
        return (self.base_dir / os.path.expanduser(relative)).resolve()

    @property
    def enabled_images(self) -> list[ImageSpec]:
        return [image for image in self.images if image.enabled]


def image_keys(images: list[ImageSpec]) -> list[str]:
    """A unique key per image for events and the report: the name, or name:tag when
    several images share a name (validation guarantees name:tag is unique)."""
    counts = Counter(image.name for image in images)
    return [image.name if counts[image.name] == 1 else f"{image.name}:{image.tags[0] if image.tags else ''}"
            for image in images]


class ProjectError(ValueError):
    """Everything wrong with a project file, one problem per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _describe(index: int, raw: dict[str, Any]) -> str:
    name = raw.get("name")
    return f"image {index + 1} ('{name}')" if isinstance(name, str) and name else f"image {index + 1}"


def _unknown_keys(where: str, table: dict[str, Any], allowed: set[str]) -> list[str]:
    return [f"{where}: unknown key '{key}' (allowed: {', '.join(sorted(allowed))})"
            for key in table if key not in allowed]


_TYPE_WORDS = {str: "string", bool: "boolean (true/false)", list: "list of strings",
               dict: "table of strings", int: "whole number"}
_IMAGE_TYPES: dict[str, type] = {
    "name": str, "context": str, "dockerfile": str, "target": str, "enabled": bool, "tags": list,
    "build_args": dict, "network": str, "secrets": dict, "ssh": list, "platform": str,
    "cache_from": list, "cache_to": list}


def _parse_image(where: str, raw: Any) -> tuple[ImageSpec | None, list[str]]:
    """Turn one [[image]] table into an ImageSpec, or explain why not."""
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a table ([[image]])"]
    problems = _unknown_keys(where, raw, _IMAGE_KEYS)
    for key, kind in _IMAGE_TYPES.items():
        if key in raw and (not isinstance(raw[key], kind) or (kind is int and isinstance(raw[key], bool))):
            problems.append(f"{where}: {key} must be a {_TYPE_WORDS[kind]}, not {raw[key]!r}")
    for key in ("name", "context"):
        if key not in raw:
            problems.append(f"{where}: missing required key '{key}'")
    for key in ("tags", "ssh", "cache_from", "cache_to"):
        if isinstance(raw.get(key), list):
            for position, item in enumerate(raw[key]):
                if not isinstance(item, str):
                    problems.append(f"{where}: {key}[{position}] must be a string, not {item!r}")
    if isinstance(raw.get("tags"), list) and not raw["tags"]:
        problems.append(f"{where}: tags must list at least one tag")
    for key in ("build_args", "secrets"):
        if isinstance(raw.get(key), dict):
            for name, value in raw[key].items():
                if not isinstance(value, str):
                    problems.append(f"{where}: {key}.{name} must be a string, not {value!r}"
                                    f" (write {name} = \"{value}\")")
    if problems:
        return None, problems
    spec = ImageSpec(
        name=raw["name"], context=raw["context"],
        dockerfile=raw.get("dockerfile", "Dockerfile"),
        tags=list(raw.get("tags", ["latest"])),
        build_args=dict(raw.get("build_args", {})),
        target=raw.get("target", ""), enabled=raw.get("enabled", True),
        network=raw.get("network", ""), secrets=dict(raw.get("secrets", {})), ssh=list(raw.get("ssh", [])),
        platform=raw.get("platform", ""), cache_from=list(raw.get("cache_from", [])),
        cache_to=list(raw.get("cache_to", [])))
    return spec, []


def _parse_concurrency(where: str, table: dict[str, Any], key: str, default: int) -> tuple[int, list[str]]:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        return default, [f"{where}: {key} must be a whole number, not {value!r}"]
    problem = concurrency_problem(value)
    return value, [f"{where}: {key} {problem}"] if problem else []


def concurrency_problem(value: int) -> str | None:
    if not MIN_CONCURRENCY <= value <= MAX_CONCURRENCY:
        return f"must be between {MIN_CONCURRENCY} and {MAX_CONCURRENCY}, not {value}"
    return None


def _choice_problem(value: str, allowed: tuple[str, ...]) -> str | None:
    if value not in allowed:
        return f"must be one of {', '.join(repr(a) for a in allowed)}, not {value!r}"
    return None


class DockerfileCache:
    """Parsed Dockerfiles by (path, size, mtime): a file is re-read only when it changed."""

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[tuple[int, int], dockerfile.DockerfileInfo | Exception]] = {}

    def read(self, path: Path) -> dockerfile.DockerfileInfo:
        stat = path.stat()
        stamp = (stat.st_size, stat.st_mtime_ns)
        cached = self._entries.get(path)
        if cached is None or cached[0] != stamp:
            try:
                result: dockerfile.DockerfileInfo | Exception = dockerfile.read(path)
            except (OSError, dockerfile.DockerfileError) as exc:
                result = exc
            cached = self._entries[path] = (stamp, result)
        if isinstance(cached[1], Exception):
            raise cached[1]
        return cached[1]


_DOCKERFILES = DockerfileCache()


def duplicate_refs(images: list[ImageSpec]) -> dict[int, str]:
    """Rows whose name:tag an earlier row already has, with the first shared ref."""
    seen: set[tuple[str, str]] = set()
    found: dict[int, str] = {}
    for row, image in enumerate(images):
        for tag in dict.fromkeys(image.tags):
            if (image.name, tag) in seen and row not in found:
                found[row] = f"{image.name}:{tag}"
        seen.update((image.name, tag) for tag in image.tags)
    return found


def image_problems(project: Project, index: int, *, duplicates: dict[int, str] | None = None,
                   backend: str = "buildkit", cache: DockerfileCache | None = None) -> list[str]:
    """What is wrong with image `index` (without the file/image prefix).

    `duplicates` is duplicate_refs() of the project, computed once by the caller;
    `backend` is the builder that will build ("classic" cannot build BuildKit-only
    files). Folder and Dockerfile checks are made for enabled images only: a disabled
    image may point at a folder that is not checked out on this machine.
    """
    image = project.images[index]
    problems: list[str] = []
    if (problem := reference.name_problem(image.name)):
        problems.append(f"name '{image.name}' {problem}")
    elif (problem := reference.full_name_problem(project.registry, image.name)):
        problems.append(f"name '{image.name}' {problem}")
    for position, tag in enumerate(image.tags):
        if (problem := reference.tag_problem(tag)):
            problems.append(f"tags[{position}] '{tag}' {problem}")
        elif tag in image.tags[:position]:
            problems.append(f"tags[{position}] '{tag}' is listed twice")
    if duplicates is None:
        duplicates = duplicate_refs(project.images)
    if index in duplicates:
        problems.append(f"duplicate reference {duplicates[index]} (another image has the same name and tag)")
    if not image.tags:
        problems.append("tags must list at least one tag")
    problems.extend(_build_key_problems(project, image))
    if image.enabled:
        problems.extend(_filesystem_problems(project, image, backend, cache or _DOCKERFILES))
    return problems


def _build_key_problems(project: Project, image: ImageSpec) -> list[str]:
    problems = []
    if image.network and (problem := _choice_problem(image.network, NETWORKS)):
        problems.append(f"network {problem}")
    if image.platform and not _PLATFORM_RE.fullmatch(image.platform):
        problems.append(f"platform '{image.platform}' is not os/arch[/variant] (e.g. linux/amd64)")
    for secret_id, path in image.secrets.items():
        if not _SECRET_ID_RE.fullmatch(secret_id):
            problems.append(f"secrets: id '{secret_id}' may use only letters, digits, _ . -")
        if "," in path:
            problems.append(f"secrets.{secret_id}: the path '{path}' has a comma, which the docker CLI's "
                            "--secret cannot take")
    for position, spec in enumerate(image.ssh):
        ssh_id, _, paths = spec.partition("=")
        if not _SECRET_ID_RE.fullmatch(ssh_id):
            problems.append(f"ssh[{position}] '{spec}' is not 'default', 'ID' or 'ID=path[,path]'")
    for key in ("cache_from", "cache_to"):
        for position, value in enumerate(getattr(image, key)):
            if not value.strip() or "\n" in value:
                problems.append(f"{key}[{position}] {value!r} is not a cache source (e.g. type=local,src=path)")
    return problems


def _filesystem_problems(project: Project, image: ImageSpec, backend: str, cache: DockerfileCache) -> list[str]:
    context = project.context_path(image)
    if not context.is_dir():
        return [f"context folder '{image.context}' does not exist ({context})"]
    problems = []
    for secret_id, relative in image.secrets.items():
        if not project.file_path(relative).is_file():
            problems.append(f"secrets.{secret_id}: file '{relative}' not found ({project.file_path(relative)})")
    for position, spec in enumerate(image.ssh):
        for path in filter(None, spec.partition("=")[2].split(",")):
            if not project.file_path(path).exists():
                problems.append(f"ssh[{position}]: '{path}' not found ({project.file_path(path)})")
    path = context / image.dockerfile
    if not path.is_file():
        return problems + [f"Dockerfile '{image.dockerfile}' not found in the context ({path})"]
    try:
        info = cache.read(path)
    except OSError as exc:
        return problems + [f"Dockerfile '{image.dockerfile}' cannot be read: {exc.strerror}"]
    except dockerfile.DockerfileError as exc:
        return problems + [f"Dockerfile '{image.dockerfile}' {exc}"]
    if backend == "classic":
        problems += [f"Dockerfile '{image.dockerfile}' line {line}: {reason}, and only the classic builder "
                     "is available" for line, reason in info.buildkit_only]
        problems += [f"{key} needs BuildKit, and only the classic builder is available" for key in image.needs_buildkit]
    if image.target and image.target.lower() not in info.stages:
        stages = ", ".join(info.stages) or "none named"
        problems.append(f"target '{image.target}' is not a stage of '{image.dockerfile}' (stages: {stages})")
    return problems


def settings_problems(project: Project, label: str) -> list[str]:
    """Problems of the project-wide settings ([registry], [concurrency], [build])."""
    problems = []
    if (problem := reference.registry_problem(project.registry)):
        problems.append(f"{label}: [registry] url '{project.registry}' {problem}")
    if (problem := _choice_problem(project.push, PUSH_PATHS)):
        problems.append(f"{label}: [registry] push {problem}")
    for key, value in (("builders", project.builders), ("pushers", project.pushers)):
        if (problem := concurrency_problem(value)):
            problems.append(f"{label}: [concurrency] {key} {problem}")
    build = project.build
    if (problem := _choice_problem(build.backend, BACKENDS)):
        problems.append(f"{label}: [build] backend {problem}")
    if (problem := _choice_problem(build.network, NETWORKS)):
        problems.append(f"{label}: [build] network {problem}")
    if build.timeout is not None and not (math.isfinite(build.timeout) and build.timeout > 0):
        problems.append(f"{label}: [build] timeout must be more than 0 seconds, not {build.timeout:g}")
    if build.builder and not _BUILDER_RE.fullmatch(build.builder):
        problems.append(f"{label}: [build] builder '{build.builder}' is not a builder name")
    return problems


def validate(project: Project, backend: str = "buildkit", cache: DockerfileCache | None = None) -> list[str]:
    """Every problem in the project, each prefixed with where it is.

    `backend` is the builder that will build: "classic" adds every BuildKit-only
    line and key as a problem (with what to install, see build_backend).
    """
    label = str(project.path) if project.path else "project"
    problems = settings_problems(project, label)
    duplicates = duplicate_refs(project.images)
    for index, image in enumerate(project.images):
        where = f"{label}: {_describe(index, {'name': image.name})}"
        problems.extend(f"{where}: {problem}" for problem in
                        image_problems(project, index, duplicates=duplicates, backend=backend, cache=cache))
    return problems


def _parse_table(data: dict[str, Any], key: str, label: str, allowed: set[str],
                 problems: list[str]) -> dict[str, Any]:
    table = data.get(key, {})
    if not isinstance(table, dict):
        problems.append(f"{label}: [{key}] must be a table")
        return {}
    problems += _unknown_keys(f"{label}: [{key}]", table, allowed)
    return table


def _typed(table: dict[str, Any], key: str, kinds: tuple[type, ...], default: Any, where: str,
           words: str, problems: list[str]) -> Any:
    """table[key] when it has one of `kinds` (a boolean is never a number), else a problem."""
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, kinds) and (bool in kinds or not isinstance(value, bool)):
        return value
    problems.append(f"{where} {key} must be {words}, not {value!r}")
    return default


def parse(data: dict[str, Any], path: Path | None = None, strict: bool = True, backend: str = "buildkit") -> Project:
    """Build a Project from decoded TOML, raising ProjectError with every problem.

    With strict=False only the file's structure is checked (syntax, keys, types):
    the window opens such a project and marks each invalid row, so the user can
    fix it there instead of in a text editor.
    """
    label = str(path) if path else "project"
    problems = _unknown_keys(label, data, _TOP_KEYS)
    project = Project(path=path)

    registry = _parse_table(data, "registry", label, _REGISTRY_KEYS, problems)
    where = f"{label}: [registry]"
    project.registry = _typed(registry, "url", (str,), "", where, "a string", problems)
    project.push = _typed(registry, "push", (str,), "direct", where, "a string", problems)
    project.insecure = _typed(registry, "insecure", (bool,), False, where, "a boolean (true/false)", problems)

    concurrency = _parse_table(data, "concurrency", label, _CONCURRENCY_KEYS, problems)
    where = f"{label}: [concurrency]"
    project.builders, found = _parse_concurrency(where, concurrency, "builders", DEFAULT_BUILDERS)
    problems += found
    project.pushers, found = _parse_concurrency(where, concurrency, "pushers", DEFAULT_PUSHERS)
    problems += found

    build = _parse_table(data, "build", label, _BUILD_KEYS, problems)
    where = f"{label}: [build]"
    timeout = _typed(build, "timeout", (int, float), None, where, "a number of seconds", problems)
    project.build = BuildSettings(
        backend=_typed(build, "backend", (str,), "auto", where, "a string", problems),
        docker=_typed(build, "docker", (str,), "", where, "a string", problems),
        network=_typed(build, "network", (str,), "default", where, "a string", problems),
        timeout=float(timeout) if timeout is not None else None,
        builder=_typed(build, "builder", (str,), "", where, "a string", problems))

    images = data.get("image", [])
    if not isinstance(images, list):
        problems.append(f"{label}: image must be an array of tables ([[image]])")
        images = []
    for index, raw in enumerate(images):
        spec, found = _parse_image(f"{label}: {_describe(index, raw if isinstance(raw, dict) else {})}", raw)
        problems += found
        if spec is not None:
            project.images.append(spec)
    if problems:
        raise ProjectError(problems)
    problems = validate(project, backend) if strict else []
    if problems:
        raise ProjectError(problems)
    return project


def read_toml(path: Path | str) -> tuple[Path, dict[str, Any]]:
    """The decoded file, or ProjectError naming the file and what is wrong with it."""
    path = Path(path).absolute()
    try:
        with path.open("rb") as handle:
            raw = handle.read()
        text = raw.decode("utf-8").removeprefix("\ufeff")  # Windows editors may write a BOM
        return path, tomllib.loads(text)
    except FileNotFoundError:
        raise ProjectError([f"{path}: no such project file"]) from None
    except IsADirectoryError:
        raise ProjectError([f"{path}: is a folder, not a project file"]) from None
    except OSError as exc:
        raise ProjectError([f"{path}: cannot be read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError([f"{path}: TOML syntax error: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ProjectError([f"{path}: is not UTF-8 text ({exc.reason})"]) from None


def load(path: Path | str, strict: bool = True, backend: str = "buildkit") -> Project:
    """Read and validate a project file (see parse for `strict` and validate for `backend`)."""
    path, data = read_toml(path)
    return parse(data, path, strict, backend)


def to_dict(project: Project) -> dict[str, Any]:
    """The TOML document for a project: every value written out, optional keys only when set."""
    build: dict[str, Any] = {"backend": project.build.backend, "network": project.build.network}
    if project.build.docker:
        build["docker"] = project.build.docker
    if project.build.timeout is not None:
        build["timeout"] = project.build.timeout
    if project.build.builder:
        build["builder"] = project.build.builder
    images = []
    for image in project.images:
        entry: dict[str, Any] = {
            "name": image.name, "context": image.context, "dockerfile": image.dockerfile,
            "tags": list(image.tags), "build_args": dict(image.build_args), "target": image.target,
            "enabled": image.enabled}
        for key in ("network", "platform"):
            if getattr(image, key):
                entry[key] = getattr(image, key)
        if image.secrets:
            entry["secrets"] = dict(image.secrets)
        for key in ("ssh", "cache_from", "cache_to"):
            if getattr(image, key):
                entry[key] = list(getattr(image, key))
        images.append(entry)
    return {
        "registry": {"url": project.registry, "push": project.push, "insecure": project.insecure},
        "concurrency": {"builders": project.builders, "pushers": project.pushers},
        "build": build,
        "image": images,
    }


def _rebase_path(relative: str, old_base: Path, new_base: Path) -> str:
    if os.path.isabs(os.path.expanduser(relative)) or relative.startswith("~"):
        return relative
    absolute = old_base / relative
    try:
        return Path(os.path.relpath(absolute, new_base)).as_posix()
    except ValueError:  # another drive on Windows: keep it absolute
        return absolute.as_posix()


# The image fields that hold paths relative to the project folder.
PATH_FIELDS = ("context", "secrets", "ssh", "cache_from", "cache_to")


def rebase_field(name: str, value: Any, old_base: Path, new_base: Path) -> Any:
    """A field's value with its relative paths made relative to `new_base` (others as they are)."""
    if name == "context":
        return _rebase_path(value, old_base, new_base)
    if name == "secrets":
        return {key: _rebase_path(path, old_base, new_base) for key, path in value.items()}
    if name == "ssh":
        rebased_ssh = []
        for spec in value:
            ssh_id, sep, paths = spec.partition("=")
            rebased_ssh.append(ssh_id + sep + ",".join(_rebase_path(p, old_base, new_base) for p in paths.split(","))
                               if sep else spec)
        return rebased_ssh
    if name in ("cache_from", "cache_to"):
        return [_rebase_cache(spec, old_base, new_base) for spec in value]
    return value


def _rebase_cache(spec: str, old_base: Path, new_base: Path) -> str:
    """A `type=local` cache's src/dest folder rebased; image references and other backends as they are."""
    parts = spec.split(",")
    if "type=local" not in parts:
        return spec
    rebased = []
    for part in parts:
        key, sep, folder = part.partition("=")
        rebased.append(key + sep + _rebase_path(folder, old_base, new_base) if key in ("src", "dest") else part)
    return ",".join(rebased)


def rebased(project: Project, new_path: Path) -> Project:
    """The same project saved elsewhere: relative paths still point at the same files."""
    new_path = Path(new_path).absolute()
    old, new = project.base_dir, new_path.parent
    images = [replace(image, **{name: rebase_field(name, getattr(image, name), old, new) for name in PATH_FIELDS})
              for image in project.images]
    return replace(project, images=images, path=new_path)


def save(project: Project, path: Path | str | None = None) -> Project:
    """Write the project atomically; returns the project as saved (rebased if moved).

    Writing to a temporary file and renaming it means a crash mid-save never
    leaves a truncated project file behind.
    """
    target = Path(path).absolute() if path else project.path
    if target is None:
        raise ValueError("save() needs a path for a project that was never saved")
    saved = project if target == project.path else rebased(project, target)
    text = tomli_w.dumps(to_dict(saved))
    handle, temporary = tempfile.mkstemp(prefix=".dockpool-", suffix=".toml", dir=target.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return saved
