"""Docker image reference grammar, so bad names fail at load time, not mid-run.

The rules follow the distribution project's reference grammar: a registry
(domain with optional port and path), repository path components, and tags.
Checking them up front means a typo in image 37 of 80 is reported before image 1
starts building, instead of as an opaque daemon error half an hour later.
"""

from __future__ import annotations

import ipaddress
import re
import socket

_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?"

# ASCII only and matched in full: Python's \w is Unicode and `$` matches before a
# trailing newline, so `café` or `latest\n` would pass here and fail mid-run.
NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*", re.ASCII)
TAG_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
REGISTRY_RE = re.compile(rf"{_DOMAIN}(?:/{_COMPONENT})*", re.ASCII)
MAX_NAME_LENGTH = 255


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid repository name, or None when it is."""
    if not name:
        return "is empty"
    if not NAME_RE.fullmatch(name):
        return ("is not a valid repository name (lowercase letters, digits and "
                "separators . _ __ - between them, components joined by /)")
    return None


def tag_problem(tag: str) -> str | None:
    """Why `tag` is not a valid tag, or None when it is."""
    if not TAG_RE.fullmatch(tag):
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
    if not REGISTRY_RE.fullmatch(registry):
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


DOCKER_HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def split_name(name: str) -> tuple[str, str]:
    """(registry host, the rest) of an image name or a registry prefix, as Docker splits
    it: a first part with a '.' or a ':', 'localhost', or capitals is a host; any other
    is a namespace on Docker Hub ('myuser/app' is docker.io's myuser/app)."""
    first, _, rest = name.partition("/")
    if "." in first or ":" in first or first == "localhost" or first != first.lower():
        return first, rest
    return DOCKER_HUB_NAMES[0], name


def registry_host(registry: str) -> str:
    """'registry.example.com:5000/team' -> 'registry.example.com:5000'; 'myuser' -> 'docker.io'."""
    return split_name(registry)[0]


DOCKER_HUB_API = "registry-1.docker.io"


def api_host(host: str) -> str:
    """Where a registry's API answers: Docker Hub's names are not its API host."""
    return DOCKER_HUB_API if host in DOCKER_HUB_NAMES else host


def api_repository(host: str, repository: str) -> str:
    """The repository as the registry's API names it: Docker Hub keeps official images
    under library/ ("docker.io/alpine" is library/alpine)."""
    return f"library/{repository}" if host in DOCKER_HUB_NAMES and "/" not in repository else repository


def is_insecure(registry: str, engine_insecure: tuple[str, ...] = ()) -> bool:
    """Whether a registry may be reached over plain HTTP (or TLS without verification), as
    Docker decides it: loopback hosts, and what the engine lists as insecure (host names
    and CIDRs, `docker info`)."""
    if not registry:
        return False
    host_port = registry_host(registry)
    if host_port.startswith("["):  # [::1]:5000
        host = host_port[1:].partition("]")[0]
    else:
        host = host_port.rsplit(":", 1)[0] if host_port.count(":") == 1 else host_port
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if address is not None and address.is_loopback:
        return True
    if any(entry in (host_port, host) for entry in engine_insecure):
        return True
    networks = []
    for entry in engine_insecure:
        if "/" in entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
    # Like the engine, a host name counts by what it resolves to: a name for a loopback or
    # LAN address in an insecure range (the engine always lists 127.0.0.0/8) is insecure.
    addresses = [address] if address is not None else _resolve(host) if networks else []
    return any(found in network for found in addresses for network in networks
               if found.version == network.version)


def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(answer[4][0].partition("%")[0]) for answer in answers]
