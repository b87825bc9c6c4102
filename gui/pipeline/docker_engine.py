"""Finding and talking to the Docker engine.

Every process (the supervisor and each worker) makes its own client, because a
DockerClient holds sockets and cannot be pickled. Stream calls get no read
timeout: the SDK's default of 60 s kills long builds and slow pushes mid-stream
(as urllib3's ReadTimeoutError); hung pushes are the stall watchdog's job and
overlong builds the build timeout's.

The engine is found as `docker` finds it: DOCKER_HOST (with its TLS
variables), else the current Docker context (DOCKER_CONTEXT, or the one `docker
context use` chose; Docker Desktop's), else the platform's default socket or
pipe. Contexts need docker (the SDK) 7.2.

`ssh://` endpoints are refused with what to do instead: the SDK reaches them only
through paramiko (and its cryptography and PyNaCl), which the bundle has no room
for; forwarding the engine's socket over ssh gives the same engine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any

import docker
from docker.context import ContextAPI

PREFLIGHT_TIMEOUT = 10.0
INSECURE_LOOKUP_TIMEOUT = 3.0


@dataclass(frozen=True)
class EngineInfo:
    endpoint: str
    version: str
    api_version: str
    insecure_registries: tuple[str, ...] = ()  # hosts and CIDRs the engine pushes to without TLS checks

    def __str__(self) -> str:
        return f"Docker engine {self.version} (API {self.api_version}) at {self.endpoint}"


class EngineUnreachable(RuntimeError):
    """The engine did not answer; says which endpoint was tried and why."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"Docker engine at {endpoint} is unreachable: {reason}")
        self.endpoint = endpoint
        self.reason = reason


def client_kwargs() -> dict[str, Any]:
    """Where the engine is, as `docker` on the command line would find it.

    Raises docker.errors.DockerException for a broken setting (DOCKER_TLS_VERIFY
    without the certificate files, a context that cannot be read).
    """
    params = docker.utils.kwargs_from_env()
    if "base_url" not in params:
        params.update(ContextAPI.kwargs_from_context())
    if str(params.get("base_url", "")).startswith("ssh://"):
        raise docker.errors.DockerException(
            f"{params['base_url']} is an ssh:// engine, which Dockpool cannot reach directly; forward its socket "
            "(ssh -NL /tmp/docker.sock:/var/run/docker.sock user@host) and set DOCKER_HOST=unix:///tmp/docker.sock")
    return params


def endpoint_name(params: dict[str, Any]) -> str:
    if params.get("base_url"):
        return str(params["base_url"])
    if sys.platform == "win32":
        return docker.constants.DEFAULT_NPIPE
    return docker.constants.DEFAULT_UNIX_SOCKET.replace("http+unix://", "unix://")


def _configured_endpoint() -> str:
    """The endpoint as configured, for messages when the configuration itself is broken."""
    if os.environ.get("DOCKER_HOST"):
        return os.environ["DOCKER_HOST"]
    try:
        context = ContextAPI.get_current_context()
        return str(context.Host or f"context {context.Name}") if context else endpoint_name({})
    except Exception:
        return endpoint_name({})


def stream_client(api_version: str | None = None) -> docker.APIClient:
    """A low-level client for long streams: no read timeout."""
    return docker.APIClient(**client_kwargs(), version=api_version or "auto", timeout=None)


def connect() -> tuple[docker.APIClient, EngineInfo]:
    """Preflight: ask the engine for its version, or raise EngineUnreachable.

    Every failure becomes EngineUnreachable with the endpoint and the reason,
    including settings the SDK rejects before connecting (a stale
    DOCKER_TLS_VERIFY), so no caller is left with a bare exception.
    """
    try:
        params = client_kwargs()
    except Exception as exc:
        raise EngineUnreachable(_configured_endpoint(), f"the Docker settings are invalid: {_reason(exc)}") from None
    endpoint = endpoint_name(params)
    try:
        client = docker.APIClient(**params, version="auto", timeout=PREFLIGHT_TIMEOUT)
        version = client.version()
    except Exception as exc:  # docker, requests and urllib3 errors alike
        raise EngineUnreachable(endpoint, _reason(exc)) from None
    return client, EngineInfo(endpoint, str(version.get("Version", "?")), str(version.get("ApiVersion", "?")),
                              _insecure_registries(client) or ())


def engine_insecure_registries(timeout: float = INSECURE_LOOKUP_TIMEOUT) -> tuple[str, ...] | None:
    """The engine's insecure registries, for a check before a run (the window's registry
    check), asked with a short timeout; None when the engine does not answer in time:
    then nobody knows how the run will reach the registry (its own pre-flight says why)."""
    try:
        client = docker.APIClient(**client_kwargs(), version="auto", timeout=timeout)
    except Exception:
        return None
    try:
        return _insecure_registries(client)
    finally:
        client.close()


def _insecure_registries(client: docker.APIClient) -> tuple[str, ...] | None:
    """Registries the engine treats as insecure (`docker info`): Dockpool's own uploader
    treats them the same way. None when the engine does not say."""
    try:
        config = client.info().get("RegistryConfig") or {}
    except Exception:
        return None
    found = [name for name, index in (config.get("IndexConfigs") or {}).items()
             if isinstance(index, dict) and index.get("Secure") is False]
    found += list(config.get("InsecureRegistryCIDRs") or [])
    return tuple(found)


def _reason(exc: BaseException) -> str:
    """The innermost, most specific cause (e.g. 'No such file or directory')."""
    text = str(exc)
    for needle in ("FileNotFoundError", "ConnectionRefusedError", "PermissionError"):
        if needle in text:
            detail = text.split(needle, 1)[1].strip("(): '\"")
            return f"{needle}: {detail.split(')')[0]}".rstrip(": ")
    return text or type(exc).__name__


def short_client(api_version: str | None = None) -> docker.APIClient:
    """A client for quick calls (clean-up, checks) that must not hang a run."""
    return docker.APIClient(**client_kwargs(), version=api_version or "auto", timeout=PREFLIGHT_TIMEOUT)
