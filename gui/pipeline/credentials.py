"""Registry logins stored where `docker login` stores them, never in project files.

Pushes then pick them up the same way `docker push` does (config file and
credential helpers), in every worker process, with nothing passed around.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from pathlib import Path

from docker.credentials import Store
from docker.utils.config import find_config_file

from .docker_engine import short_client


def config_path() -> Path:
    found = find_config_file()
    if found:
        return Path(found)
    folder = os.environ.get("DOCKER_CONFIG") or os.path.join(os.path.expanduser("~"), ".docker")
    return Path(folder) / "config.json"


def login(registry: str, username: str, password: str) -> str:
    """Check the login with the registry (through the engine), then store it.

    Returns where it was stored. Raises docker.errors.APIError when the registry
    refuses the login.
    """
    short_client().login(username, password, registry=registry, reauth=True)
    path = config_path()
    config = json.loads(path.read_text()) if path.exists() else {}
    helper = config.get("credHelpers", {}).get(registry) or config.get("credsStore")
    if helper:
        Store(helper).store(server=registry, username=username, secret=password)
        return f"the docker-credential-{helper} credential helper"
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    config.setdefault("auths", {})[registry] = {"auth": token}
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".config-")
    with os.fdopen(handle, "w") as stream:
        json.dump(config, stream, indent=2)
    os.chmod(temporary, 0o600)
    os.replace(temporary, path)
    return str(path)

