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

from docker.credentials import Store

from .docker_engine import short_client
from .reference import DOCKER_HUB_NAMES, registry_host
from .registry_auth import docker_config_file, read_docker_config

DOCKER_HUB_INDEX = "https://index.docker.io/v1/"


def login(registry: str, username: str, password: str) -> str:
    """Check the login with the registry (through the engine), then store it.

    Returns where it was stored. Raises docker.errors.APIError when the registry
    refuses the login.
    """
    host = registry_host(registry)  # a login is per host, and Docker Hub's under its old index URL,
    server = DOCKER_HUB_INDEX if host in DOCKER_HUB_NAMES else host  # as `docker login` keeps them
    short_client().login(username, password, registry=server, reauth=True)
    path = docker_config_file()
    config = read_docker_config() or {}
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

