"""The headless runner: `dockpool run PROJECT.toml` (also `python -m gui run`).

Same project files and engine as the window. On a terminal it draws live
progress bars; otherwise (CI logs, pipes) it prints timestamped lines.
"""

from __future__ import annotations

import argparse
import getpass
import queue
import sys
from collections import deque
from pathlib import Path
from typing import TextIO

from .. import __version__
from ..pipeline import events as ev
from ..pipeline import project as projects
from ..pipeline import reference
from ..pipeline.docker_engine import EngineUnreachable, connect
from .render import LineRenderer, LiveRenderer, Renderer, summary_table
from ..pipeline.report import RunReport
from ..pipeline.supervisor import Pipeline, RunOptions

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


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


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
    run.add_argument("--retries", type=_bounded(0, 20), default=2,
                     help="retries of a failed push (or a build whose worker died); default 2")
    run.add_argument("--stall-timeout", type=_seconds, default=60.0,
                     help="abort and retry a push with no progress for this many seconds; default 60")
    run.add_argument("--report", type=Path, help="write the JSON run report here")
    run.add_argument("--username", help="registry user for this run (else Docker's stored login)")
    run.add_argument("--password-stdin", action="store_true",
                     help="read the registry password or token from standard input")
    run.add_argument("--verbose", "-v", action="store_true", help="print every build and push log line")
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


def run_command(args: argparse.Namespace, out: TextIO = sys.stdout, err: TextIO = sys.stderr) -> int:
    try:
        project = projects.load(args.project)
    except projects.ProjectError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=err)
        return EXIT_BAD_INPUT
    if args.registry is not None:
        if (problem := reference.registry_problem(args.registry)):
            print(f"error: --registry '{args.registry}' {problem}", file=err)
            return EXIT_BAD_INPUT
        project.registry = args.registry
        problems = projects.validate(project)
        if problems:
            for problem in problems:
                print(f"error: {problem}", file=err)
            return EXIT_BAD_INPUT
    try:
        auth = _credentials(args)
    except ValueError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_BAD_INPUT

    try:
        _, engine = connect()
    except EngineUnreachable as exc:
        print(f"error: {exc}", file=err)
        print("hint: start Docker (or Docker Desktop), or point DOCKER_HOST at a running engine", file=err)
        return EXIT_ENGINE_UNREACHABLE

    options = RunOptions.from_project(project, builders=args.builders, pushers=args.pushers,
                                      retries=args.retries, stall_timeout=args.stall_timeout, auth=auth)
    images = project.enabled_images
    target = options.registry or "local images only (no registry: build only)"
    print(f"{engine}", file=out)
    print(f"{len(images)} image(s) -> {target}; builders {options.builders}, pushers {options.pushers}",
          file=out)
    pipeline = Pipeline(project, options, api_version=engine.api_version)
    renderer: Renderer = (LiveRenderer(out, pipeline.report) if out.isatty()
                          else LineRenderer(out, pipeline.report, verbose=args.verbose))
    report = _drive(pipeline, renderer, args.verbose)
    renderer.close()
    print(summary_table(report), file=out)
    if args.report:
        try:
            args.report.write_text(report.to_json() + "\n", encoding="utf-8")
        except OSError as exc:
            print(f"error: cannot write the report to {args.report}: {exc.strerror}", file=err)
    if report.cancelled:
        return EXIT_CANCELLED
    return EXIT_OK if report.succeeded else EXIT_FAILED


def _drive(pipeline: Pipeline, renderer: Renderer, verbose: bool) -> RunReport:
    """Feed events to the renderer until the run ends; Ctrl+C cancels the run."""
    recent: dict[str, deque[str]] = {}
    pipeline.start()
    while True:
        try:
            try:
                record = pipeline.events.get(timeout=0.1)
            except queue.Empty:
                renderer.tick()
                continue
            if isinstance(record, ev.RunFinished):
                return record.report
            if isinstance(record, ev.LogLine):
                recent.setdefault(record.image, deque(maxlen=FAILURE_CONTEXT_LINES)).append(record.text)
            context = recent.get(record.image, ()) if isinstance(
                record, (ev.BuildFailed, ev.PushFailed)) and not verbose else ()
            renderer.handle(record, list(context))
        except KeyboardInterrupt:
            renderer.note("cancelling (Ctrl+C) ...")
            pipeline.cancel()


def usage() -> str:
    return build_parser().format_usage()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_command(args)
