"""Finding and talking to the Docker engine.

Every process (the supervisor and each worker) makes its own client, because a
DockerClient holds sockets and cannot be pickled. Stream calls get no read
timeout: the SDK's default of 60 s kills long builds and slow pushes mid-stream
(as urllib3's ReadTimeoutError); hung pushes are the stall watchdog's job.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import docker
from docker.context import ContextAPI

PREFLIGHT_TIMEOUT = 10.0


@dataclass(frozen=True)
class EngineInfo:
    endpoint: str
    version: str
    api_version: str

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

    DOCKER_HOST (and its TLS variables) wins; otherwise the current Docker
    context (Docker Desktop's); otherwise the platform's default socket or pipe.
    """
    params = docker.utils.kwargs_from_env()
    if "base_url" not in params and hasattr(ContextAPI, "kwargs_from_context"):
        try:
            params.update(ContextAPI.kwargs_from_context())
        except docker.errors.DockerException:
            pass  # a broken context file: fall back to the default endpoint
    return params


def endpoint_name(params: dict[str, Any]) -> str:
    if params.get("base_url"):
        return str(params["base_url"])
    if sys.platform == "win32":
        return docker.constants.DEFAULT_NPIPE
    return docker.constants.DEFAULT_UNIX_SOCKET.replace("http+unix://", "unix://")


def stream_client(api_version: str | None = None) -> docker.APIClient:
    """A low-level client for long streams: no read timeout."""
    return docker.APIClient(**client_kwargs(), version=api_version or "auto", timeout=None)


def connect() -> tuple[docker.APIClient, EngineInfo]:
    """Preflight: ask the engine for its version, or raise EngineUnreachable."""
    params = client_kwargs()
    endpoint = endpoint_name(params)
    try:
        client = docker.APIClient(**params, version="auto", timeout=PREFLIGHT_TIMEOUT)
        version = client.version()
    except docker.errors.DockerException as exc:
        raise EngineUnreachable(endpoint, _reason(exc)) from None
    except Exception as exc:  # requests/urllib3 errors surface directly here
        raise EngineUnreachable(endpoint, _reason(exc)) from None
    return client, EngineInfo(endpoint, str(version.get("Version", "?")),
                              str(version.get("ApiVersion", "?")))


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
