"""A small Dockerfile reader for preflight checks.

Reading each Dockerfile before the run lets Dockpool say which file and line is
wrong, which stage names exist, and which lines need BuildKit, before any build
starts. It follows the rules of Docker's own parser where they matter here:
a UTF-8 byte-order mark is ignored (Windows editors write one), CRLF line ends
are accepted, parser directives are read only before the first other line, and a
heredoc is a shell word of a RUN, COPY or ADD that starts with `<<` (so
`$((1<<SHIFT))` is arithmetic, not a heredoc) whose body is data, not instructions.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

INSTRUCTIONS = frozenset({
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
    "HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
    "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
})
BOM = "\ufeff"

# Flags only BuildKit understands, per instruction.
_BUILDKIT_FLAGS = {
    "RUN": ("--mount", "--network", "--security"),
    "COPY": ("--link", "--chmod", "--parents", "--exclude"),
    "ADD": ("--link", "--chmod", "--checksum", "--keep-git-dir", "--exclude"),
}
_DIRECTIVE_RE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.*?)\s*$")
# BuildKit's own test for a heredoc word: optional fd digits, <<, optional -, a name.
_HEREDOC_WORD_RE = re.compile(r"^(\d*)<<(-?)([^<]+)$")
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


def heredoc_terminators(arguments: str) -> list[tuple[str, bool]]:
    """The heredocs an instruction opens, in order: (terminator, strip leading tabs)."""
    if "<<" not in arguments:
        return []
    try:
        words = shlex.split(arguments, comments=False, posix=True)
    except ValueError:  # unbalanced quotes: Docker would keep the words as written
        words = arguments.split()
    found = []
    for word in words:
        if (match := _HEREDOC_WORD_RE.match(word)):
            found.append((match.group(3), match.group(2) == "-"))
    return found


def _directives(lines: list[str]) -> tuple[dict[str, str], int]:
    """Parser directives at the top of the file, and the index of the first other line."""
    directives: dict[str, str] = {}
    index = 0
    while index < len(lines):
        match = _DIRECTIVE_RE.match(lines[index].strip())
        if not match or match.group(1).lower() in directives:
            break
        directives[match.group(1).lower()] = match.group(2)
        index += 1
    return directives, index


def parse(text: str) -> DockerfileInfo:
    """Parse Dockerfile text; raise DockerfileError for what the builder would reject."""
    lines = text.removeprefix(BOM).splitlines()
    directives, index = _directives(lines)
    escape = directives.get("escape") or "\\"
    info = DockerfileInfo()
    if "syntax" in directives:
        info.buildkit_only.append((1, f"'# syntax={directives['syntax']}' selects a BuildKit frontend"))

    pending: list[str] = []
    start = 0
    while index < len(lines):
        raw, number = lines[index], index + 1
        index += 1
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # comments, also inside a continued instruction; blank lines between
        if not pending:
            start = number
        body = raw.rstrip()
        if body.endswith(escape):
            pending.append(body[: -len(escape)])
            continue
        pending.append(body)
        content = " ".join(part.strip() for part in pending).strip()
        pending = []
        index = _instruction(info, start, content, lines, index)
    if pending:
        _instruction(info, start, " ".join(part.strip() for part in pending).strip(), lines, index)
    if not any(i.keyword == "FROM" for i in info.instructions):
        raise DockerfileError(0, "has no FROM instruction")
    return info


def _instruction(info: DockerfileInfo, line: int, content: str, lines: list[str], index: int) -> int:
    """Record one instruction; returns the index of the first line after any heredoc bodies."""
    keyword, _, arguments = content.partition(" ")
    upper = keyword.upper()
    if upper not in INSTRUCTIONS:
        raise DockerfileError(line, f"unknown instruction '{keyword}'")
    if not info.instructions and upper not in ("FROM", "ARG"):
        raise DockerfileError(line, f"the first instruction must be FROM (or ARG before FROM), not {upper}")
    if upper == "FROM":
        if not arguments.strip():
            raise DockerfileError(line, "FROM needs an image (or 'scratch')")
        if (stage := _STAGE_RE.search(arguments)):
            info.stages.append(stage.group(1).lower())
    for flag in _BUILDKIT_FLAGS.get(upper, ()):
        if re.search(rf"(^|\s){flag}(=|\s|$)", arguments):
            info.buildkit_only.append((line, f"{upper} {flag} needs BuildKit"))
    info.instructions.append(Instruction(line, upper, arguments))
    if upper not in ("RUN", "COPY", "ADD"):
        return index
    terminators = heredoc_terminators(arguments)
    if terminators:
        info.buildkit_only.append((line, f"{upper} with a heredoc (<<{terminators[0][0]}) needs BuildKit"))
    for terminator, strip_tabs in terminators:
        while index < len(lines):
            body = lines[index].lstrip("\t") if strip_tabs else lines[index]
            index += 1
            if body.rstrip("\r") == terminator:
                break
        else:
            raise DockerfileError(line, f"the heredoc <<{terminator} is never closed "
                                        f"(no line '{terminator}' follows)")
    return index


def read(path: Path) -> DockerfileInfo:
    """Read and parse a Dockerfile from disk."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DockerfileError(0, f"is not UTF-8 text ({exc.reason})") from exc
    return parse(text)

