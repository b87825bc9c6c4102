"""A small Dockerfile reader for preflight checks.

The Docker SDK drives the daemon's classic builder, which rejects BuildKit-only
syntax late and with terse messages. Reading each Dockerfile before the run lets
Dockpool say which file and line is wrong, and which stage names exist, before
any build starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
    "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})

# Flags only BuildKit understands, per instruction.
_BUILDKIT_FLAGS = {
    "RUN": ("--mount", "--network", "--security"),
    "COPY": ("--link", "--chmod", "--parents", "--exclude"),
    "ADD": ("--link", "--chmod", "--checksum", "--keep-git-dir", "--exclude"),
}
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
_HEREDOC_RE = re.compile(r"(?<!<)<<(?!<)-?\s*[\"']?([A-Za-z_][A-Za-z0-9_]*)[\"']?")
_STAGE_RE = re.compile(r"\s+as\s+([A-Za-z0-9][A-Za-z0-9._-]*)\s*$", re.IGNORECASE)


class DockerfileError(ValueError):
    """A Dockerfile problem, with the 1-based line it was found on (0: whole file)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


@dataclass
class DockerfileInfo:
    instructions: list[Instruction] = field(default_factory=list)
    stages: list[str] = field(default_factory=list)
    buildkit_only: list[tuple[int, str]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        """The classic builder runs one step per instruction."""
        return len(self.instructions)


def _logical_lines(text: str) -> tuple[list[tuple[int, str]], dict[str, str]]:
    """Join continuation lines, drop comments, and read leading parser directives."""
    directives: dict[str, str] = {}
    escape = "\\"
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        match = _DIRECTIVE_RE.match(lines[index].strip())
        if not match:
            break
        directives[match.group(1).lower()] = match.group(2)
        if match.group(1).lower() == "escape":
            escape = match.group(2) or "\\"
        index += 1

    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines[index:], start=index + 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            pending.append(body[: -len(escape)])
            continue
        pending.append(body)
        logical.append((start, " ".join(part.strip() for part in pending).strip()))
        pending = []
    if pending:
        logical.append((start, " ".join(part.strip() for part in pending).strip()))
    return logical, directives


def parse(text: str) -> DockerfileInfo:
    """Parse Dockerfile text; raise DockerfileError for what the builder would reject."""
    logical, directives = _logical_lines(text)
    info = DockerfileInfo()
    if "syntax" in directives:
        info.buildkit_only.append((1, f"'# syntax={directives['syntax']}' selects a BuildKit frontend"))
    heredoc_end: str | None = None
    for line, content in logical:
        if heredoc_end is not None:
            # A heredoc body is data, not instructions; skip to its terminator.
            if content == heredoc_end:
                heredoc_end = None
            continue
        keyword, _, arguments = content.partition(" ")
        upper = keyword.upper()
        if upper not in INSTRUCTIONS:
            raise DockerfileError(line, f"unknown instruction '{keyword}'")
        if not info.instructions and upper not in ("FROM", "ARG"):
            raise DockerfileError(line, f"the first instruction must be FROM (or ARG before FROM), not {upper}")
        if upper == "FROM":
            if not arguments.strip():
                raise DockerfileError(line, "FROM needs an image (or 'scratch')")
            stage = _STAGE_RE.search(arguments)
            if stage:
                info.stages.append(stage.group(1).lower())
        for flag in _BUILDKIT_FLAGS.get(upper, ()):
            if re.search(rf"(^|\s){flag}(=|\s|$)", arguments):
                info.buildkit_only.append((line, f"{upper} {flag} needs BuildKit"))
        heredoc = _HEREDOC_RE.search(arguments) if upper in ("RUN", "COPY", "ADD") else None
        if heredoc:
            info.buildkit_only.append((line, f"{upper} with a heredoc (<<) needs BuildKit"))
            heredoc_end = heredoc.group(1)
        info.instructions.append(Instruction(line, upper, arguments))
    if not any(i.keyword == "FROM" for i in info.instructions):
        raise DockerfileError(0, "has no FROM instruction")
    return info


def read(path: Path) -> DockerfileInfo:
    """Read and parse a Dockerfile from disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DockerfileError(0, f"is not UTF-8 text ({exc.reason})") from exc
    return parse(text)
