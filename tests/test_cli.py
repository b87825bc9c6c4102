"""The CLI as a user or a CI script runs it: a real process, exit codes, report, output."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gui.devservices import Registry
from tests.helpers import simple_project, write_image, write_project


def dockpool(*args: str, env: dict[str, str] | None = None, timeout: float = 180,
             stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gui", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})}, input=stdin)


@pytest.mark.docker
def test_run_pushes_and_writes_report(tmp_path: Path, registry: Registry) -> None:
    project = simple_project(tmp_path, 3, registry="localhost:1", tags=("latest", "v1"))
    report_path = tmp_path / "report.json"
    result = dockpool("run", str(project.path), "--registry", registry.address, "--builders", "2",
                      "--pushers", "1", "--report", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    # Not a terminal: plain timestamped lines, then the summary table.
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d pushed +img00 sha256:", result.stdout, re.M)
    assert re.search(r"^img02 +pushed ", result.stdout, re.M)
    assert "3 pushed in" in result.stdout

    report = json.loads(report_path.read_text())
    assert {"started", "finished", "builders", "pushers", "images"} <= set(report)
    assert (report["builders"], report["pushers"]) == (2, 1)
    for image in report["images"]:
        assert image["status"] == "pushed" and image["stage"] is None and image["error"] is None
        assert image["refs"] == [f"{registry.address}/{image['name']}:latest",
                                 f"{registry.address}/{image['name']}:v1"]
        assert image["digest"] == registry.manifest_digest(image["name"], "v1")
        assert image["attempts"] == 1
        for stage in ("build", "push"):
            assert report["started"] <= image[stage]["start"] <= image[stage]["end"] <= report["finished"]


@pytest.mark.docker
def test_failed_image_exits_1_and_keeps_the_others(tmp_path: Path, registry: Registry, base_image: str) -> None:
    write_image(tmp_path, "workers")  # a name that once shared its log file with the workers' own output
    write_image(tmp_path, "broken", base=base_image, run="false")
    path = write_project(tmp_path, [{"name": "workers", "context": "workers"},
                                    {"name": "broken", "context": "broken"}], registry=registry.address)
    logs = tmp_path / "logs"
    result = dockpool("run", str(path), "--report", str(tmp_path / "r.json"), "--log-dir", str(logs))
    assert result.returncode == 1
    # BuildKit built it (the default where a docker CLI can): its own words for a failed RUN.
    assert "build: buildkit (docker 20.10" in result.stdout
    assert "FAILED          broken (build, build-step): executor failed running [/bin/sh -c false]: exit code: 1" \
        in result.stdout
    assert "what to do: a RUN step failed" in result.stdout
    images = {i["name"]: i for i in json.loads((tmp_path / "r.json").read_text())["images"]}
    assert images["workers"]["status"] == "pushed"
    assert (images["broken"]["status"], images["broken"]["stage"]) == ("failed", "build")
    # --log-dir: each image's whole log in its own file (the workers' own output, when they
    # have no console, goes to _workers.log, a name no image's log can have).
    image_log = (logs / "workers.log").read_text()
    assert "[build]" in image_log and "[push]" in image_log and "digest: sha256:" in image_log
    assert "exit code: 1" in (logs / "broken.log").read_text()


@pytest.mark.docker
def test_ctrl_c_cancels_and_exits_130(tmp_path: Path, registry: Registry, base_image: str,
                                      docker_client) -> None:
    for index in range(3):
        write_image(tmp_path, f"slow{index}", base=base_image, run="sleep 60")
    path = write_project(tmp_path, [{"name": f"slow{i}", "context": f"slow{i}"} for i in range(3)],
                         registry=registry.address)
    process = subprocess.Popen([sys.executable, "-m", "gui", "run", str(path), "--report",
                                str(tmp_path / "r.json")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    seen = ""
    while "build step      slow0 3/3" not in seen and time.monotonic() < deadline:
        seen += process.stdout.readline()
    os.killpg(process.pid, signal.SIGINT)  # the terminal sends Ctrl+C to the whole group
    pressed = time.monotonic()
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - pressed < 5
    assert process.returncode == 130, out + err
    assert "cancelled" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert {i["status"] for i in report["images"]} == {"cancelled"}
    # The engine finishes removing cancelled build containers on its own clock; within
    # the 5 s a cancel may take, none is left.
    while docker_client.containers(all=True) and time.monotonic() - pressed < 5:
        time.sleep(0.1)
    assert docker_client.containers(all=True) == []


def test_engine_unreachable_exits_3(tmp_path: Path) -> None:
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "a", "context": "a"}])
    result = dockpool("run", str(path), env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 3
    assert f"Docker engine at unix://{tmp_path}/no-engine.sock is unreachable" in result.stderr
    assert "No such file or directory" in result.stderr


@pytest.mark.parametrize("args, expected", [
    (["--builders", "0"], "--builders: must be between 1 and 64, not 0"),
    (["--pushers", "x"], "--pushers: 'x' is not a whole number"),
    (["--stall-timeout", "-1"], "--stall-timeout: must be more than 0"),
    (["--stall-timeout", "nan"], "--stall-timeout: must be more than 0, not nan"),
    (["--build-timeout", "inf"], "--build-timeout: must be more than 0, not inf"),
    (["--progress-every", "-5"], "--progress-every: must be 0 or more, not -5"),
    (["--registry", "http://localhost:5000"], "--registry 'http://localhost:5000' must not include a scheme"),
    (["--password-stdin"], "--password-stdin needs --username"),
    (["--nope"], "unrecognized arguments: --nope"),
])
def test_bad_arguments_exit_2(tmp_path: Path, args: list[str], expected: str) -> None:
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "a", "context": "a"}])
    result = dockpool("run", str(path), *args, env={"DOCKER_HOST": "unix:///nonexistent"})
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr


def test_registry_option_replaces_an_invalid_registry_in_the_file(tmp_path: Path) -> None:
    """--registry is what the run pushes to: the file's own (invalid) one must not stop it,
    and the project is validated once, with the registry and builder the run will use."""
    write_image(tmp_path, "a")
    path = write_project(tmp_path, [{"name": "a", "context": "a"}], registry="http://old:5000")
    refused = dockpool("run", str(path), env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert refused.returncode == 2 and "must not include a scheme" in refused.stderr
    result = dockpool("run", str(path), "--registry", "localhost:5000",
                      env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    assert result.returncode == 3, result.stderr  # on to the engine, which is not there
    assert "scheme" not in result.stderr


@pytest.mark.parametrize("content, expected", [
    (None, "no such project file"),
    ('[[image]]\nname = "UPPER"\ncontext = "a"', "image 1 ('UPPER'): name 'UPPER' is not a valid repository name"),
    ("[concurrency]\nbuilders = 100", "builders must be between 1 and 64, not 100"),
    ("not toml at all", "TOML syntax error"),
])
def test_bad_project_exits_2(tmp_path: Path, content: str | None, expected: str) -> None:
    write_image(tmp_path, "a")
    path = tmp_path / "p.toml"
    if content is not None:
        path.write_text(content)
    result = dockpool("run", str(path))
    assert result.returncode == 2
    assert f"error: {path}: " in result.stderr and expected in result.stderr


@pytest.mark.docker
def test_terminal_gets_live_bars(tmp_path: Path, registry: Registry) -> None:
    project = simple_project(tmp_path, 2, registry=registry.address)
    text = _run_in_terminal([sys.executable, "-m", "gui", "run", str(project.path)], rows=24)
    assert "overall [" in text and "\x1b[" in text  # bars, redrawn in place
    assert "2 pushed in" in text


@pytest.mark.docker
def test_second_ctrl_c_still_exits_130_with_a_report(tmp_path: Path, base_image: str) -> None:
    for index in range(2):
        write_image(tmp_path, f"slow{index}", base=base_image, run="sleep 60")
    path = write_project(tmp_path, [{"name": f"slow{i}", "context": f"slow{i}"} for i in range(2)])
    report = tmp_path / "r.json"
    process = subprocess.Popen([sys.executable, "-m", "gui", "run", str(path), "--report", str(report)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    seen = ""
    while "RUN sleep 60" not in seen and time.monotonic() < deadline:
        seen += process.stdout.readline()
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)  # an impatient user presses again
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, out + err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert {i["status"] for i in json.loads(report.read_text())["images"]} == {"cancelled"}


@pytest.mark.docker
def test_a_supervisor_that_dies_silently_does_not_hang_the_cli(tmp_path: Path, registry: Registry,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A supervisor bug that ends its thread without RunFinished: the CLI notices, fails the
    unfinished images and writes the report, instead of waiting forever."""
    from gui.cli.main import build_parser, run_command
    from gui.pipeline.supervisor import Pipeline

    monkeypatch.setattr(Pipeline, "_supervise", lambda self: None)
    project = simple_project(tmp_path, 2, registry=registry.address)
    args = build_parser().parse_args(["run", str(project.path), "--report", str(tmp_path / "r.json")])
    out, err = io.StringIO(), io.StringIO()
    result: list[int] = []
    worker = threading.Thread(target=lambda: result.append(run_command(args, out, err)), daemon=True)
    worker.start()
    worker.join(30)
    assert result == [1], out.getvalue()
    assert "supervisor stopped unexpectedly" in out.getvalue()
    report = json.loads((tmp_path / "r.json").read_text())
    assert {(i["status"], i["error_kind"]) for i in report["images"]} == {("failed", "other")}


