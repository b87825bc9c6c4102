"""The project file: the list of images and the run settings, as TOML.

The CLI and the window share this one format. Loading checks everything a run
would trip over later (syntax, keys, names, tags, duplicates, folders,
Dockerfiles) and reports every problem with the file, image and field it is in,
so a user fixes them all in one pass instead of one per attempted run.
"""

from __future__ import annotations

import os
import tempfile
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomli_w

from . import dockerfile, reference

MIN_CONCURRENCY = 1
MAX_CONCURRENCY = 64
DEFAULT_BUILDERS = 4
DEFAULT_PUSHERS = 2

_TOP_KEYS = {"registry", "concurrency", "image"}
_REGISTRY_KEYS = {"url"}
_CONCURRENCY_KEYS = {"builders", "pushers"}
_IMAGE_KEYS = {"name", "context", "dockerfile", "tags", "build_args", "target", "enabled"}


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

    def refs(self, registry: str) -> list[str]:
        """Full references (registry/name:tag) this image is tagged and pushed as."""
        repo = reference.repository(registry, self.name)
        return [f"{repo}:{tag}" for tag in self.tags]


@dataclass
class Project:
    """A loaded project. `path` anchors the relative context folders."""

    registry: str = ""
    builders: int = DEFAULT_BUILDERS
    pushers: int = DEFAULT_PUSHERS
    images: list[ImageSpec] = field(default_factory=list)
    path: Path | None = None

    @property
    def base_dir(self) -> Path:
        return self.path.parent if self.path else Path.cwd()

    def context_path(self, image: ImageSpec) -> Path:
        return (self.base_dir / image.context).resolve()

    def dockerfile_path(self, image: ImageSpec) -> Path:
        return self.context_path(image) / image.dockerfile

    @property
    def enabled_images(self) -> list[ImageSpec]:
        return [image for image in self.images if image.enabled]


