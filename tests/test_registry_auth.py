"""Finding the login as `docker push` finds it, and reading a registry's WWW-Authenticate
challenges as registries and the proxies in front of them send them (no Docker needed)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gui.pipeline.registry_auth import Challenge, parse_challenge
from tests.helpers import code_page_locale

ROOT = Path(__file__).resolve().parent.parent
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


def test_schemes_docker_does_not_speak_are_passed_over() -> None:
    """An IIS or Kerberos front end (Nexus, Artifactory at a company) lists Negotiate and
    NTLM before Basic: Basic is answered, as docker push does, not the first one."""
    assert parse_challenge(['Negotiate', 'NTLM, Basic realm="Sonatype Nexus"']) == Challenge(
        "basic", {"realm": "Sonatype Nexus"})
    assert parse_challenge(["Negotiate"]) is None


def test_basic_alone_and_no_challenge() -> None:
    assert parse_challenge(['Basic realm="Registry Realm"']) == Challenge("basic", {"realm": "Registry Realm"})
    assert parse_challenge([]) is None and parse_challenge(["  "]) is None


def test_docker_config_is_read_as_utf8_whatever_the_locale(tmp_path: Path) -> None:
    """Docker writes config.json in UTF-8; Python opens a file in the locale's code page
    (cp1252, cp936, cp932 on Windows, where UTF-8 mode is off by default), and the Docker
    SDK reads it so. One character outside ASCII (here in a field of the docker CLI's own)
    made every stored login vanish: the push failed as `auth` for a user who had logged in."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "config.json").write_text(json.dumps({
        "auths": {"registry.example.com:5000": {"auth": base64.b64encode(b"dockpool:s3cret").decode()}},
        "psFormat": "table {{.Names}} — {{.Status}}"}, ensure_ascii=False), encoding="utf-8")
    env = {**os.environ, "DOCKER_CONFIG": str(config), **code_page_locale(tmp_path)}
    probe = ("import locale; from gui.pipeline.registry_auth import find_credentials as f; "
             "c = f('registry.example.com:5000'); print(locale.getpreferredencoding(False), c and c.username)")
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    encoding, user = done.stdout.split()
    assert encoding == "GBK", "the locale is not the code page's: proves nothing"
    assert user == "dockpool"


def test_a_docker_hub_login_is_found_under_every_name_of_docker_hub(tmp_path: Path, monkeypatch) -> None:
    """`docker login` (and Dockpool's Log in) keep Docker Hub's login under its old index
    URL, in a credential store as in config.json; a registry written as index.docker.io
    or registry-1.docker.io must find it, as docker.io and a bare namespace do."""
    from gui.pipeline.registry_auth import find_credentials

    store = tmp_path / "bin" / "docker-credential-hubonly"
    store.parent.mkdir()
    store.write_text(f"""#!{sys.executable}
import json, sys
server = sys.stdin.read().strip()
if sys.argv[1] == "get" and server == "https://index.docker.io/v1/":
    print(json.dumps({{"ServerURL": server, "Username": "hubuser", "Secret": "hub-pass"}}))
else:
    print("credentials not found in native keychain")
    sys.exit(1)
""")
    store.chmod(0o755)
    monkeypatch.setenv("PATH", f"{store.parent}{os.pathsep}{os.environ['PATH']}")
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config))
    for stored in ({"credsStore": "hubonly"},
                   {"auths": {"https://index.docker.io/v1/": {"auth": base64.b64encode(b"hubuser:hub-pass").decode()}}}):
        (config / "config.json").write_text(json.dumps(stored), encoding="utf-8")
        for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
            found = find_credentials(host)
            assert found is not None and found.username == "hubuser", (stored, host)
