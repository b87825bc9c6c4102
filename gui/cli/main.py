"""The headless runner: `dockpool run PROJECT.toml` (also `python -m gui run`).

Same project files and engine as the window. On a terminal that understands
ANSI codes it draws live progress bars; otherwise (CI logs, pipes, old Windows
consoles) it prints timestamped lines.
"""

from __future__ import annotations

import argparse
import getpass
import math
import queue
import signal
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any, TextIO

from .. import __version__
from ..pipeline import events as ev
from ..pipeline import project as projects
from ..pipeline import reference
from ..pipeline.build_backend import INSTALL_HINT, BackendUnavailable, backend_problems, resolve_backend
from ..pipeline.docker_engine import EngineUnreachable, connect
from ..pipeline.report import RunReport
from ..pipeline.supervisor import Pipeline, RunOptions
from ..pipeline.workers import prestart
from .render import (PROGRESS_EVERY, LineRenderer, LiveRenderer, Renderer, summary_table,
                     terminal_can_redraw)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_ENGINE_UNREACHABLE = 3
EXIT_CANCELLED = 130
FAILURE_CONTEXT_LINES = 15


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep our message format
        self.print_usage(sys.stderr)
        print(f"dockpool: error: {message}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _bounded(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {value}")
        return value
    return parse


