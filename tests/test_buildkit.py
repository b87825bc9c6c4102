"""BuildKit builds through the docker CLI, on the real engine and registry.

This machine has Debian's 20.10 CLI (BuildKit built in) behind a 28.x CLI without
the buildx plugin (which cannot build with BuildKit): detection must pick the
first that can. No `# syntax=` lines: that pulls a frontend image, and the tests
run offline on the engine's built-in frontend.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from gui.devservices import Registry
from gui.pipeline import events as ev
from gui.pipeline.build_backend import BackendUnavailable, candidates, probe, resolve_backend
from gui.pipeline.events import Status
from gui.pipeline.project import BuildSettings, load
from tests.helpers import left_behind, own_temp_folder, run_pipeline, wait_until_dead, write_image, write_project

pytestmark = pytest.mark.docker
SECRET = "s3cr3t-value-4417"


def _buildkit():
    backend = resolve_backend(BuildSettings())
    assert backend.kind == "buildkit", backend.detail
    return backend


def _docker_processes(marker: str) -> list[int]:
    """docker CLI processes whose arguments mention `marker` (a test's own folder)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == "docker" and any(marker in arg for arg in argv):
            found.append(int(entry.name))
    return found


def test_detection_skips_a_cli_that_cannot_build_with_buildkit() -> None:
    clis = candidates()
    abilities = {path: probe(path) for path in clis}
    incapable = [a for a in abilities.values() if not a.can_build]
    capable = [a for a in abilities.values() if a.can_build]
    assert incapable and capable, f"this test needs both kinds of CLI on PATH: {abilities}"
    assert "no buildx plugin" in incapable[0].problem
    backend = _buildkit()
    assert backend.cli == capable[0].path and not backend.buildx
    assert "built-in BuildKit" in backend.detail


def test_mounts_secrets_target_and_build_args(tmp_path: Path, registry: Registry, docker_client,
                                              base_image: str) -> None:
    folder = tmp_path / "kit"
    folder.mkdir()
    (folder / "run.sh").write_text("#!/bin/sh\ncat /greeting /secret-ok /cache-count\n")
    (folder / "Dockerfile").write_text(
        f"FROM {base_image} AS base\n"
        "ARG GREETING=hello\n"
        "RUN --mount=type=cache,target=/cache sh -c 'echo $GREETING >> /cache/runs && wc -l < /cache/runs > "
        "/cache-count'\n"
        # Compared by hash: the command itself ends up in the image's history.
        "RUN --mount=type=secret,id=token sh -c 'sha256sum /run/secrets/token | grep -q "
        f"{hashlib.sha256(SECRET.encode()).hexdigest()} && echo secret-ok > /secret-ok'\n"
        "FROM base AS final\n"
        "ARG GREETING\n"
        "COPY --chmod=755 run.sh /run.sh\n"
        "RUN echo \"$GREETING\" > /greeting\n"
        "FROM base AS unused\n"
        "RUN false\n")
    (tmp_path / "token.txt").write_text(SECRET)
    project = load(write_project(tmp_path, [{"name": "kit", "context": "kit", "target": "final",
                                            "build_args": {"GREETING": "bonjour"},
                                            "secrets": {"token": "token.txt"}}], registry=registry.address))
    run = run_pipeline(project, backend=_buildkit(), log_dir=tmp_path / "logs")
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error
    assert run.report.backend == "buildkit"
    steps = run.of(ev.BuildStep)
    assert steps and steps[-1].total >= 4 and any("RUN --mount=type=cache" in s.text for s in steps)

    # Pulled back from the registry and run: the build arg, the secret check, the cache mount.
    docker_client.remove_image(image.image_id, force=True)
    docker_client.pull(f"{registry.address}/kit", tag="latest")
    container = docker_client.create_container(f"{registry.address}/kit:latest", command=["/run.sh"],
                                               network_disabled=True)
    try:
        docker_client.start(container)
        assert docker_client.wait(container, timeout=60)["StatusCode"] == 0
        assert docker_client.logs(container).decode().split() == ["bonjour", "secret-ok", "1"]
        # The secret is nowhere in the image: not in its files, its config or its history.
        exported = b"".join(docker_client.export(container))
        assert SECRET.encode() not in exported
    finally:
        docker_client.remove_container(container, force=True)
    saved = b"".join(docker_client.get_image(f"{registry.address}/kit:latest"))
    with tarfile.open(fileobj=io.BytesIO(saved)) as archive:
        for member in archive.getmembers():
            if member.isfile():
                assert SECRET.encode() not in archive.extractfile(member).read(), member.name
    assert SECRET not in json.dumps(docker_client.history(f"{registry.address}/kit:latest"))
    # …nor in what Dockpool said or kept.
    assert SECRET not in run.report.to_json()
    assert not any(SECRET in repr(event) for event in run.events)
    assert SECRET not in (tmp_path / "logs" / "kit.log").read_text()

    # The cache mount keeps its contents between builds (a new build arg forces the step).
    project.images[0].build_args["GREETING"] = "hallo"
    again = run_pipeline(project, backend=_buildkit())
    assert again.report.succeeded
    docker_client.pull(f"{registry.address}/kit", tag="latest")
    container = docker_client.create_container(f"{registry.address}/kit:latest", command=["cat", "/cache-count"],
                                               network_disabled=True)
    try:
        docker_client.start(container)
        docker_client.wait(container, timeout=60)
        assert docker_client.logs(container).decode().strip() == "2"
    finally:
        docker_client.remove_container(container, force=True)


def test_failing_run_is_a_build_step_with_its_output(tmp_path: Path, base_image: str) -> None:
    write_image(tmp_path, "broken", base=base_image, run="echo step-output-7 && exit 7")
    project = load(write_project(tmp_path, [{"name": "broken", "context": "broken"}]))
    run = run_pipeline(project, backend=_buildkit(), retries=2)
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "build-step", image.error
    assert image.build.attempts == 1, "a failing RUN is not retried"
    assert "exit code: 7" in image.error
    log = run.log("broken")
    assert any("step-output-7" in line for line in log)
    assert any(line.error and "exit code: 7" in line.text for line in run.of(ev.LogLine, "broken"))


def test_no_bridge_network_is_explained(tmp_path: Path, base_image: str) -> None:
    write_image(tmp_path, "bridged", base=base_image, run="true")
    project = load(write_project(tmp_path, [{"name": "bridged", "context": "bridged"}],
                                 build={"network": "default"}))
    run = run_pipeline(project, backend=_buildkit())
    [image] = run.report.images
    assert image.status is Status.FAILED and "network bridge not found" in image.error
    assert 'network = "host"' in image.hint


def test_cancel_mid_build_leaves_no_docker_process(tmp_path: Path, base_image: str) -> None:
    for index in range(2):
        write_image(tmp_path, f"slow{index}", base=base_image, run="sleep 60")
    path = write_project(tmp_path, [{"name": f"slow{i}", "context": f"slow{i}"} for i in range(2)])
    process = subprocess.Popen([sys.executable, "-m", "gui", "run", str(path), "--builder-backend", "buildkit"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    seen = ""
    while "RUN sleep 60" not in seen and time.monotonic() < deadline:
        seen += process.stdout.readline()
    assert _docker_processes(str(tmp_path)), "no docker CLI was building"
    os.killpg(process.pid, signal.SIGINT)
    pressed = time.monotonic()
    out, err = process.communicate(timeout=30)
    assert time.monotonic() - pressed < 5
    assert process.returncode == 130, out + err
    assert wait_until_dead(_docker_processes(str(tmp_path)), 2) == [], "a docker CLI child was left running"


def test_killed_builder_takes_its_docker_child_along(tmp_path: Path, base_image: str, monkeypatch) -> None:
    temp = own_temp_folder(tmp_path, monkeypatch)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process that has ended: its folders are an earlier application's, killed
    for name in (f"dockpool-build-{gone.pid}", f"dockpool-push-{gone.pid}-abc123de", "someone-else"):
        (temp / name).mkdir()
    write_image(tmp_path, "victim", base=base_image, run="sleep 8")
    project = load(write_project(tmp_path, [{"name": "victim", "context": "victim"}]))
    killed: dict[str, list[int]] = {}

    def kill_builder(pipeline, event) -> None:
        if isinstance(event, ev.BuildStep) and "RUN sleep" in event.text and not killed:
            killed["children"] = _docker_processes(str(tmp_path))
            [pid] = pipeline.worker_pids(ev.Stage.BUILD)
            os.kill(pid, signal.SIGKILL)  # only the worker: its CLI child must go with it
            killed["worker"] = [pid]

    run = run_pipeline(project, backend=_buildkit(), on_event=kill_builder)
    assert killed["children"]
    assert wait_until_dead(killed["children"], 5) == [], "the CLI child outlived its worker"
    [image] = run.report.images
    assert image.status is Status.BUILT and image.build.attempts == 2
    assert run.of(ev.RetryScheduled)[0].failure.kind is ev.FailureKind.WORKER_DIED
    assert left_behind(temp) == [], "the killed builder's temporary folder was left behind"
    assert (temp / "someone-else").is_dir()


def test_build_timeout_stops_a_buildkit_build(tmp_path: Path, base_image: str, monkeypatch) -> None:
    temp = own_temp_folder(tmp_path, monkeypatch)
    write_image(tmp_path, "forever", base=base_image, run="sleep 300")
    project = load(write_project(tmp_path, [{"name": "forever", "context": "forever"}], build={"timeout": 4}))
    run = run_pipeline(project, backend=_buildkit())
    [image] = run.report.images
    assert image.status is Status.FAILED and image.error_kind == "timeout"
    assert wait_until_dead(_docker_processes(str(tmp_path)), 5) == []
    assert left_behind(temp) == [], "the stopped build's temporary folder was left behind"


def _path_with(tmp_path: Path, *executables: str) -> str:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    for executable in executables:
        (folder / "docker").symlink_to(executable)
    return str(folder)


def test_auto_falls_back_to_classic_without_a_buildkit_cli(tmp_path: Path, registry: Registry) -> None:
    write_image(tmp_path, "plain")
    path = write_project(tmp_path, [{"name": "plain", "context": "plain"}], registry=registry.address)
    env = {**os.environ, "PATH": _path_with(tmp_path, "/usr/local/bin/docker")}  # 28.x, no buildx
    result = subprocess.run([sys.executable, "-m", "gui", "run", str(path), "--report", str(tmp_path / "r.json")],
                            capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "build: classic (Docker SDK, classic builder: no docker CLI here can build with BuildKit" in result.stdout
    assert "has no buildx plugin" in result.stdout
    assert json.loads((tmp_path / "r.json").read_text())["backend"] == "classic"


def test_buildkit_only_files_without_buildkit_say_what_to_install(tmp_path: Path) -> None:
    folder = tmp_path / "modern"
    folder.mkdir()
    (folder / "Dockerfile").write_text("FROM scratch\nRUN --mount=type=cache,target=/c true\n")
    path = write_project(tmp_path, [{"name": "modern", "context": "modern"}])
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    result = subprocess.run([sys.executable, "-m", "gui", "run", str(path)], capture_output=True, text=True,
                            env=env, timeout=60)
    assert result.returncode == 2
    assert "line 2: RUN --mount needs BuildKit, and only the classic builder is available" in result.stderr
    assert "docker-buildx-plugin" in result.stderr and "Docker Desktop" in result.stderr


def test_asking_for_buildkit_where_there_is_none_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="has no buildx plugin"):
        resolve_backend(BuildSettings(backend="buildkit", docker="/usr/local/bin/docker"))
    with pytest.raises(BackendUnavailable, match="does not exist"):
        resolve_backend(BuildSettings(), cli=str(tmp_path / "nope"))
    with pytest.raises(BackendUnavailable, match="builder 'remote'"):
        resolve_backend(BuildSettings(builder="remote"))
    assert resolve_backend(BuildSettings(), choice="classic").kind == "classic"
    assert shutil.which("docker")


def _task(tmp_path: Path, **fields) -> "BuildTask":
    from gui.pipeline.tasks import BuildBackend, BuildTask

    backend = fields.pop("backend", BuildBackend("buildkit", "/usr/bin/docker", buildx=True, detail="buildx"))
    return BuildTask("api", str(tmp_path), "Dockerfile", ("reg/api:1",), {}, "", 1, backend=backend, **fields)


def test_buildx_always_loads_the_result_into_the_engine(tmp_path: Path) -> None:
    """A builder chosen with `docker buildx use` (docker-container, remote) keeps its
    result in its own cache unless told --load: the push would then find no image."""
    from gui.pipeline.build_buildkit import command
    from gui.pipeline.tasks import BuildBackend

    assert "--load" in command(_task(tmp_path), "iid")
    named = command(_task(tmp_path, backend=BuildBackend("buildkit", "docker", buildx=True, builder="ci")), "iid")
    assert named[named.index("--builder") + 1] == "ci" and "--load" in named
    plain = command(_task(tmp_path, backend=BuildBackend("buildkit", "docker", buildx=False)), "iid")
    assert "--load" not in plain and plain[1] == "build"


def test_ssh_key_paths_are_expanded_and_cli_runs_in_the_project_folder(tmp_path: Path, monkeypatch) -> None:
    from gui.pipeline.build_buildkit import command

    monkeypatch.setenv("HOME", "/home/dev")
    args = command(_task(tmp_path, ssh=("default", "git=~/.ssh/id_ed25519,keys/deploy")), "iid")
    assert args[args.index("--ssh") + 1] == "default"
    assert "git=/home/dev/.ssh/id_ed25519,keys/deploy" in args  # relative: from the CLI's folder


@pytest.mark.parametrize("lines, expected", [
    # Docker 20.10's CLI: the daemon's message closes the output, with no ERROR: prefix.
    (["#5 [2/2] RUN false", "#5 ERROR: executor failed running [/bin/sh -c false]: exit code: 1",
      "executor failed running [/bin/sh -c false]: exit code: 1"],
     "executor failed running [/bin/sh -c false]: exit code: 1"),
    # Docker 23+/buildx: ERROR: lines, and the failing Dockerfile lines quoted (">>>" marks the line).
    (["#6 [2/2] RUN false", "#6 ERROR: process \"/bin/sh -c false\" did not complete successfully: exit code: 1",
      "------", " > [2/2] RUN false:", "------", "Dockerfile:2", "--------------------",
      "   1 |     FROM base", " >>> RUN false", "   2 | >>> RUN false", "--------------------",
      "ERROR: failed to solve: process \"/bin/sh -c false\" did not complete successfully: exit code: 1"],
     "failed to solve: process \"/bin/sh -c false\" did not complete successfully: exit code: 1"),
    # A CLI that ends with a message naming neither "error" nor "failed".
    (["#1 [internal] load build definition from Dockerfile", "unknown flag: --iidfile"], "unknown flag: --iidfile"),
])
def test_the_failure_message_is_the_clis_own(lines: list[str], expected: str) -> None:
    from gui.pipeline.build_buildkit import _Progress

    progress = _Progress("api")
    for line in lines:
        progress.feed(line, lambda record: None)
    assert (progress.error or progress.step_error or progress.last_line) == expected


def test_cache_backends_without_buildx_are_named(tmp_path: Path) -> None:
    from gui.pipeline.build_backend import backend_problems
    from gui.pipeline.tasks import BuildBackend

    write_image(tmp_path, "api")
    project = load(write_project(tmp_path, [{"name": "api", "context": "api",
                                             "cache_from": ["type=local,src=cache"], "cache_to": ["type=inline"]}]))
    builtin = BuildBackend("buildkit", "docker", buildx=False, detail="docker 20.10 (built-in BuildKit)")
    problems = backend_problems(project, builtin)
    assert any("cache_to needs docker buildx" in p for p in problems)
    assert any("cache_from 'type=local,src=cache'" in p and "image references only" in p for p in problems)
    assert backend_problems(project, BuildBackend("buildkit", "docker", buildx=True)) == []


def _ssh_add_files(context: Path) -> None:
    """The host's own ssh-add and the libraries it loads, into a build context: the image
    can then list the keys of the agent a build step is given (nothing can be pulled)."""
    ssh_add = shutil.which("ssh-add")
    assert ssh_add, "ssh-add is missing (Debian package openssh-client)"
    (context / "bin").mkdir()
    shutil.copy(ssh_add, context / "bin" / "ssh-add")
    libraries = context / "lib"
    libraries.mkdir()
    for line in subprocess.run(["ldd", ssh_add], capture_output=True, text=True, check=True).stdout.splitlines():
        path = line.split("=>")[-1].split("(")[0].strip()
        if path.startswith("/"):
            shutil.copy(path, libraries / Path(path).name)


def _fingerprint(public_key: Path) -> str:
    return subprocess.run(["ssh-keygen", "-lf", str(public_key)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def test_ssh_agent_and_key_files_reach_run_steps_and_stay_out_of_the_image(
        tmp_path: Path, registry: Registry, docker_client, base_image: str, monkeypatch) -> None:
    """`ssh = ["default", "deploy=keys/deploy"]`: a RUN step with an ssh mount sees the
    user's running agent, and another sees an agent that holds the project's key file;
    neither the keys nor the sockets end up in the image. `platform` is passed too."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("agent-key", "deploy"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys / name)],
                       check=True)
    socket_path = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(socket_path)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        monkeypatch.setenv("SSH_AUTH_SOCK", str(socket_path))
        subprocess.run(["ssh-add", "-q", str(keys / "agent-key")], check=True)

        context = tmp_path / "ssh"
        context.mkdir()
        _ssh_add_files(context)
        (context / "Dockerfile").write_text(
            f"FROM {base_image} AS probe\n"
            "COPY bin/ssh-add /usr/bin/ssh-add\n"
            "COPY lib/ld-linux-x86-64.so.2 /lib64/\n"
            "COPY lib/ /lib/x86_64-linux-gnu/\n"
            "RUN --mount=type=ssh,required=true ssh-add -l > /agent-keys\n"
            "RUN --mount=type=ssh,id=deploy,required=true ssh-add -l > /deploy-keys\n"
            f"FROM {base_image}\n"
            "COPY --from=probe /agent-keys /deploy-keys /\n")
        project = load(write_project(tmp_path, [{"name": "ssh", "context": "ssh", "platform": "linux/amd64",
                                                "ssh": ["default", "deploy=keys/deploy"]}],
                                     registry=registry.address))
        run = run_pipeline(project, backend=_buildkit(), log_dir=tmp_path / "logs")
    finally:
        agent.kill()
        agent.wait()
    [image] = run.report.images
    assert image.status is Status.PUSHED, image.error

    docker_client.remove_image(image.image_id, force=True)
    docker_client.pull(f"{registry.address}/ssh", tag="latest")
    inspected = docker_client.inspect_image(f"{registry.address}/ssh:latest")
    assert (inspected["Os"], inspected["Architecture"]) == ("linux", "amd64")
    container = docker_client.create_container(f"{registry.address}/ssh:latest",
                                               command=["cat", "/agent-keys", "/deploy-keys"], network_disabled=True)
    try:
        docker_client.start(container)
        assert docker_client.wait(container, timeout=60)["StatusCode"] == 0
        listed = docker_client.logs(container).decode().splitlines()
    finally:
        docker_client.remove_container(container, force=True)
    assert [line.split()[1] for line in listed] == [_fingerprint(keys / "agent-key.pub"),
                                                     _fingerprint(keys / "deploy.pub")]
    saved = b"".join(docker_client.get_image(f"{registry.address}/ssh:latest"))
    flat = saved.replace(b"\n", b"")
    for name in ("agent-key", "deploy"):
        private = b"".join((keys / name).read_bytes().splitlines()[1:-1])
        assert private[100:160] not in flat  # past the header every OpenSSH key shares: this key's own bytes
    assert "BEGIN OPENSSH PRIVATE KEY" not in (tmp_path / "logs" / "ssh.log").read_text()
