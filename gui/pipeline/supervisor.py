"""The pipeline: builder processes feed a bounded set of pusher processes.

One supervisor thread owns the whole run. It hands tasks to long-lived spawned
workers, reads their event records, keeps each image's state and the report,
and forwards every record to `Pipeline.events` for the caller (the CLI's
renderer, the window's controller). Because the supervisor, not a
multiprocessing.Pool, tracks which worker holds which image, a worker that is
killed or crashes costs only its own image (retried or failed), a stalled push
is aborted by killing its worker, and limits can change between dispatches.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from multiprocessing.connection import wait as wait_for
from typing import Any

from . import events as ev
from . import failures, worker
from .docker_engine import short_client
from .project import ImageSpec, Project, image_keys
from .report import ImageResult, RunReport

log = logging.getLogger(__name__)

SPAWN = multiprocessing.get_context("spawn")  # as on Windows, on every OS
POLL_INTERVAL = 0.1
STOP_GRACE = 2.0


@dataclass(frozen=True)
class RunOptions:
    registry: str
    builders: int
    pushers: int
    retries: int = 2
    stall_timeout: float = 60.0
    retry_backoff: float = 2.0
    auth: dict[str, str] | None = field(default=None, repr=False)

    @classmethod
    def from_project(cls, project: Project, **overrides: Any) -> RunOptions:
        settings: dict[str, Any] = {"registry": project.registry, "builders": project.builders,
                                    "pushers": project.pushers}
        settings.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**settings)


@dataclass
class _Job:
    spec: ImageSpec
    context: str
    result: ImageResult
    container: str | None = None  # the build's current intermediate container


class _Worker:
    """One spawned worker process and the pipe to it."""

    def __init__(self, role: ev.Stage, api_version: str | None) -> None:
        parent, child = SPAWN.Pipe()
        self.role = role
        self.conn = parent
        self.process = SPAWN.Process(target=worker.main, args=(child, api_version),
                                     name=f"dockpool-{role.value}", daemon=True)
        self.process.start()
        child.close()
        self.job: _Job | None = None
        self.last_activity = time.monotonic()
        self.pipe_closed = False

    def assign(self, job: _Job, task: worker.BuildTask | worker.PushTask) -> None:
        self.job = job
        self.last_activity = time.monotonic()
        self.conn.send(task)

    def stop(self) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(STOP_GRACE)


class Pipeline:
    """Runs the enabled images of a project; read `events` until RunFinished."""

    def __init__(self, project: Project, options: RunOptions, *, api_version: str | None = None,
                 push_only: Iterable[str] = ()) -> None:
        """`push_only`: keys of images already built (tagged locally) that only need pushing."""
        self.options = options
        self.events: queue.Queue[Any] = queue.Queue()
        self._api_version = api_version
        push_only = set(push_only)
        self._jobs: dict[str, _Job] = {}
        enabled = project.enabled_images
        for spec, key in zip(enabled, image_keys(enabled)):
            result = ImageResult(spec.name, spec.refs(options.registry), key=key)
            if key in push_only:
                result.status = ev.Status.BUILT_WAITING
            self._jobs[key] = _Job(spec, str(project.context_path(spec)), result)
        self.report = RunReport(time.time(), None, options.builders, options.pushers,
                                options.registry, [job.result for job in self._jobs.values()])
        self._build_queue = deque(n for n in self._jobs if n not in push_only)
        self._push_queue = deque(n for n in self._jobs if n in push_only)
        self._delayed: list[tuple[float, ev.Stage, str]] = []
        self._workers: list[_Worker] = []
        self._limits = (options.builders, options.pushers)
        self._limits_lock = threading.Lock()
        self._cancel = threading.Event()
        self._thread = threading.Thread(target=self._supervise, name="dockpool-supervisor", daemon=True)

    # --- the caller's side (any thread) ---------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def cancel(self) -> None:
        """Stop everything: running workers are killed, their build containers removed."""
        self._cancel.set()

    def set_limits(self, builders: int | None = None, pushers: int | None = None) -> None:
        """Change the concurrency limits; applied at the next dispatch."""
        with self._limits_lock:
            current = self._limits
            self._limits = (builders or current[0], pushers or current[1])

    @property
    def limits(self) -> tuple[int, int]:
        with self._limits_lock:
            return self._limits

    def wait(self, timeout: float | None = None) -> bool:
        """True once the supervisor has finished (workers stopped, RunFinished sent)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def worker_pids(self, role: ev.Stage | None = None) -> list[int]:
        """The running workers' process ids (for diagnostics, benchmarks and tests)."""
        return [w.process.pid for w in list(self._workers)
                if w.process.pid and (role is None or w.role is role)]

    # --- the supervisor thread ------------------------------------------------------------

    def _emit(self, record: Any) -> None:
        self.events.put(record)

    def _supervise(self) -> None:
        applied = (0, 0)
        try:
            while not self._cancel.is_set():
                if self.limits != applied:
                    applied = self.limits
                    self.report.builders, self.report.pushers = applied
                    self._emit(ev.LimitsChanged(*applied))
                self._release_delayed()
                self._dispatch(applied)
                if not (self._build_queue or self._push_queue or self._delayed
                        or any(w.job for w in self._workers)):
                    break
                self._pump()
                self._watch_stalls()
            if self._cancel.is_set():
                self._cancel_all()
        except Exception as exc:  # a supervisor bug must still end the run cleanly
            log.exception("supervisor failed")
            self._fail_unfinished(ev.Failure(ev.FailureKind.OTHER, f"internal error: {exc!r}",
                                             "please report this as a Dockpool bug"))
        finally:
            self._stop_workers()
            self.report.finished = time.time()
            self._emit(ev.RunFinished(self.report))

    def _dispatch(self, limits: tuple[int, int]) -> None:
        pushing = bool(self.options.registry)
        for role, waiting, limit in ((ev.Stage.BUILD, self._build_queue, limits[0]),
                                     (ev.Stage.PUSH, self._push_queue, limits[1])):
            if role is ev.Stage.PUSH and not pushing:
                continue
            mine = [w for w in self._workers if w.role is role]
            busy = sum(1 for w in mine if w.job)
            idle = [w for w in mine if not w.job]
            while waiting and busy < limit:
                spare = idle.pop() if idle else self._spawn(role)
                name = waiting.popleft()
                spare.assign(self._jobs[name], self._task(role, self._jobs[name]))
                busy += 1
            # Warm pushers while the first builds run, so the first push starts at once.
            wanted = min(limit, sum(1 for j in self._jobs.values() if not j.result.status.final))
            while role is ev.Stage.PUSH and busy + len(idle) < wanted:
                idle.append(self._spawn(role))
            for extra in idle[max(0, limit - busy):]:
                self._retire(extra)

    def _spawn(self, role: ev.Stage) -> _Worker:
        spawned = _Worker(role, self._api_version)
        self._workers.append(spawned)
        return spawned

    def _retire(self, idle: _Worker) -> None:
        idle.stop()
        self._workers.remove(idle)
        threading.Thread(target=idle.process.join, args=(STOP_GRACE,), daemon=True).start()

    def _task(self, role: ev.Stage, job: _Job) -> worker.BuildTask | worker.PushTask:
        result = job.result
        if role is ev.Stage.BUILD:
            result.build.attempts += 1
            return worker.BuildTask(result.key, job.context, job.spec.dockerfile, tuple(result.refs),
                                    dict(job.spec.build_args), job.spec.target, result.build.attempts)
        result.push.attempts += 1
        return worker.PushTask(result.key, tuple(result.refs), result.push.attempts, self.options.auth)

    def _release_delayed(self) -> None:
        now = time.monotonic()
        for entry in [d for d in self._delayed if d[0] <= now]:
            self._delayed.remove(entry)
            _, stage, name = entry
            (self._build_queue if stage is ev.Stage.BUILD else self._push_queue).append(name)

    def _pump(self) -> None:
        """Wait briefly for worker messages or deaths, and handle them."""
        handles: dict[Any, _Worker] = {}
        for w in self._workers:
            handles[w.process.sentinel] = w
            if not w.pipe_closed:
                handles[w.conn] = w
        if not handles:
            time.sleep(POLL_INTERVAL)
            return
        for handle in wait_for(list(handles), POLL_INTERVAL):
            w = handles[handle]
            if w not in self._workers:
                continue
            self._drain(w)
            if handle is w.process.sentinel or w.pipe_closed:
                w.process.join(STOP_GRACE if handle is w.process.sentinel else 0)
                if not w.process.is_alive():
                    self._worker_died(w)

    def _drain(self, w: _Worker) -> None:
        while not w.pipe_closed:
            try:
                if not w.conn.poll():
                    return
                record = w.conn.recv()
            except (EOFError, OSError):
                w.pipe_closed = True
                return
            w.last_activity = time.monotonic()
            self._handle(w, record)

    def _handle(self, w: _Worker, record: Any) -> None:
        job = self._jobs[record.image]
        result = job.result
        if isinstance(record, ev.BuildStarted):
            result.status = ev.Status.BUILDING
            result.build.start = result.build.start or record.at
        elif isinstance(record, ev.BuildContainer):
            job.container = record.container_id
        elif isinstance(record, ev.BuildDone):
            w.job, job.container = None, None
            result.image_id = record.image_id
            result.build.end = time.time()
            if self.options.registry:
                result.status = ev.Status.BUILT_WAITING
                self._push_queue.append(record.image)
            else:
                result.status = ev.Status.BUILT
        elif isinstance(record, ev.PushStarted):
            result.status = ev.Status.PUSHING
            result.push.start = result.push.start or record.at
        elif isinstance(record, ev.PushDone):
            w.job = None
            result.status, result.digest, result.digests = ev.Status.PUSHED, record.digest, record.digests
            result.push.end = time.time()
        elif isinstance(record, (ev.BuildFailed, ev.PushFailed)):
            w.job, job.container = None, None
            stage = ev.Stage.BUILD if isinstance(record, ev.BuildFailed) else ev.Stage.PUSH
            self._failed(job, stage, record.failure)
            return  # _failed emits the failure or the retry
        self._emit(record)

    def _failed(self, job: _Job, stage: ev.Stage, failure: ev.Failure) -> None:
        """Retry a transient failure with backoff, or mark the image failed."""
        result = job.result
        times = result.build if stage is ev.Stage.BUILD else result.push
        if failure.retryable and times.attempts <= self.options.retries:
            delay = self.options.retry_backoff * 2 ** (times.attempts - 1)
            self._delayed.append((time.monotonic() + delay, stage, result.key))
            result.status = ev.Status.QUEUED if stage is ev.Stage.BUILD else ev.Status.BUILT_WAITING
            self._emit(ev.RetryScheduled(result.key, stage, times.attempts + 1, delay, failure))
            return
        times.end = time.time()
        result.status, result.stage = ev.Status.FAILED, stage
        result.error, result.error_kind, result.hint = failure.message, failure.kind.value, failure.hint
        self._emit(ev.BuildFailed(result.key, failure) if stage is ev.Stage.BUILD
                   else ev.PushFailed(result.key, failure))

    def _abort(self, w: _Worker, failure: ev.Failure) -> None:
        """Kill a worker that holds an image; the image is retried or failed."""
        w.kill()
        self._drain(w)
        if w in self._workers:
            self._workers.remove(w)
        job, w.job = w.job, None
        if job is None:
            return
        if job.container:
            self._remove_containers([job.container])
            job.container = None
        self._emit(ev.LogLine(job.result.key, w.role, failure.message, error=True))
        self._failed(job, w.role, failure)

    def _worker_died(self, w: _Worker) -> None:
        self._abort(w, failures.worker_died(w.role, w.process.exitcode))

    def _watch_stalls(self) -> None:
        limit = self.options.stall_timeout
        now = time.monotonic()
        for w in [w for w in self._workers if w.role is ev.Stage.PUSH and w.job]:
            if now - w.last_activity > limit:
                self._abort(w, failures.stalled(limit))

    def _cancel_all(self) -> None:
        busy = [w for w in self._workers if w.job]
        jobs = [w.job for w in busy if w.job]  # (narrows the type for checkers)
        for w in busy:
            if w.process.is_alive():
                w.process.kill()
        for w in busy:
            w.process.join(STOP_GRACE)
            self._drain(w)  # a "Running in <container>" line may still sit in the pipe
        self._remove_containers([job.container for job in jobs if job.container])
        self.report.cancelled = True
        for job in self._jobs.values():
            result = job.result
            if result.status.final:
                continue
            result.stage = {ev.Status.BUILDING: ev.Stage.BUILD, ev.Status.PUSHING: ev.Stage.PUSH,
                            ev.Status.BUILT_WAITING: ev.Stage.PUSH}.get(result.status)
            for times in (result.build, result.push):
                if times.start is not None and times.end is None:
                    times.end = time.time()
            result.status = ev.Status.CANCELLED
            self._emit(ev.Cancelled(result.key, result.stage))
        for w in busy:
            w.job = None

    def _fail_unfinished(self, failure: ev.Failure) -> None:
        for job in self._jobs.values():
            if not job.result.status.final:
                job.result.status, job.result.error = ev.Status.FAILED, failure.message
                self._emit(ev.BuildFailed(job.result.key, failure))

    def _remove_containers(self, ids: list[str]) -> None:
        """The daemon removes a cancelled build's container itself; this makes sure."""
        if not ids:
            return
        try:
            client = short_client(self._api_version)
            for container in ids:
                try:
                    client.remove_container(container, force=True)
                except Exception:  # already gone, or removal already in progress
                    pass
        except Exception:
            log.warning("could not remove build containers %s", ids, exc_info=True)

    def _stop_workers(self) -> None:
        for w in self._workers:
            w.stop()
        deadline = time.monotonic() + STOP_GRACE
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.kill()
        self._workers.clear()