def _seconds(text: str, zero_allowed: bool = False) -> float:
    """A finite number of seconds, more than 0 (or 0 and more: 0 then means never)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_allowed):
        raise argparse.ArgumentTypeError(f"must be {'0 or more' if zero_allowed else 'more than 0'}, not {text}")
    return value


def _interval(text: str) -> float:
    return _seconds(text, zero_allowed=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dockpool", description="Build many Docker images at once and push "
                     "them through a small pool of pushers. Without arguments, opens the window.")
    parser.add_argument("--version", action="version", version=f"dockpool {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="build and push every enabled image of a project")
    run.add_argument("project", type=Path, help="the project file (.toml)")
    limit = projects.MAX_CONCURRENCY
    run.add_argument("--builders", type=_bounded(1, limit), help="images built at the same time")
    run.add_argument("--pushers", type=_bounded(1, limit), help="images pushed at the same time")
    run.add_argument("--registry", help="registry prefix, overriding the project's ('' = build only)")
    run.add_argument("--push-via", choices=projects.PUSH_PATHS,
                     help="direct: Dockpool uploads the layers itself (default); engine: the engine pushes")
    run.add_argument("--retries", type=_bounded(0, 20), default=2,
                     help="retries of a failed push (or a build whose worker died); default 2")
    run.add_argument("--stall-timeout", type=_seconds, default=60.0,
                     help="abort and retry an upload with no progress for this many seconds; default 60")
    run.add_argument("--build-timeout", type=_seconds,
                     help="stop and fail a build running longer than this many seconds; default none")
    run.add_argument("--builder-backend", choices=projects.BACKENDS,
                     help="auto (BuildKit when a docker CLI can, else classic), buildkit or classic")
    run.add_argument("--docker-cli", type=Path, help="the docker CLI that builds with BuildKit")
    run.add_argument("--report", type=Path, help="write the JSON run report here")
    run.add_argument("--log-dir", type=Path, help="write each image's whole log to a file in this folder")
    run.add_argument("--username", help="registry user for this run (else Docker's stored login)")
    run.add_argument("--password-stdin", action="store_true",
                     help="read the registry password or token from standard input")
    run.add_argument("--verbose", "-v", action="store_true", help="print every build and push log line")
    run.add_argument("--progress-every", type=_interval, default=PROGRESS_EVERY, metavar="S",
                     help=f"without live bars (CI logs, pipes): a line counting the images by state every "
                          f"S seconds (default {PROGRESS_EVERY:.0f}; 0: none)")
    return parser


def _credentials(args: argparse.Namespace) -> dict[str, str] | None:
    if not args.username:
        if args.password_stdin:
            raise ValueError("--password-stdin needs --username")
        return None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass(f"Password for {args.username}: ")
    else:
        raise ValueError("--username needs --password-stdin when standard input is not a terminal")
    return {"username": args.username, "password": password}


def _print_problems(problems: list[str], err: TextIO) -> None:
    for problem in problems:
        print(f"error: {problem}", file=err)


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    prestart()  # the fork server imports the worker's modules while the project loads
    try:  # the file's structure now; the rest once, below, with --registry and the builder known
        project = projects.load(args.project, strict=False)
    except projects.ProjectError as exc:
        _print_problems(exc.problems, err)
        return EXIT_BAD_INPUT
    if args.registry is not None:
        if (problem := reference.registry_problem(args.registry)):
            print(f"error: --registry '{args.registry}' {problem}", file=err)
            return EXIT_BAD_INPUT
        project.registry = args.registry
    try:
        auth = _credentials(args)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    try:
        backend = resolve_backend(project.build, choice=args.builder_backend,
                                  cli=str(args.docker_cli) if args.docker_cli else None)
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT
    problems = projects.validate(project, backend.kind) + backend_problems(project, backend)
    if problems:
        _print_problems(problems, err)
        if backend.kind == "classic" and any("needs BuildKit" in problem for problem in problems):
            print(f"hint: {backend.detail}; to build these images, {INSTALL_HINT}", file=err)
        return EXIT_BAD_INPUT

    try:
        _, engine = connect()
    except EngineUnreachable as exc:
        print(f"error: {exc}", file=err)
        print("hint: start Docker (or Docker Desktop), or point DOCKER_HOST at a running engine", file=err)
        return EXIT_ENGINE_UNREACHABLE

    options = RunOptions.from_project(
        project, builders=args.builders, pushers=args.pushers, retries=args.retries,
        stall_timeout=args.stall_timeout, build_timeout=args.build_timeout, auth=auth,
        push_via=args.push_via, backend=backend,
        insecure=project.insecure or reference.is_insecure(project.registry, engine.insecure_registries))
    images = project.enabled_images
    target = options.registry or "local images only (no registry: build only)"
    print(f"{engine}", file=out)
    print(f"build: {backend}", file=out)
    if options.registry:
        print(f"push: {'Dockpool uploads directly' if options.push_via == 'direct' else 'through the engine'}",
              file=out)
    print(f"{len(images)} image(s) -> {target}; builders {options.builders}, pushers {options.pushers}",
          file=out)
    # The workers of the packaged CLI are windowed processes with no console: what they would
    # print (a traceback, a crash dump) goes to the log folder when there is one.
    # "_workers.log": runlogs.file_name strips leading underscores, so no image's log has this name.
    worker_log = str(Path(args.log_dir) / "_workers.log") if args.log_dir else None
    pipeline = Pipeline(project, options, api_version=engine.api_version, log_dir=args.log_dir,
                        worker_log=worker_log)
    renderer: Renderer = (LiveRenderer(out, pipeline.report) if terminal_can_redraw(out)
                          else LineRenderer(out, pipeline.report, args.verbose, args.progress_every))
    with _Interrupts() as interrupts:  # until the report is written, Ctrl+C never tears it down
        report = _drive(pipeline, renderer, args.verbose, interrupts)
        renderer.close()
        print(summary_table(report), file=out)
        if args.log_dir:
            print(f"logs: {args.log_dir}", file=out)
        if args.report:
            try:
                args.report.write_text(report.to_json() + "\n", encoding="utf-8")
            except OSError as exc:
                print(f"error: cannot write the report to {args.report}: {exc.strerror}", file=err)
    if report.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if report.succeeded else EXIT_FAILED


class _Interrupts:
    """Ctrl+C as a count, read by the event loop: the first cancels the run, a second one
    only says it is being cancelled. Nothing is raised, so no Ctrl+C can tear the run
    down half-way and lose the report. Once a run was cancelled, further presses are
    ignored until the process has exited (the report is written by then)."""

    def __init__(self) -> None:
        self.count = 0
        self.handled = 0
        self._previous: Any = None

    def __enter__(self) -> _Interrupts:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGINT, self._pressed)
        return self

    def _pressed(self, *_: Any) -> None:
        self.count += 1

    def __exit__(self, *_: Any) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, signal.SIG_IGN if self.count else self._previous)


def _drive(pipeline: Pipeline, renderer: Renderer, verbose: bool, interrupts: _Interrupts) -> RunReport:
    """Feed events to the renderer until the run ends; Ctrl+C cancels the run."""
    recent: dict[str, deque[str]] = {}
    pipeline.start()
    while True:
        if interrupts.count > interrupts.handled:
            if interrupts.handled == 0:
                renderer.note("cancelling (Ctrl+C) ...")
                pipeline.cancel()
            else:
                renderer.note("already cancelling; waiting for the workers to stop ...")
            interrupts.handled = interrupts.count
        try:
            record = pipeline.events.get(timeout=0.1)
        except queue.Empty:
            alive = pipeline.alive
            try:  # it may have queued its last records and ended between the two looks
                record = pipeline.events.get_nowait()
            except queue.Empty:
                if not alive:
                    return _abandoned(pipeline, renderer)
                renderer.tick()
                continue
        if isinstance(record, ev.RunFinished):
            return record.report
        if isinstance(record, ev.LogLine):
            recent.setdefault(record.image, deque(maxlen=FAILURE_CONTEXT_LINES)).extend(
                record.text.splitlines() or [""])  # a record may hold a burst of lines
        context: Any = ()
        if isinstance(record, (ev.BuildFailed, ev.PushFailed)):
            lines = recent.pop(record.image, ())
            context = () if verbose else lines
        elif isinstance(record, (ev.BuildDone, ev.PushDone, ev.Cancelled)):
            recent.pop(record.image, None)  # memory per image stays constant
        renderer.handle(record, list(context))


def _abandoned(pipeline: Pipeline, renderer: Renderer) -> RunReport:
    """The supervisor thread ended without RunFinished (a bug): end the run anyway, with
    every unfinished image failed and the report written, instead of waiting forever."""
    message = "the run's supervisor stopped unexpectedly (a Dockpool bug)"
    renderer.note(f"error: {message}; see the log for details")
    pipeline.cancel()
    report = pipeline.report
    report.abandon(message, "please report this as a Dockpool bug, with the log")
    return report


def usage() -> str:
    return build_parser().format_usage()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args)
