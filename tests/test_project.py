"""Project files: loading, every kind of bad input, and saving round trips (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.pipeline import dockerfile, reference
from gui.pipeline.build_classic import read_ignore_file
from gui.pipeline.project import BuildSettings, ImageSpec, Project, ProjectError, build_inputs, load, save
from tests.helpers import loopback_name, write_image, write_project


def problems_of(path: Path, backend: str = "buildkit") -> str:
    with pytest.raises(ProjectError) as caught:
        load(path, backend=backend)
    return str(caught.value)


def test_load_full_example(tmp_path: Path) -> None:
    write_image(tmp_path / "images", "api")
    path = tmp_path / "dockpool.toml"
    path.write_text('''
[registry]
url = "localhost:5000"
[concurrency]
builders = 6
pushers = 3
[[image]]
name = "api"
context = "images/api"
dockerfile = "Dockerfile"
tags = ["latest", "1.4.0"]
build_args = { VERSION = "1.4.0" }
target = ""
enabled = true
''')
    project = load(path)
    assert (project.registry, project.builders, project.pushers) == ("localhost:5000", 6, 3)
    [image] = project.images
    assert image.refs(project.registry) == ["localhost:5000/api:latest", "localhost:5000/api:1.4.0"]
    assert image.build_args == {"VERSION": "1.4.0"}
    assert project.context_path(image) == (tmp_path / "images" / "api").resolve()


@pytest.mark.parametrize("text, expected", [
    ('[registry\nurl = "x"', "TOML syntax error"),
    ('[registry]\nurl = "x"\nurll = 1', "[registry]: unknown key 'urll'"),
    ('colour = "blue"', "unknown key 'colour'"),
    ('[concurrency]\nbuilders = 0', "[concurrency]: builders must be between 1 and 64, not 0"),
    ('[concurrency]\npushers = 65', "pushers must be between 1 and 64, not 65"),
    ('[concurrency]\npushers = "two"', "pushers must be a whole number"),
    ('[registry]\nurl = "http://localhost:5000"', "must not include a scheme"),
    ('[[image]]\nname = "Api"\ncontext = "a"', "image 1 ('Api'): name 'Api' is not a valid repository name"),
    ('[[image]]\nname = "api"\ncontext = "a"\ntags = ["ok", "bad tag"]', "tags[1] 'bad tag' is not a valid tag"),
    ('[[image]]\nname = "api"\ncontext = "a"\ntags = [".x"]', "tags[0] '.x' is not a valid tag"),
    ('[[image]]\nname = "api"\ncontext = "a"\ntags = []', "tags must list at least one tag"),
    ('[[image]]\nname = "api"', "image 1 ('api'): missing required key 'context'"),
    ('[[image]]\nname = "api"\ncontext = "a"\ncolor = 1', "image 1 ('api'): unknown key 'color'"),
    ('[[image]]\nname = "api"\ncontext = "a"\nbuild_args = { V = 1 }', "build_args.V must be a string"),
    ('[[image]]\nname = "api"\ncontext = "a"\nenabled = "yes"', "enabled must be a boolean"),
    ('[[image]]\nname = "api"\ncontext = "missing"', "context folder 'missing' does not exist"),
    ('[[image]]\nname = "api"\ncontext = "a"\ndockerfile = "Nope"', "Dockerfile 'Nope' not found"),
])
def test_bad_input_names_what_and_where(tmp_path: Path, text: str, expected: str) -> None:
    write_image(tmp_path, "a")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    message = problems_of(path)
    assert expected in message
    assert str(path) in message


def test_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[registry]\nurl = "a"\n\n[[image]\nname = "x"\n')
    assert "line 4" in problems_of(path)


def test_duplicate_name_and_tag(tmp_path: Path) -> None:
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "api", "context": "a", "tags": ["1", "latest"]},
                                    {"name": "api", "context": "a", "tags": ["latest"]}])
    assert "image 2 ('api'): duplicate reference api:latest" in problems_of(path)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write_project(tmp_path, [{"name": "Bad", "context": "x"}, {"name": "ok", "context": "y"}],
                         builders=1)
    message = problems_of(path)
    assert "image 1 ('Bad')" in message and "image 2 ('ok'): context folder 'y'" in message


def test_disabled_image_may_point_at_a_missing_folder(tmp_path: Path) -> None:
    path = write_project(tmp_path, [{"name": "later", "context": "not-here", "enabled": False}])
    assert load(path).images[0].enabled is False


@pytest.mark.parametrize("body, expected", [
    ("FROM scratch\nRUN --mount=type=cache,target=/c true\n", "line 2: RUN --mount needs BuildKit"),
    ("# syntax=docker/dockerfile:1\nFROM scratch\n", "selects a BuildKit frontend"),
    ("FROM scratch\nRUN <<EOF\necho hi\nEOF\n", "line 2: RUN with a heredoc (<<EOF) needs BuildKit"),
    ("FROM scratch\nCOPY --chmod=755 a /a\n", "COPY --chmod needs BuildKit"),
])
def test_buildkit_only_lines_are_refused_only_when_classic_must_build(tmp_path: Path, body: str,
                                                                      expected: str) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "Dockerfile").write_text(body)
    path = write_project(tmp_path, [{"name": "img", "context": "img"}])
    load(path)  # BuildKit builds it
    message = problems_of(path, backend="classic")
    assert expected in message and "only the classic builder is available" in message
    assert "image 1 ('img')" in message


@pytest.mark.parametrize("body, expected", [
    ("FROM scratch\nFROBNICATE x\n", "line 2: unknown instruction 'FROBNICATE'"),
    ("RUN true\n", "line 1: the first instruction must be FROM"),
    ("# just a comment\n", "has no FROM instruction"),
    ("FROM scratch\nRUN cat <<EOF\nnever closed\n", "line 2: the heredoc <<EOF is never closed"),
])
def test_dockerfile_preflight(tmp_path: Path, body: str, expected: str) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "Dockerfile").write_text(body)
    path = write_project(tmp_path, [{"name": "img", "context": "img"}])
    message = problems_of(path)
    assert expected in message and "image 1 ('img')" in message


def test_shell_arithmetic_is_not_a_heredoc() -> None:
    """`$((1<<SHIFT))` used to open a heredoc that swallowed the rest of the file."""
    info = dockerfile.parse("FROM scratch AS base\nARG SHIFT=3\nRUN echo $((1<<SHIFT)) > /n\n"
                            "FROM base AS final\nRUN echo 'a<<b' && cat /n\n")
    assert info.stages == ["base", "final"] and not info.buildkit_only
    assert [i.keyword for i in info.instructions] == ["FROM", "ARG", "RUN", "FROM", "RUN"]


def test_heredoc_bodies_are_data_and_stages_after_them_count() -> None:
    info = dockerfile.parse("FROM scratch AS one\nCOPY <<-EOT /etc/motd\n\tFROM not an instruction\n\tEOT\n"
                            "RUN <<'SCRIPT' bash\nset -e\nUNKNOWN words\nSCRIPT\nFROM one AS two\n")
    assert info.stages == ["one", "two"]
    assert [line for line, _ in info.buildkit_only] == [2, 5]


def test_bom_and_crlf_as_windows_editors_save_them(tmp_path: Path) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "Dockerfile").write_bytes(b"\xef\xbb\xbfFROM scratch AS base\r\nCOPY a /a\r\n")
    (folder / ".dockerignore").write_bytes(b"\xef\xbb\xbfsecret.txt\r\n# comment\r\n\r\n*.tmp\r\n")
    path = tmp_path / "p.toml"
    path.write_bytes(b'\xef\xbb\xbf[[image]]\r\nname = "img"\r\ncontext = "img"\r\ntarget = "base"\r\n')
    [image] = load(path).images
    assert image.target == "base"
    assert read_ignore_file(folder / ".dockerignore") == ["secret.txt", "*.tmp"]


@pytest.mark.parametrize("field, value, expected", [
    ("name", "café", "name 'café' is not a valid repository name"),
    ("name", "api\n", "is not a valid repository name"),
    ("tags", ["latest\n"], "tags[0] 'latest\n' is not a valid tag"),
    ("tags", ["v1.0-ü"], "is not a valid tag"),
    ("network", "bridge", "network must be one of 'default', 'none', 'host', not 'bridge'"),
    ("platform", "amd64", "platform 'amd64' is not os/arch[/variant]"),
    ("secrets", {"npm token": "x"}, "secrets: id 'npm token' may use only"),
    ("secrets", {"token": "nope.txt"}, "secrets.token: file 'nope.txt' not found"),
    ("ssh", ["default=missing-key"], "ssh[0]: 'missing-key' not found"),
])
def test_image_keys_are_checked(tmp_path: Path, field: str, value: object, expected: str) -> None:
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "api", "context": "a", field: value}])
    assert expected in problems_of(path)


@pytest.mark.parametrize("text, expected", [
    ('[build]\nbackend = "fast"', "[build] backend must be one of 'auto', 'buildkit', 'classic'"),
    ('[build]\ntimeout = 0', "[build] timeout must be more than 0 seconds"),
    ('[build]\ntimeout = "1h"', "[build] timeout must be a number of seconds"),
    ('[build]\ntimeout = nan', "[build] timeout must be more than 0 seconds, not nan"),
    ('[build]\ntimeout = inf', "[build] timeout must be more than 0 seconds, not inf"),
    ('[build]\nnetwork = "bridge"', "[build] network must be one of"),
    ('[build]\ncolour = 1', "[build]: unknown key 'colour'"),
    ('[registry]\npush = "fast"', "[registry] push must be one of 'direct', 'engine'"),
    ('[registry]\ninsecure = "yes"', "[registry] insecure must be a boolean"),
])
def test_settings_are_checked(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    assert expected in problems_of(path)


def test_buildkit_only_keys_under_classic(tmp_path: Path) -> None:
    write_image(tmp_path, "a")
    (tmp_path / "token.txt").write_text("s3cret")
    path = write_project(tmp_path, [{"name": "api", "context": "a", "secrets": {"token": "token.txt"}}])
    load(path)
    assert "secrets needs BuildKit, and only the classic builder is available" in problems_of(path, "classic")


def test_target_must_be_a_stage(tmp_path: Path) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch AS base\nFROM base AS final\n")
    path = write_project(tmp_path, [{"name": "img", "context": "img", "target": "tests"}])
    assert "target 'tests' is not a stage of 'Dockerfile' (stages: base, final)" in problems_of(path)


def test_dockerfile_steps_and_continuations() -> None:
    info = dockerfile.parse("# escape=\\\nFROM scratch AS a\n# comment\nCOPY a \\\n  /a\nRUN echo \\\n# inside\n  hi\n")
    assert [i.keyword for i in info.instructions] == ["FROM", "COPY", "RUN"]
    assert info.steps == 3 and info.stages == ["a"] and not info.buildkit_only


def test_save_round_trips_every_value(tmp_path: Path) -> None:
    write_image(tmp_path / "images", "api")
    write_image(tmp_path / "images", "web")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "npm.txt").write_text("x")
    path = tmp_path / "p.toml"
    original = Project(path=path, registry="registry.example.com:5000/team", builders=7, pushers=3, images=[
        ImageSpec("api", "images/api", tags=["latest", "1.4.0"], build_args={"VERSION": "1.4.0"},
                  network="host", secrets={"npm": "secrets/npm.txt"}, ssh=["default"], platform="linux/amd64",
                  cache_from=["type=local,src=/tmp/c"], cache_to=["type=inline"]),
        ImageSpec("team/web", "images/web", dockerfile="Dockerfile", target="", enabled=False),
    ], push="engine", insecure=True, build=BuildSettings("classic", "/usr/bin/docker", "none", 600.0, "remote"))
    save(original, path)
    loaded = load(path)
    assert loaded.images == original.images
    assert (loaded.registry, loaded.builders, loaded.pushers) == (original.registry, 7, 3)
    assert (loaded.push, loaded.insecure, loaded.build) == ("engine", True, original.build)
    save(loaded)  # saving in place keeps it identical
    assert load(path).images == original.images


def test_save_as_elsewhere_keeps_contexts_pointing_at_the_same_folders(tmp_path: Path) -> None:
    write_image(tmp_path / "images", "api")
    project = load(write_project(tmp_path, [{"name": "api", "context": "images/api"}]))
    (tmp_path / "elsewhere").mkdir()
    saved = save(project, tmp_path / "elsewhere" / "copy.toml")
    assert saved.images[0].context == "../images/api"
    again = load(tmp_path / "elsewhere" / "copy.toml")
    assert again.context_path(again.images[0]) == project.context_path(project.images[0])


def test_same_name_with_other_tags_gets_distinct_keys(tmp_path: Path) -> None:
    from gui.pipeline.project import image_keys

    write_image(tmp_path, "a")
    write_image(tmp_path, "b")
    project = load(write_project(tmp_path, [{"name": "api", "context": "a", "tags": ["1"]},
                                            {"name": "api", "context": "b", "tags": ["2"]},
                                            {"name": "web", "context": "a"}]))
    assert image_keys(project.images) == ["api:1", "api:2", "web"]


def test_lenient_load_keeps_invalid_rows_for_the_window(tmp_path: Path) -> None:
    path = write_project(tmp_path, [{"name": "Bad Name", "context": "missing"}])
    project = load(path, strict=False)
    assert project.images[0].name == "Bad Name"
    with pytest.raises(ProjectError):
        load(path)


def test_save_as_elsewhere_keeps_secret_paths_pointing_at_the_same_files(tmp_path: Path) -> None:
    write_image(tmp_path, "a")
    (tmp_path / "token.txt").write_text("x")
    project = load(write_project(tmp_path, [{"name": "api", "context": "a", "secrets": {"t": "token.txt"}}]))
    (tmp_path / "elsewhere").mkdir()
    saved = save(project, tmp_path / "elsewhere" / "copy.toml")
    assert saved.images[0].secrets == {"t": "../token.txt"}
    assert load(tmp_path / "elsewhere" / "copy.toml").file_path("../token.txt") == (tmp_path / "token.txt")


def test_save_as_elsewhere_keeps_local_cache_folders(tmp_path: Path) -> None:
    """type=local caches name folders relative to the project folder (the CLI runs there)."""
    write_image(tmp_path, "a")
    project = load(write_project(tmp_path, [{"name": "api", "context": "a",
                                             "cache_from": ["type=local,src=cache", "registry.lan/api:cache"],
                                             "cache_to": ["type=local,dest=cache,mode=max"]}]))
    (tmp_path / "elsewhere").mkdir()
    saved = save(project, tmp_path / "elsewhere" / "copy.toml")
    assert saved.images[0].cache_from == ["type=local,src=../cache", "registry.lan/api:cache"]
    assert saved.images[0].cache_to == ["type=local,dest=../cache,mode=max"]


@pytest.mark.parametrize(("registry", "insecure"), [
    ("localhost:5000", True), ("127.0.0.1:5000/team", True), ("[::1]:5000", True), ("::1", True),
    ("registry.example.com", False), ("[2001:db8::1]:5000", False), ("10.0.0.5:5000", False)])
def test_loopback_registries_are_insecure_as_docker_treats_them(registry: str, insecure: bool) -> None:
    assert reference.is_insecure(registry) is insecure


def test_engine_insecure_entries_match_hosts_and_cidrs() -> None:
    assert reference.is_insecure("10.0.0.5:5000", ("10.0.0.0/8",))
    assert reference.is_insecure("reg.lan:5000", ("reg.lan:5000",))
    assert not reference.is_insecure("reg.lan:5001", ("reg.lan:5000",))


def test_host_names_count_by_what_they_resolve_to() -> None:
    """As the engine decides: a name for a loopback address is in 127.0.0.0/8, which the
    engine always lists; without that range it is not insecure by its name alone."""
    name = loopback_name()
    assert reference.is_insecure(f"{name}:5000", ("127.0.0.0/8",))
    assert not reference.is_insecure(f"{name}:5000")
    assert not reference.is_insecure("no-such-host.invalid:5000", ("127.0.0.0/8",))


def test_docker_hub_names_map_to_its_api() -> None:
    assert reference.api_host("docker.io") == reference.api_host("index.docker.io") == "registry-1.docker.io"
    assert reference.api_host("ghcr.io") == "ghcr.io"
    assert reference.api_repository("docker.io", "alpine") == "library/alpine"
    assert reference.api_repository("docker.io", "team/api") == "team/api"
    assert reference.api_repository("registry.example.com", "api") == "api"


def test_a_docker_hub_namespace_is_read_as_docker_reads_it() -> None:
    """`docker push myuser/app` goes to Docker Hub: a first part with no '.' or ':' that
    is not localhost (and has no capitals) is a namespace there, not a host. The direct
    path took registry = "myuser" for a host and connected to https://myuser/v2/."""
    from gui.pipeline.push_direct import _split

    for registry in ("myuser", "myuser/team", "docker.io/myuser"):
        assert reference.registry_host(registry) == "docker.io", registry
    assert _split("myuser/app:1.0") == ("myuser/app", "1.0")
    assert _split("myuser/team/app:1.0") == ("myuser/team/app", "1.0")
    assert _split("docker.io/alpine:3") == ("library/alpine", "3")
    for registry, host in (("localhost/team", "localhost"), ("localhost:5000", "localhost:5000"),
                           ("registry.example.com/team", "registry.example.com"), ("MyHost/team", "MyHost"),
                           ("127.0.0.1:5000", "127.0.0.1:5000")):
        assert reference.registry_host(registry) == host, registry
    assert _split("registry.example.com:5000/team/api:1.0") == ("team/api", "1.0")


def test_an_image_copy_shares_no_list_or_dict_with_the_original() -> None:
    """A run keeps copies of its images while the project is edited: an edit made during
    the run must not reach them, nor the build inputs recorded for them."""
    image = ImageSpec("api", "api", tags=["1.0"], build_args={"A": "1"}, secrets={"s": "f"}, ssh=["default"],
                      cache_from=["x"], cache_to=["type=local,dest=c"])
    kept = image.copy()
    inputs = build_inputs(kept, BuildSettings())
    assert kept == image
    image.tags.append("2.0")
    image.build_args["A"] = "2"
    image.secrets.clear()
    image.ssh.append("other")
    image.cache_from.clear()
    assert kept == ImageSpec("api", "api", tags=["1.0"], build_args={"A": "1"}, secrets={"s": "f"}, ssh=["default"],
                             cache_from=["x"], cache_to=["type=local,dest=c"])
    assert build_inputs(kept, BuildSettings()) == inputs != build_inputs(image, BuildSettings())
