"""Small helpers shared by the build and push code that reads the engine's streams."""

from __future__ import annotations

from typing import Any


def split_ref(ref: str) -> tuple[str, str]:
    """'host:5000/team/api:1.0' -> ('host:5000/team/api', '1.0')."""
    repository, _, tag = ref.rpartition(":")
    return repository, tag


def stream_error(item: dict[str, Any]) -> str | None:
    """The SDK reports most failures as items in the stream, not as exceptions."""
    if "errorDetail" in item:
        detail = item["errorDetail"]
        return str(detail.get("message") or item.get("error") or detail)
    if "error" in item:
        return str(item["error"])
    return None


def exception_message(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc) or type(exc).__name__
