"""Reading a registry's WWW-Authenticate challenges, as registries and the proxies in
front of them send them (no Docker needed: this is parsing)."""

from __future__ import annotations

import pytest

from gui.pipeline.registry_auth import Challenge, parse_challenge

BEARER = 'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'


def test_one_bearer_challenge() -> None:
    assert parse_challenge([BEARER]) == Challenge("bearer", {
        "realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull"})


@pytest.mark.parametrize("headers", [
    [BEARER + ', Basic realm="Registry Realm"'],  # two challenges in one header
    ['Basic realm="Registry Realm"', BEARER],  # one header each (an auth proxy adds its own)
    ['Basic realm="a, Bearer realm=\\"x\\""', BEARER],  # a comma and a scheme inside a quoted value
], ids=["one-header", "two-headers", "quoted-comma"])
def test_the_token_flow_is_chosen_from_several_challenges(headers: list[str]) -> None:
    challenge = parse_challenge(headers)
    assert challenge is not None and challenge.scheme == "bearer"
    assert challenge.params["realm"] == "https://auth.example/token"
    assert challenge.params["service"] == "registry.example"


def test_basic_alone_and_no_challenge() -> None:
    assert parse_challenge(['Basic realm="Registry Realm"']) == Challenge("basic", {"realm": "Registry Realm"})
    assert parse_challenge([]) is None and parse_challenge(["  "]) is None
