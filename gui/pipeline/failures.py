"""Turn the daemon's error messages into classified failures with advice.

The daemon's words are kept verbatim (users search for them); the kind decides
whether a retry can help, and the hint says what the user should do next.
"""

from __future__ import annotations

import re

from .events import Failure, FailureKind, Stage

_RULES: list[tuple[re.Pattern[str], FailureKind, str]] = [
    # Build-only: a FROM image that is neither local nor pullable.
    (re.compile(r"pull access denied|manifest unknown|repository does not exist|"
                r"manifest for .* not found|registry-1\.docker\.io", re.I), FailureKind.DOCKERFILE,
     "the FROM image is not on this engine and cannot be pulled; build, load or import it first"),
    (re.compile(r"toomanyrequests|too many requests|\b429\b", re.I), FailureKind.RATE_LIMITED,
     "the registry is rate limiting; lower the number of pushers or wait before retrying"),
    (re.compile(r"no basic auth credentials|unauthorized|authentication required|"
                r"requested access to the resource is denied|\b401\b|\b403\b|forbidden|denied:", re.I),
     FailureKind.AUTH,
     "log in to the registry (docker login, or Dockpool's Log in / --username) with an account "
     "that may push to this repository"),
    (re.compile(r"server gave HTTP response to HTTPS client", re.I), FailureKind.UNREACHABLE,
     "the registry speaks plain HTTP; add it to the daemon's insecure-registries or serve it over TLS"),
    (re.compile(r"connection refused|no such host|server misbehaving|no route to host|"
                r"network is unreachable|dial tcp", re.I), FailureKind.UNREACHABLE,
     "check the registry URL and that the registry is running and reachable from the Docker engine"),
    (re.compile(r"\bEOF\b|connection reset|broken pipe|timeout|timed out|"
                r"use of closed network connection|connection aborted", re.I), FailureKind.NETWORK,
     "the connection to the registry dropped mid-transfer; retrying usually helps"),
    (re.compile(r"returned a non-zero code", re.I), FailureKind.BUILD_STEP,
     "a RUN step failed; its output is in the build log just above this error"),
    (re.compile(r"dockerfile parse error|unknown instruction|Cannot locate specified Dockerfile|"
                r"failed to process|COPY failed|ADD failed|failed to compute cache key|"
                r"target stage .* could not be found|no build stage", re.I), FailureKind.DOCKERFILE,
     "fix the Dockerfile or the files it copies from the build context"),
]

_STAGE_DEFAULTS = {
    Stage.BUILD: (FailureKind.ENGINE, "the Docker engine could not build this image; see the build log"),
    Stage.PUSH: (FailureKind.OTHER, "the push failed; see the push log and the registry's logs"),
}


def classify(message: str, stage: Stage) -> Failure:
    """Classify a daemon or SDK error message from `stage`.

    Registry rules are only matched for pushes: a build's "denied" message is
    about its base image, not about pushing.
    """
    message = message.strip() or "no message from the Docker engine"
    for pattern, kind, hint in _RULES:
        if stage is Stage.BUILD and kind in (FailureKind.AUTH, FailureKind.RATE_LIMITED):
            continue
        if stage is Stage.PUSH and kind in (FailureKind.BUILD_STEP, FailureKind.DOCKERFILE):
            continue
        if pattern.search(message):
            return Failure(kind, message, hint)
    kind, hint = _STAGE_DEFAULTS[stage]
    return Failure(kind, message, hint)


def stalled(seconds: float) -> Failure:
    return Failure(FailureKind.STALLED, f"no push progress for {seconds:g} s",
                   "the upload stalled and was aborted; it is retried with backoff")


def worker_died(stage: Stage, exitcode: int | None) -> Failure:
    how = f"exit code {exitcode}" if exitcode is not None and exitcode >= 0 else (
        f"killed by signal {-exitcode}" if exitcode is not None else "no exit code")
    return Failure(FailureKind.WORKER_DIED, f"the {stage.value} worker process died ({how})",
                   "the process was killed or crashed; the image is retried")
