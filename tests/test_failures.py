"""The failure classifier over a table of real daemon, CLI and registry messages."""

from __future__ import annotations

import pytest

from gui.pipeline.events import FailureKind, Stage
from gui.pipeline.failures import classify

BUILD_MESSAGES = [
    # A RUN step that exited non-zero is the build's own failure, whatever its command says.
    ("The command '/bin/sh -c curl --connect-timeout 5 https://example.com/x' returned a non-zero code: 28",
     FailureKind.BUILD_STEP),
    ("The command '/bin/sh -c pytest tests/test_timeout.py' returned a non-zero code: 1", FailureKind.BUILD_STEP),
    ("The command '/bin/sh -c ./gen-EOF.sh' returned a non-zero code: 2", FailureKind.BUILD_STEP),
    ("The command '/bin/sh -c echo \"dial tcp: connection refused\"; exit 3' returned a non-zero code: 3",
     FailureKind.BUILD_STEP),
    ("The command '/bin/sh -c wget http://registry-1.docker.io/x' returned a non-zero code: 1",
     FailureKind.BUILD_STEP),
    # BuildKit in Docker 20.10, as this machine's CLI prints it.
    ("executor failed running [/bin/sh -c echo \"dial tcp: connection refused\"; exit 3]: exit code: 3",
     FailureKind.BUILD_STEP),
    ("executor failed running [/bin/sh -c curl --connect-timeout 5 x]: exit code: 28", FailureKind.BUILD_STEP),
    # BuildKit from Docker 23 on.
    ('process "/bin/sh -c pytest tests/test_timeout.py" did not complete successfully: exit code: 1',
     FailureKind.BUILD_STEP),
    ('failed to solve: process "/bin/sh -c ./gen-EOF.sh" did not complete successfully: exit code: 2',
     FailureKind.BUILD_STEP),
    # A step that could not run: judged by the reason, not the command.
    ("executor failed running [/bin/sh -c echo timeout EOF]: network bridge not found", FailureKind.ENGINE),
    ("failed to solve with frontend dockerfile.v0: failed to create LLB definition: dockerfile parse error "
     "line 6: unknown instruction: ECHO", FailureKind.DOCKERFILE),
    ("COPY failed: file not found in build context or excluded by .dockerignore: stat app.py: file does not "
     "exist", FailureKind.DOCKERFILE),
    ("pull access denied for nosuchbase, repository does not exist or may require 'docker login'",
     FailureKind.DOCKERFILE),
    ("failed to solve with frontend dockerfile.v0: failed to create LLB definition: failed to resolve source "
     "metadata for docker.io/library/alpine:3.19: dial tcp: lookup registry-1.docker.io: no such host",
     FailureKind.DOCKERFILE),
    ("target stage tests could not be found", FailureKind.DOCKERFILE),
    ("the build stream ended without an image id", FailureKind.ENGINE),
]

PUSH_MESSAGES = [
    ("unauthorized: authentication required", FailureKind.AUTH),
    ("denied: requested access to the resource is denied", FailureKind.AUTH),
    ("toomanyrequests: You have reached your pull rate limit", FailureKind.RATE_LIMITED),
    ("received unexpected HTTP status: 503 Service Unavailable", FailureKind.REGISTRY_ERROR),
    ("received unexpected HTTP status: 500 Internal Server Error", FailureKind.REGISTRY_ERROR),
    ("uploading to api: 502", FailureKind.REGISTRY_ERROR),
    ("unexpected status code 503.", FailureKind.REGISTRY_ERROR),
    ("the registry answered 502: try again later", FailureKind.REGISTRY_ERROR),
    # Ports and addresses that look like status codes are not statuses.
    ("dial tcp 10.0.0.1:503: connect: connection refused", FailureKind.UNREACHABLE),
    ("dial tcp: lookup registry-503.corp.lan: no such host", FailureKind.UNREACHABLE),
    ("dial tcp: lookup mirror401.example.com: no such host", FailureKind.UNREACHABLE),
    ("dial tcp: lookup reg-429.lan on 10.0.0.1:53: no such host", FailureKind.UNREACHABLE),
    ("blob sha256:ab401e5029 upload: write: broken pipe", FailureKind.NETWORK),
    ("Get \"https://reg.lan:401/v2/\": dial tcp 10.1.401.2:401: i/o timeout", FailureKind.UNREACHABLE),
    ("Get \"https://127.0.0.1:5000/v2/\": http: server gave HTTP response to HTTPS client", FailureKind.UNREACHABLE),
    ("Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: connection refused", FailureKind.UNREACHABLE),
    ("Put \"http://127.0.0.1:5000/v2/x/blobs/uploads/1\": EOF", FailureKind.NETWORK),
    ("write tcp 127.0.0.1:51234->127.0.0.1:5000: write: broken pipe", FailureKind.NETWORK),
    ("x509: certificate signed by unknown authority", FailureKind.TLS),
    ("something nobody expected", FailureKind.OTHER),
]


@pytest.mark.parametrize("message, kind", BUILD_MESSAGES)
def test_build_messages(message: str, kind: FailureKind) -> None:
    failure = classify(message, Stage.BUILD)
    assert failure.kind is kind
    assert failure.message == message and failure.hint


@pytest.mark.parametrize("message, kind", PUSH_MESSAGES)
def test_push_messages(message: str, kind: FailureKind) -> None:
    assert classify(message, Stage.PUSH).kind is kind


def test_build_steps_are_never_retried_but_server_errors_are() -> None:
    for message, kind in BUILD_MESSAGES:
        if kind is FailureKind.BUILD_STEP:
            assert not classify(message, Stage.BUILD).retryable, message
    assert classify("received unexpected HTTP status: 502 Bad Gateway", Stage.PUSH).retryable


def test_no_bridge_hint_names_the_fix() -> None:
    failure = classify("executor failed running [/bin/sh -c true]: network bridge not found", Stage.BUILD)
    assert 'network = "host"' in failure.hint and "none" in failure.hint
