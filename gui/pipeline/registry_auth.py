"""Registry credentials and the registry's auth challenge, as `docker push` handles them.

Credentials are found where `docker push` finds them: Dockpool's per-run
credentials (--username/--password-stdin), else Docker's config file with its
credential helpers and credsStore (the Docker SDK's auth module runs them, the
same way the engine's clients do). The window's Log in stores there too.

A registry answers 401 with a WWW-Authenticate challenge: Basic (send the
credentials) or Bearer (fetch a token for the scopes the request needs from the
realm, with the credentials or an identity token, and send that). Tokens are
cached per scope set and fetched again when they expire or are refused.
Credentials never leave this process except to the registry and its token
service: no log line, argv or environment holds them.
"""

from __future__ import annotations

import base64
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .reference import DOCKER_HUB_NAMES

TOKEN_CLIENT_ID = "dockpool"
# A header's comma-separated parts (commas inside quoted values kept), a part that
# starts a challenge (its scheme, not followed by `=`), and a part's parameter.
_PART_RE = re.compile(r'(?:[^,"]|"(?:[^"\\]|\\.)*")+')
_SCHEME_RE = re.compile(r"\s*([A-Za-z][\w.+-]*)(?!\s*=)(?:\s+|$)")
_PARAM_RE = re.compile(r'([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


@dataclass(frozen=True)
class Credentials:
    username: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # an OAuth2 refresh token (`docker login` may store one)

    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

    def __repr__(self) -> str:
        return "Credentials(<hidden>)"


def docker_config_file() -> Path:
    """Docker's config file, where `docker login` keeps logins: the one the Docker SDK
    finds, else where `docker login` would write it ($DOCKER_CONFIG, else ~/.docker)."""
    from docker.utils.config import find_config_file

    found = find_config_file()
    if found:
        return Path(found)
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(folder) / "config.json"


def read_docker_config(path: Path | None = None) -> dict[str, Any] | None:
    """Docker's config file (`path`, else the one docker_config_file finds), read as the
    UTF-8 Docker writes (a BOM allowed: a Windows editor may have added one); None when
    there is none. The Docker SDK opens it in the locale's code page (cp1252, cp932 on
    Windows), where one character outside ASCII made every stored login vanish. A file
    that is not JSON raises ValueError."""
    path = path or docker_config_file()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return None
    config = json.loads(text)
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds no JSON object")
    return config


def find_credentials(registry_host: str, explicit: dict[str, str] | None = None) -> Credentials | None:
    """The login for a registry: this run's, else Docker's stored one (helpers included)."""
    if explicit:
        return Credentials(explicit.get("username", ""), explicit.get("password", ""))
    from docker import auth

    try:
        stored = read_docker_config()
    except (OSError, ValueError):
        stored = None  # unreadable, or the legacy .dockercfg format: the SDK's own reading
    config = auth.load_config(config_dict=stored) if stored else auth.load_config()
    if registry_host in DOCKER_HUB_NAMES:  # the SDK knows Docker Hub's login by this name only
        registry_host = DOCKER_HUB_NAMES[0]
    found: dict[str, Any] | None = auth.resolve_authconfig(config, registry=registry_host)
    if not found:
        return None
    return Credentials(found.get("Username") or found.get("username") or "",
                       found.get("Password") or found.get("password") or "",
                       found.get("IdentityToken") or found.get("identitytoken") or "")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(headers: list[str]) -> Challenge | None:
    """The challenge to answer, of those in a response's WWW-Authenticate headers: the
    token flow's when offered, else Basic; others (Negotiate, NTLM, which a corporate
    proxy may list first) are passed over, as `docker push` does. A header may hold
    several challenges (`Bearer realm="…",service="…", Basic realm="…"`), and an auth
    proxy in front of a registry adds a header of its own."""
    challenges = []
    for header in headers:
        for part in _PART_RE.findall(header):
            start = _SCHEME_RE.match(part)
            if start:  # `Scheme` or `Scheme param=…`: a new challenge
                challenges.append(Challenge(start.group(1).lower(), {}))
                part = part[start.end():]
            if challenges:
                challenges[-1].params.update((key.lower(), re.sub(r"\\(.)", r"\1", quoted) or bare)
                                             for key, quoted, bare in _PARAM_RE.findall(part))
    for scheme in ("bearer", "basic"):
        chosen = next((c for c in challenges if c.scheme == scheme), None)
        if chosen is not None:
            return chosen
    return None


@dataclass
class Token:
    value: str
    expires: float  # time.monotonic() when it stops being usable

    @property
    def fresh(self) -> bool:
        return time.monotonic() < self.expires


def token_from_answer(answer: dict[str, Any]) -> Token:
    """A token service's JSON answer -> Token. The spec's default lifetime is 60 s;
    the token is renewed a little before it runs out."""
    value = answer.get("token") or answer.get("access_token")
    if not isinstance(value, str) or not value:
        raise ValueError("the token service answered without a token")
    try:
        lifetime = float(answer.get("expires_in") or 60)
    except (TypeError, ValueError):
        lifetime = 60.0
    margin = min(10.0, lifetime / 4)
    return Token(value, time.monotonic() + max(1.0, lifetime - margin))


def scope(repository: str, actions: str) -> str:
    return f"repository:{repository}:{actions}"
