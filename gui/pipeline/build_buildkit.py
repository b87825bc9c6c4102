"""Building with BuildKit through the docker CLI, as a child of the builder worker.

`docker buildx build` where the buildx plugin is there, else `docker build` with
DOCKER_BUILDKIT=1 (CLIs up to 22.x); build_backend decides which. The CLI's
`--progress=plain` output is read line by line into the same records as the
classic builder's: step k/n, log lines, and a failure that carries the daemon's
message, classified by failures.classify.

The CLI child must never outlive the build it belongs to. It runs in a session
of its own (a terminal's Ctrl+C goes to Dockpool, which cancels in order) and
the supervisor learns its pid (BuildProcess) to stop it with the worker. If the
worker itself is killed from outside, Linux sends the child SIGKILL
(PR_SET_PDEATHSIG) and Windows closes the job object that holds it; BuildKit
cancels the solve when its client goes away.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import events as ev
from . import scratch
from .failures import classify
from .streams import LineBatch
from .tasks import BuildTask

READ_SIZE = 65536  # bytes of the CLI's output read at once: what has arrived, up to this
_STEP_RE = re.compile(r"^#(\d+) \[(?:([^\]\s]+) )?(\d+)/(\d+)\] (.*)$")
_NOISE_RE = re.compile(r"^#\d+ sha256:[0-9a-f]{64}$")
_VERTEX_ERROR_RE = re.compile(r"^#\d+ ERROR: (.*)$")
_CLI_ERROR_RE = re.compile(r"^(?:ERROR|error): (.*)$")
_EXCERPT_RE = re.compile(r"^\s*(>>>\s*)?\d+ \|")  # newer CLIs quote the failing Dockerfile lines


def command(task: BuildTask, iidfile: str) -> list[str]:
    """The CLI's arguments for one build (secrets by file path only: never a value)."""
    backend = task.backend
    args = [backend.cli, "buildx", "build"] if backend.buildx else [backend.cli, "build"]
    args += ["--progress=plain", "--iidfile", iidfile, "-f", str(Path(task.context) / task.dockerfile)]
    if backend.buildx:
        # The result goes into the engine whatever builder buildx uses (a docker-container
        # or remote one chosen with `docker buildx use` keeps it in its own cache otherwise).
        args += ["--builder", backend.builder] if backend.builder else []
        args.append("--load")
    for ref in task.refs:
        args += ["-t", ref]
    for key, value in task.build_args.items():
        args += ["--build-arg", f"{key}={value}"]
    if task.target:
        args += ["--target", task.target]
    if task.network and task.network != "default":
        args += ["--network", task.network]
    if task.platform:
        args += ["--platform", task.platform]
    for secret_id, path in task.secrets.items():
        args += ["--secret", f"id={secret_id},src={path}"]
    for spec in task.ssh:
        ssh_id, separator, paths = spec.partition("=")
        if separator:  # key files: ~ expanded, relative to the project (the CLI runs there)
            spec = ssh_id + "=" + ",".join(os.path.expanduser(path) for path in paths.split(","))
        args += ["--ssh", spec]
    for source in task.cache_from:
        args += ["--cache-from", source]
    for destination in task.cache_to:
        args += ["--cache-to", destination]
    args.append(task.context)
    return args


def _die_with_parent() -> None:  # runs in the child between fork and exec (Linux)
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


_job_handle: Any = None


def _kill_with_worker(process: subprocess.Popen[bytes]) -> None:
    """Windows: put the child in a job object that kills it when this process ends."""
    global _job_handle
    import ctypes
    from ctypes import wintypes

    class BasicLimits(ctypes.Structure):
        _fields_ = [("PerProcessUserTimeLimit", ctypes.c_int64), ("PerJobUserTimeLimit", ctypes.c_int64),
                    ("LimitFlags", wintypes.DWORD), ("MinimumWorkingSetSize", ctypes.c_size_t),
                    ("MaximumWorkingSetSize", ctypes.c_size_t), ("ActiveProcessLimit", wintypes.DWORD),
                    ("Affinity", ctypes.c_size_t), ("PriorityClass", wintypes.DWORD),
                    ("SchedulingClass", wintypes.DWORD)]

    class IoCounters(ctypes.Structure):
        _fields_ = [(name, ctypes.c_uint64) for name in (
            "ReadOperationCount", "WriteOperationCount", "OtherOperationCount", "ReadTransferCount",
            "WriteTransferCount", "OtherTransferCount")]

    class ExtendedLimits(ctypes.Structure):
        _fields_ = [("BasicLimitInformation", BasicLimits), ("IoInfo", IoCounters),
                    ("ProcessMemoryLimit", ctypes.c_size_t), ("JobMemoryLimit", ctypes.c_size_t),
                    ("PeakProcessMemoryUsed", ctypes.c_size_t), ("PeakJobMemoryUsed", ctypes.c_size_t)]

    JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE = 0x2000
    EXTENDED_LIMIT_INFORMATION = 9
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
    if _job_handle is None:
        job = kernel32.CreateJobObjectW(None, None)
        limits = ExtendedLimits()
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE
        kernel32.SetInformationJobObject(job, EXTENDED_LIMIT_INFORMATION, ctypes.byref(limits),
                                         ctypes.sizeof(limits))
        _job_handle = job
    kernel32.AssignProcessToJobObject(_job_handle, wintypes.HANDLE(int(process._handle)))  # type: ignore[attr-defined]


