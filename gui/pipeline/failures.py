"""Turn the daemon's error messages into classified failures with advice.

The daemon's words are kept verbatim (users search for them); the kind decides
whether a retry can help, and the hint says what the user should do next.

A failing RUN step's message quotes the command it ran, and commands are full of
words that look like network trouble (`curl --connect-timeout`, a test named
test_timeout.py, a script gen-EOF.sh, an echo of "dial tcp"). So the structure of
the message is read first: a build step that exited with a code is `build-step`,
whatever its command says, and only the part of a message outside the quoted
command is matched against words.
"""

from __future__ import annotations

import re

from .events import Failure, FailureKind, Stage

_BUILD_STEP_HINT = "a RUN step failed; its output is in the build log just above this error"
_NO_BRIDGE_HINT = ("the Docker engine has no bridge network (dockerd --bridge=none), so RUN steps cannot use "
                   "the default network: set network = \"host\" or \"none\" for this image or in [build]")

# A RUN step that ran and exited non-zero, in the words of each builder. The command
# itself is group 1: it is never matched against the rules below.
_STEP_EXITED = [
    # the classic builder
    re.compile(r"The command '(.*)' returned a non-zero code: \d+", re.S),
    # BuildKit in Docker 20.10 (dockerfile frontend 1.2/1.3)
    re.compile(r"executor failed running \[(.*)\]: exit code: \d+", re.S),
    # BuildKit from Docker 23 on
    re.compile(r"process \"(.*)\" did not complete successfully: exit code: \d+", re.S),
]
# A step that could not run at all: the command is group 1, the reason follows it.
_STEP_BROKEN = [
    re.compile(r"executor failed running \[(.*)\]: (.*)", re.S),
    re.compile(r"process \"(.*)\" did not complete successfully: (.*)", re.S),
]

# An HTTP status in a message, never a port ("10.0.0.1:503") or part of an address.
def _status(codes: str) -> str:
    """A status code, not part of an address, a port, a host name or a digest:
    "10.0.0.1:503", "registry-503.lan", "mirror401" and "ab401e" are not statuses,
    "status code 503." and "got 503: retry" are."""
    return rf"(?<![\w:.-]){codes}(?![\w-]|[.:]\d)"


_RULES: list[tuple[re.Pattern[str], FailureKind, str]] = [
    # Build-only: a FROM image that is neither local nor pullable.
    (re.compile(r"pull access denied|manifest unknown|repository does not exist|"
                r"manifest for .* not found|registry-1\.docker\.io|failed to resolve source metadata", re.I),
     FailureKind.DOCKERFILE,
     "the FROM image is not on this engine and cannot be pulled; build, load or import it first"),
    (re.compile(r"network bridge not found", re.I), FailureKind.ENGINE, _NO_BRIDGE_HINT),
    (re.compile(r"toomanyrequests|too many requests|" + _status("429"), re.I), FailureKind.RATE_LIMITED,
     "the registry is rate limiting; lower the number of pushers or wait before retrying"),
    (re.compile(r"no basic auth credentials|unauthorized|authentication required|"
                r"requested access to the resource is denied|" + _status("40[13]") + r"|forbidden|denied:", re.I),
     FailureKind.AUTH,
     "log in to the registry (docker login, or Dockpool's Log in / --username) with an account "
     "that may push to this repository"),
    (re.compile(r"server gave HTTP response to HTTPS client", re.I), FailureKind.UNREACHABLE,
     "the registry speaks plain HTTP; add it to the daemon's insecure-registries or serve it over TLS"),
    (re.compile(r"x509:|certificate verify failed|certificate signed by unknown authority|"
                r"CERTIFICATE_VERIFY_FAILED|tls: ", re.I), FailureKind.TLS,
     "the registry's TLS certificate is not trusted: add its CA to the system's trust store (or "
     "Docker's certs.d folder for this registry), or mark the registry insecure = true"),
    (re.compile(_status("50[0-4]") + r"|Internal Server Error|Bad Gateway|Service Unavailable|Gateway Timeout", re.I),
     FailureKind.REGISTRY_ERROR,
     "the registry answered with a server error; it is retried, and the registry's own log says why"),
    (re.compile(r"connection refused|no such host|server misbehaving|no route to host|"
                r"network is unreachable|dial tcp|name or service not known|"
                r"temporary failure in name resolution", re.I), FailureKind.UNREACHABLE,
     "check the registry URL and that the registry is running and reachable"),
    (re.compile(r"\bEOF\b|connection reset|broken pipe|timeout|timed out|"
                r"use of closed network connection|connection aborted", re.I), FailureKind.NETWORK,
     "the connection to the registry dropped mid-transfer; retrying usually helps"),
    (re.compile(r"dockerfile parse error|unknown instruction|Cannot locate specified Dockerfile|"
                r"failed to create LLB definition|failed to read dockerfile|"
                r"failed to process|COPY failed|ADD failed|failed to compute cache key|"
                r"target stage .* could not be found|no build stage", re.I), FailureKind.DOCKERFILE,
     "fix the Dockerfile or the files it copies from the build context"),
]

# Registry and network rules describe pushes; a build's "denied" is about its base image.
_PUSH_ONLY = (FailureKind.AUTH, FailureKind.RATE_LIMITED, FailureKind.TLS, FailureKind.REGISTRY_ERROR)
_BUILD_ONLY = (FailureKind.BUILD_STEP, FailureKind.DOCKERFILE)

_STAGE_DEFAULTS = {
    Stage.BUILD: (FailureKind.ENGINE, "the Docker engine could not build this image; see the build log"),
    Stage.PUSH: (FailureKind.OTHER, "the push failed; see the push log and the registry's logs"),
}


def classify(message: str, stage: Stage) -> Failure:
    """Classify a daemon, CLI or SDK error message from `stage`."""
    message = message.strip() or "no message from the Docker engine"
    if stage is Stage.BUILD:
        if any(pattern.search(message) for pattern in _STEP_EXITED):
            return Failure(FailureKind.BUILD_STEP, message, _BUILD_STEP_HINT)
        for pattern in _STEP_BROKEN:
            if (match := pattern.search(message)):
                # Judge the reason the step could not run, never the command's words.
                return _match_rules(message, match.group(2), stage)
    return _match_rules(message, message, stage)


def _match_rules(message: str, words: str, stage: Stage) -> Failure:
    for pattern, kind, hint in _RULES:
        if stage is Stage.BUILD and kind in _PUSH_ONLY:
            continue
        if stage is Stage.PUSH and kind in _BUILD_ONLY:
            continue
        if pattern.search(words):
            return Failure(kind, message, hint)
    kind, hint = _STAGE_DEFAULTS[stage]
    return Failure(kind, message, hint)


def stalled(seconds: float) -> Failure:
    return Failure(FailureKind.STALLED, f"no push progress for {seconds:g} s",
                   "the upload stalled and was aborted; it is retried with backoff")


def timed_out(seconds: float) -> Failure:
    return Failure(FailureKind.TIMEOUT, f"the build ran longer than the build timeout ({seconds:g} s)",
                   "the build was stopped; raise the timeout (--build-timeout, [build] timeout) if it "
                   "really needs longer, or look at the step it was running in the build log")


def worker_died(stage: Stage, exitcode: int | None) -> Failure:
    how = f"exit code {exitcode}" if exitcode is not None and exitcode >= 0 else (
        f"killed by signal {-exitcode}" if exitcode is not None else "no exit code")
    return Failure(FailureKind.WORKER_DIED, f"the {stage.value} worker process died ({how})",
                   "the process was killed or crashed; the image is retried")