def image_keys(images: list[ImageSpec]) -> list[str]:
    """A unique key per image for events and the report: the name, or name:tag when
    several images share a name (validation guarantees name:tag is unique)."""
    names = [image.name for image in images]
    return [image.name if names.count(image.name) == 1 else f"{image.name}:{image.tags[0] if image.tags else ''}"
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


def _parse_image(where: str, raw: Any) -> tuple[ImageSpec | None, list[str]]:
    """Turn one [[image]] table into an ImageSpec, or explain why not."""
    if not isinstance(raw, dict):
        return None, [f"{where}: must be a table ([[image]])"]
    problems = _unknown_keys(where, raw, _IMAGE_KEYS)
    expected: dict[str, type] = {"name": str, "context": str, "dockerfile": str,
                                 "target": str, "enabled": bool, "tags": list, "build_args": dict}
    for key, kind in expected.items():
        if key in raw and not isinstance(raw[key], kind):
            problems.append(f"{where}: {key} must be a {_TYPE_WORDS[kind]}, not {raw[key]!r}")
    for key in ("name", "context"):
        if key not in raw:
            problems.append(f"{where}: missing required key '{key}'")
    if isinstance(raw.get("tags"), list):
        if not raw["tags"]:
            problems.append(f"{where}: tags must list at least one tag")
        for position, tag in enumerate(raw["tags"]):
            if not isinstance(tag, str):
                problems.append(f"{where}: tags[{position}] must be a string, not {tag!r}")
    if isinstance(raw.get("build_args"), dict):
        for key, value in raw["build_args"].items():
            if not isinstance(value, str):
                problems.append(f"{where}: build_args.{key} must be a string, not {value!r}"
                                f" (write {key} = \"{value}\")")
    if problems:
        return None, problems
    spec = ImageSpec(
        name=raw["name"], context=raw["context"],
        dockerfile=raw.get("dockerfile", "Dockerfile"),
        tags=list(raw.get("tags", ["latest"])),
        build_args=dict(raw.get("build_args", {})),
        target=raw.get("target", ""), enabled=raw.get("enabled", True))
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


def image_problems(project: Project, index: int) -> list[str]:
    """What is wrong with image `index` (without the file/image prefix).

    Folder and Dockerfile checks are made for enabled images only: a disabled
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
    for earlier in project.images[:index]:
        if earlier.name == image.name:
            shared = sorted(set(earlier.tags) & set(image.tags))
            if shared:
                problems.append(f"duplicate reference {image.name}:{shared[0]} "
                                "(another image has the same name and tag)")
                break
    if not image.tags:
        problems.append("tags must list at least one tag")
    if image.enabled:
        problems.extend(_filesystem_problems(project, image))
    return problems


def _filesystem_problems(project: Project, image: ImageSpec) -> list[str]:
    context = project.context_path(image)
    if not context.is_dir():
        return [f"context folder '{image.context}' does not exist ({context})"]
    path = context / image.dockerfile
    if not path.is_file():
        return [f"Dockerfile '{image.dockerfile}' not found in the context ({path})"]
    try:
        info = dockerfile.read(path)
    except OSError as exc:
        return [f"Dockerfile '{image.dockerfile}' cannot be read: {exc.strerror}"]
    except dockerfile.DockerfileError as exc:
        return [f"Dockerfile '{image.dockerfile}' {exc}"]
    problems = [f"Dockerfile '{image.dockerfile}' line {line}: {reason}; Dockpool drives the "
                "classic builder through the Docker SDK, so rewrite it without BuildKit syntax"
                for line, reason in info.buildkit_only]
    if image.target and image.target.lower() not in info.stages:
        stages = ", ".join(info.stages) or "none named"
        problems.append(f"target '{image.target}' is not a stage of '{image.dockerfile}' (stages: {stages})")
    return problems


def validate(project: Project) -> list[str]:
    """Every problem in the project, each prefixed with where it is."""
    label = str(project.path) if project.path else "project"
    problems: list[str] = []
    if (problem := reference.registry_problem(project.registry)):
        problems.append(f"{label}: [registry] url '{project.registry}' {problem}")
    for key, value in (("builders", project.builders), ("pushers", project.pushers)):
        if (problem := concurrency_problem(value)):
            problems.append(f"{label}: [concurrency] {key} {problem}")
    for index, image in enumerate(project.images):
        where = f"{label}: {_describe(index, {'name': image.name})}"
        problems.extend(f"{where}: {problem}" for problem in image_problems(project, index))
    return problems


def parse(data: dict[str, Any], path: Path | None = None, strict: bool = True) -> Project:
    """Build a Project from decoded TOML, raising ProjectError with every problem.

    With strict=False only the file's structure is checked (syntax, keys, types):
    the window opens such a project and marks each invalid row, so the user can
    fix it there instead of in a text editor.
    """
    label = str(path) if path else "project"
    problems = _unknown_keys(label, data, _TOP_KEYS)
    project = Project(path=path)

    registry = data.get("registry", {})
    if not isinstance(registry, dict):
        problems.append(f"{label}: [registry] must be a table")
    else:
        problems += _unknown_keys(f"{label}: [registry]", registry, _REGISTRY_KEYS)
        url = registry.get("url", "")
        if isinstance(url, str):
            project.registry = url
        else:
            problems.append(f"{label}: [registry] url must be a string, not {url!r}")

    concurrency = data.get("concurrency", {})
    if not isinstance(concurrency, dict):
        problems.append(f"{label}: [concurrency] must be a table")
    else:
        where = f"{label}: [concurrency]"
        problems += _unknown_keys(where, concurrency, _CONCURRENCY_KEYS)
        project.builders, found = _parse_concurrency(where, concurrency, "builders", DEFAULT_BUILDERS)
        problems += found
        project.pushers, found = _parse_concurrency(where, concurrency, "pushers", DEFAULT_PUSHERS)
        problems += found

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
    problems = validate(project) if strict else []
    if problems:
        raise ProjectError(problems)
    return project


def load(path: Path | str, strict: bool = True) -> Project:
    """Read and validate a project file (see parse for `strict`)."""
    path = Path(path).absolute()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ProjectError([f"{path}: no such project file"]) from None
    except OSError as exc:
        raise ProjectError([f"{path}: cannot be read: {exc.strerror}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError([f"{path}: TOML syntax error: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ProjectError([f"{path}: is not UTF-8 text ({exc.reason})"]) from None
    return parse(data, path, strict)


def to_dict(project: Project) -> dict[str, Any]:
    """The TOML document for a project, with every value written out."""
    return {
        "registry": {"url": project.registry},
        "concurrency": {"builders": project.builders, "pushers": project.pushers},
        "image": [
            {"name": image.name, "context": image.context, "dockerfile": image.dockerfile,
             "tags": list(image.tags), "build_args": dict(image.build_args),
             "target": image.target, "enabled": image.enabled}
            for image in project.images
        ],
    }


def rebased(project: Project, new_path: Path) -> Project:
    """The same project saved elsewhere: relative contexts still point at the same folders."""
    new_path = Path(new_path).absolute()
    images = []
    for image in project.images:
        absolute = project.base_dir / image.context
        try:
            context = Path(os.path.relpath(absolute, new_path.parent)).as_posix()
        except ValueError:  # another drive on Windows: keep it absolute
            context = absolute.as_posix()
        images.append(replace(image, context=context))
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