def _start(args: list[str], env: dict[str, str], cwd: str | None) -> subprocess.Popen[bytes]:
    options: dict[str, Any] = {"stdin": subprocess.DEVNULL, "stdout": subprocess.PIPE,
                               "stderr": subprocess.STDOUT, "env": env, "cwd": cwd or None}
    if sys.platform == "win32":
        options["creationflags"] = subprocess.CREATE_NO_WINDOW | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True
        if sys.platform.startswith("linux"):
            options["preexec_fn"] = _die_with_parent
    process = subprocess.Popen(args, **options)
    if sys.platform == "win32":
        _kill_with_worker(process)
    return process


class _Progress:
    """Turns the plain progress output into step records and the failure message."""

    def __init__(self, image: str) -> None:
        self.image = image
        self.stage_sizes: dict[str, int] = {}
        self.steps_seen: set[str] = set()
        self.error: str | None = None  # the last error the CLI printed
        self.step_error: str | None = None  # the failing step's own ERROR line
        self.error_marked = False  # the CLI printed an "ERROR:" line, which wins
        self.last_line = ""  # the CLI's last own line, when it printed nothing that says what failed

    def feed(self, line: str, emit: Any) -> None:
        if not line.strip() or _NOISE_RE.match(line):
            return
        error_line = False
        if (match := _STEP_RE.match(line)):
            vertex, stage, total, text = match[1], match[2] or "", int(match[4]), match[5]
            self.stage_sizes[stage] = total
            if vertex not in self.steps_seen:
                self.steps_seen.add(vertex)
                emit(ev.BuildStep(self.image, len(self.steps_seen), sum(self.stage_sizes.values()),
                                  f"[{stage + ' ' if stage else ''}{match[3]}/{total}] {text}"))
        elif (match := _VERTEX_ERROR_RE.match(line)):
            self.step_error, error_line = match[1], True
        elif (match := _CLI_ERROR_RE.match(line)):
            self.error, self.error_marked, error_line = match[1].strip(), True, True
        elif not line.startswith(("#", "-----", " > ")) and not _EXCERPT_RE.match(line):
            self.last_line = line.strip()
            if not self.error_marked and re.search(r"failed|error", line, re.I):
                # The 20.10 CLI closes with the daemon's message and no ERROR: prefix.
                self.error, error_line = line.strip(), True
        emit(ev.LogLine(self.image, ev.Stage.BUILD, line, error=error_line))


def run_build(clients: Any, task: BuildTask, emit: Any) -> None:
    """Build one image with the docker CLI; emit BuildDone or BuildFailed."""
    del clients  # the CLI talks to the engine itself
    emit(ev.BuildStarted(task.image, task.attempt, time.time()))
    progress = _Progress(task.image)
    folder = scratch.make("build")  # named after this process: removed for it if it is killed
    try:
        iidfile = os.path.join(folder, "iid")
        env = {**os.environ, "DOCKER_BUILDKIT": "1", "BUILDKIT_PROGRESS": "plain"}
        try:
            process = _start(command(task, iidfile), env, task.base_dir)
        except OSError as exc:
            failure = ev.Failure(ev.FailureKind.ENGINE, f"the docker CLI {task.backend.cli} cannot be run: {exc}",
                                 "check [build] docker / --docker-cli, or choose backend = \"classic\"")
            emit(ev.LogLine(task.image, ev.Stage.BUILD, failure.message, error=True))
            emit(ev.BuildFailed(task.image, failure))
            return
        emit(ev.BuildProcess(task.image, process.pid))
        assert process.stdout is not None
        batch = LineBatch(emit)  # the lines of one read go as one record
        partial = b""
        while chunk := process.stdout.read1(READ_SIZE):
            *lines, partial = (partial + chunk).split(b"\n")
            if len(partial) > READ_SIZE:  # a step printing megabytes without a newline: in pieces
                lines.append(partial)
                partial = b""
            for raw in lines:
                progress.feed(raw.decode("utf-8", "replace").rstrip("\r"), batch)
            batch.flush()
        if partial:
            progress.feed(partial.decode("utf-8", "replace").rstrip("\r"), emit)
        code = process.wait()
        image_id = Path(iidfile).read_text().strip() if os.path.exists(iidfile) else ""
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if code == 0 and image_id:
        emit(ev.BuildDone(task.image, image_id))
        return
    message = progress.error or progress.step_error or progress.last_line or (
        f"the docker CLI exited with code {code}" if code else "the build wrote no image id")
    emit(ev.BuildFailed(task.image, classify(message, ev.Stage.BUILD)))
