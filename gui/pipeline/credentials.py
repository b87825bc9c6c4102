"""Registry logins stored where `docker login` stores them, never in project files.

Pushes then pick them up the same way `docker push` does (config file and
credential helpers), in every worker process, with nothing passed around.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path

from docker.credentials import Store, StoreError

from .docker_engine import short_client
from .reference import DOCKER_HUB_NAMES, registry_host
from .registry_auth import docker_config_file, read_docker_config

DOCKER_HUB_INDEX = "https://index.docker.io/v1/"


class LoginNotStored(Exception):
    """The registry accepted the login, but it could not be stored: Docker's config file
    is not JSON or cannot be written, or the credential helper failed."""


def login(registry: str, username: str, password: str) -> str:
    """Check the login with the registry (through the engine), then store it.

    Returns where it was stored. Raises docker.errors.APIError when the registry
    refuses the login, LoginNotStored when it cannot be stored.
    """
    host = registry_host(registry)  # a login is per host, and Docker Hub's under its old index URL,
    server = DOCKER_HUB_INDEX if host in DOCKER_HUB_NAMES else host  # as `docker login` keeps them
    short_client().login(username, password, registry=server, reauth=True)
    path = docker_config_file()
    try:
        return _store(path, server, username, password)
    except (OSError, ValueError, StoreError) as exc:
        raise LoginNotStored(f"{path}: {exc}") from exc


def _store(path: Path, server: str, username: str, password: str) -> str:
    """Store the login where `docker login` would: with the credential helper named for
    the server or the credsStore, else in the config file's auths (the file written whole
    or not at all); returns where."""
    config = read_docker_config(path) or {}
    helper = config.get("credHelpers", {}).get(server) or config.get("credsStore")
    if helper:
        Store(helper).store(server=server, username=username, secret=password)
        return f"the docker-credential-{helper} credential helper"
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.setdefault("auths", {})[server] = {"auth": token}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(config, stream, indent=2)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)  # fails on Windows while another program has it open
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary)  # it holds the password
        raise
    return str(path)

