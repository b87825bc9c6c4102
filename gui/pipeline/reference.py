"""Docker image reference grammar, so bad names fail at load time, not mid-run.

The rules follow the distribution project's reference grammar: a registry
(domain with optional port and path), repository path components, and tags.
Checking them up front means a typo in image 37 of 80 is reported before image 1
starts building, instead of as an opaque daemon error half an hour later.
"""

from __future__ import annotations

import re

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"

NAME_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
REGISTRY_RE = re.compile(rf"^{_DOMAIN}(?:/{_COMPONENT})*$")
MAX_NAME_LENGTH = 255


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid repository name, or None when it is."""
    if not name:
        return "is empty"
    if not NAME_RE.match(name):
        return ("is not a valid repository name (lowercase letters, digits and "
                "separators . _ __ - between them, components joined by /)")
    return None


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a valid tag, or None when it is."""
    if not TAG_RE.match(tag):
        return ("is not a valid tag (1-128 letters, digits, _ . -, "
                "not starting with . or -)")
    return None


def registry_problem(registry: str) -> str | None:
    """Why `registry` is not a usable registry prefix, or None when it is.

    The empty string is valid and means "build only, do not push".
    """
    if registry == "":
        return None
    if "://" in registry:
        return "must not include a scheme; write host[:port][/path], e.g. localhost:5000"
    if not REGISTRY_RE.match(registry):
        return "is not a valid registry (host[:port][/path], e.g. registry.example.com:5000/team)"
    return None


def repository(registry: str, name: str) -> str:
    """The repository an image is tagged and pushed as."""
    return f"{registry.rstrip('/')}/{name}" if registry else name


def full_name_problem(registry: str, name: str) -> str | None:
    """Docker limits the whole repository name, registry included, to 255 characters."""
    if len(repository(registry, name)) > MAX_NAME_LENGTH:
        return f"with the registry is longer than {MAX_NAME_LENGTH} characters"
    return None
