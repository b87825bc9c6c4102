"""Project files: loading, every kind of bad input, and saving round trips (no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.pipeline import dockerfile
from gui.pipeline.project import ImageSpec, Project, ProjectError, load, save
from tests.helpers import write_image, write_project


def problems_of(path: Path) -> str:
    with pytest.raises(ProjectError) as caught:
        load(path)
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
    ("FROM scratch\nRUN <<EOF\necho hi\nEOF\n", "line 2: RUN with a heredoc"),
    ("FROM scratch\nCOPY --chmod=755 a /a\n", "COPY --chmod needs BuildKit"),
    ("FROM scratch\nFROBNICATE x\n", "line 2: unknown instruction 'FROBNICATE'"),
    ("RUN true\n", "line 1: the first instruction must be FROM"),
    ("# just a comment\n", "has no FROM instruction"),
])
def test_dockerfile_preflight(tmp_path: Path, body: str, expected: str) -> None:
    folder = tmp_path / "img"
    folder.mkdir()
    (folder / "Dockerfile").write_text(body)
    path = write_project(tmp_path, [{"name": "img", "context": "img"}])
    message = problems_of(path)
    assert expected in message and "image 1 ('img')" in message


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
    path = tmp_path / "p.toml"
    original = Project(path=path, registry="registry.example.com:5000/team", builders=7, pushers=3, images=[
        ImageSpec("api", "images/api", tags=["latest", "1.4.0"], build_args={"VERSION": "1.4.0"}),
        ImageSpec("team/web", "images/web", dockerfile="Dockerfile", target="", enabled=False),
    ])
    save(original, path)
    loaded = load(path)
    assert loaded.images == original.images
    assert (loaded.registry, loaded.builders, loaded.pushers) == (original.registry, 7, 3)
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