def _run_in_terminal(command: list[str], rows: int, env: dict[str, str] | None = None) -> str:
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 100, 0, 0))
    process = subprocess.Popen(command, stdout=follower, stderr=follower, close_fds=True,
                               env={**os.environ, **(env or {})})
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the program has ended
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(120) == 0, output.decode(errors="replace")[-2000:]
    return output.decode(errors="replace")


@pytest.mark.docker
def test_live_bars_fit_a_short_terminal(tmp_path: Path, base_image: str) -> None:
    for index in range(12):
        write_image(tmp_path, f"b{index:02d}", base=base_image, run="sleep 3")
    path = write_project(tmp_path, [{"name": f"b{i:02d}", "context": f"b{i:02d}"} for i in range(12)],
                         builders=12)
    text = _run_in_terminal([sys.executable, "-m", "gui", "run", str(path)], rows=10)
    redraws = [int(n) for n in re.findall(r"\x1b\[(\d+)F", text)]
    assert redraws and max(redraws) <= 8, max(redraws)  # never more lines than the terminal has
    assert "... and " in text and "building" in text


@pytest.mark.docker
@pytest.mark.parametrize("setting", [{"DOCKPOOL_ANSI": "0"}, {"TERM": "dumb"}])
def test_terminals_without_ansi_get_lines(tmp_path: Path, setting: dict[str, str]) -> None:
    """Windows consoles where virtual-terminal processing cannot be switched on take the
    same path (DOCKPOOL_ANSI=0 forces it here)."""
    project = simple_project(tmp_path, 1, registry="")
    text = _run_in_terminal([sys.executable, "-m", "gui", "run", str(project.path)], rows=24, env=setting)
    assert "\x1b[" not in text
    assert re.search(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d built +img00", text, re.M)


@pytest.mark.docker
def test_ci_logs_get_a_progress_line_for_the_whole_run(tmp_path: Path, base_image: str) -> None:
    """#11: in a CI log of hundreds of images, each image's own lines do not say how far the
    run is. Line output adds one progress line every --progress-every seconds (30 by
    default; 0: none), counting every image by state."""
    images = []
    for index in range(3):
        write_image(tmp_path, f"slow{index}", base=base_image, run="sleep 3")
        images.append({"name": f"slow{index}", "context": f"slow{index}"})
    path = write_project(tmp_path, images, builders=2)
    result = dockpool("run", str(path), "--progress-every", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    progress = re.findall(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d progress +(.*)$", result.stdout, re.M)
    assert progress, result.stdout
    assert any(re.fullmatch(r"0/3 done, 2 building, 1 queued, \d\d:\d\d elapsed", line) for line in progress), \
        progress
    assert any(re.fullmatch(r"2/3 done \(2 built\), 1 building, \d\d:\d\d elapsed", line) for line in progress), \
        progress
    quiet = dockpool("run", str(path), "--progress-every", "0")
    assert quiet.returncode == 0 and " progress " not in quiet.stdout, quiet.stdout
    assert dockpool("run", str(path), "--progress-every", "soon").returncode == 2
