"""The pipeline: builder processes feed a bounded set of pusher processes.

One supervisor thread owns the whole run. It hands tasks to long-lived worker
processes, reads their event records from one inbox (workers.py), keeps each
image's state and the report, writes each image's log file, and forwards every
record to `Pipeline.events` for the caller (the CLI's renderer, the window's
controller). Because the supervisor, not a multiprocessing.Pool, tracks which
worker holds which image, a worker that is killed or crashes costs only its own
image (retried or failed), a stalled push or an overlong build is aborted by
killing its worker, and limits can change between dispatches.

Work per wake-up is proportional to what is active (the workers and the
messages that arrived), never to the number of images: counters replace scans.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import events as ev
from . import failures
from .docker_engine import short_client
from .event_queue import EventQueue
from .priority import caller_niceness, lower_this_thread
from .project import MAX_CONCURRENCY, MIN_CONCURRENCY, ImageSpec, Project, image_keys
from .report import ImageResult, RunReport
from .runlogs import RunLogs
from .spool import memory_budget_setting
from .tasks import BuildBackend, BuildTask, PushTask, SlotGranted, WorkerConfig, export_timeout
from .workers import CLOSED, STOP_GRACE, Inbox, WorkerProcess, kill_process, prestart

log = logging.getLogger(__name__)

MAX_WAIT = 0.5  # the longest the supervisor sleeps without a message
MAX_BATCH = 2000  # lines (events.record_lines) handled per wake-up before cancels, deadlines and dispatch
LOG_FLUSH_INTERVAL = 0.5
PUSHER_SAFETY_MARGIN = 60.0  # beyond a direct push's longest own timeout, before its pusher counts as hung
_WAKE = object()  # an inbox entry from the caller's thread: a cancel or new limits to look at


@dataclass(frozen=True)
class RunOptions:
    registry: str
    builders: int
    pushers: int
    retries: int = 2
    stall_timeout: float = 60.0
    retry_backoff: float = 2.0
    auth: dict[str, str] | None = field(default=None, repr=False)
    push_via: str = "direct"
    insecure: bool = False  # the registry may be plain HTTP, or TLS without verification
    build_timeout: float | None = None
    network: str = "default"  # for images that do not set their own
    backend: BuildBackend = BuildBackend()
    push_memory: int = field(default_factory=memory_budget_setting)  # per direct push, see spool

    @classmethod
    def from_project(cls, project: Project, **overrides: Any) -> RunOptions:
        settings: dict[str, Any] = {
            "registry": project.registry, "builders": project.builders, "pushers": project.pushers,
            "push_via": project.push, "insecure": project.insecure, "build_timeout": project.build.timeout,
            "network": project.build.network}
        settings.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**settings)


@dataclass
class _Job:
    spec: ImageSpec
    context: str
    secrets: dict[str, str]
    result: ImageResult
    base_dir: str = ""
    container: str | None = None  # the classic build's current intermediate container


def _check_limit(name: str, value: int | None) -> None:
    if value is not None and not (isinstance(value, int) and MIN_CONCURRENCY <= value <= MAX_CONCURRENCY):
        raise ValueError(f"{name} must be a whole number from {MIN_CONCURRENCY} to {MAX_CONCURRENCY}, "
                         f"not {value!r}")


class Pipeline:
    """Runs the enabled images of a project; read `events` until RunFinished."""

    def __init__(self, project: Project, options: RunOptions, *, api_version: str | None = None,
                 push_only: Iterable[str] | dict[str, str] = (), log_dir: Path | None = None,
                 worker_log: str | None = None) -> None:
        """`push_only`: keys of images already built that only need pushing; as a mapping,
        key -> image id, so an image is pushed (and, through the engine, tagged again) under
        the refs it has now, even if they changed since it was built. `log_dir`: write each
        image's whole log there. `worker_log`: where workers write what they would print
        when the executable has no stderr (the windowed app)."""
        _check_limit("builders", options.builders)
        _check_limit("pushers", options.pushers)
        built_ids = dict(push_only) if isinstance(push_only, dict) else {}
        push_only = set(push_only)
        if push_only and not options.registry:
            raise ValueError("images can only be pushed again with a registry to push to")
        self.options = options
        self.events = EventQueue()
        self._inbox = Inbox()
        self._config = WorkerConfig(api_version, worker_log, dict(os.environ), caller_niceness())
        self._api_version = api_version
        self._jobs: dict[str, _Job] = {}
        enabled = project.enabled_images
        for spec, key in zip(enabled, image_keys(enabled)):
            result = ImageResult(spec.name, spec.refs(options.registry), key=key)
            if key in push_only:
                result.status = ev.Status.BUILT_WAITING
                result.image_id = built_ids.get(key)
            secrets = {secret: str(project.file_path(path)) for secret, path in spec.secrets.items()}
            self._jobs[key] = _Job(spec, str(project.context_path(spec)), secrets, result, str(project.base_dir))
        unknown = push_only - set(self._jobs)
        if unknown:
            raise ValueError(f"push_only names images that are not enabled in the project: {sorted(unknown)}")
        self.report = RunReport(time.time(), None, options.builders, options.pushers, options.registry,
                                [job.result for job in self._jobs.values()],
                                backend=options.backend.kind, backend_detail=options.backend.detail,
                                push_via=options.push_via if options.registry else "")
        self.log_dir = log_dir
        self._logs = RunLogs(log_dir) if log_dir else None
        self._build_queue = deque(key for key in self._jobs if key not in push_only)
        self._push_queue = deque(key for key in self._jobs if key in push_only)
        self._delayed: list[tuple[float, int, ev.Stage, str]] = []  # a heap by due time
        self._delayed_builds = 0
        self._sequence = 0
        self._unfinished = len(self._jobs)
        self._builds_started = bool(push_only)
        self._workers: list[WorkerProcess] = []
        self._reapers: list[threading.Thread] = []  # one per worker let go: the run ends after them
        # Upload slots (direct pushes): at most `pushers` blob uploads on the wire.
        self._wire_holders: set[WorkerProcess] = set()
        self._wire_waiting: deque[WorkerProcess] = deque()
        self._limits = (options.builders, options.pushers)
        self._limits_lock = threading.Lock()
        self._cancel = threading.Event()
        self._cancel_requests: queue.SimpleQueue[str] = queue.SimpleQueue()  # keys, from cancel_image
        self._thread = threading.Thread(target=self._supervise, name="dockpool-supervisor", daemon=True)

    # --- the caller's side (any thread) ---------------------------------------------------

    def start(self) -> None:
        prestart(wait=True)  # on the caller's thread, not the supervisor's lowered one
        self._thread.start()

    def cancel(self) -> None:
        """Stop everything: running workers are killed, their builds stopped."""
        self._cancel.set()
        self._inbox.put((None, _WAKE, 1))

    def cancel_image(self, key: str) -> None:
        """Stop one image, wherever it is (queued, building, pushing); the run goes on.
        Taken before the messages already waiting in the inbox: a chatty build's backlog
        of log lines never stands between the user and the cancel."""
        self._cancel_requests.put(key)
        self._inbox.put((None, _WAKE, 1))

    def set_limits(self, builders: int | None = None, pushers: int | None = None) -> None:
        """Change the concurrency limits (None keeps one); applied at the next dispatch.
        Busy workers above a lowered limit finish their image, then retire."""
        _check_limit("builders", builders)
        _check_limit("pushers", pushers)
        with self._limits_lock:
            current = self._limits
            self._limits = (builders if builders is not None else current[0],
                            pushers if pushers is not None else current[1])
        self._inbox.put((None, _WAKE, 1))

    @property
    def limits(self) -> tuple[int, int]:
        with self._limits_lock:
            return self._limits

    def wait(self, timeout: float | None = None) -> bool:
        """True once the supervisor has finished (workers stopped, RunFinished sent)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        """The supervisor thread runs (False before start and after the end)."""
        return self._thread.is_alive()

    def worker_pids(self, role: ev.Stage | None = None) -> list[int]:
        """The running workers' process ids (for diagnostics, benchmarks and tests)."""
        return [w.pid for w in list(self._workers) if w.pid and (role is None or w.role is role)]

    def worker_pid(self, image: str) -> int | None:
        """The process working on an image right now, if any (diagnostics and tests)."""
        return next((w.pid for w in list(self._workers) if w.job is not None and w.job.result.key == image), None)

    def log_path(self, key: str) -> Path | None:
        """The file holding an image's whole log, when the run keeps logs."""
        return self._logs.path(key) if self._logs else None

    # --- the supervisor thread ------------------------------------------------------------

    def _emit(self, record: Any) -> None:
        self.events.put(record)

    def _supervise(self) -> None:
        lower_this_thread(self._config.niceness)  # the window's GUI thread comes first (see priority)
        failure: ev.Failure | None = None
        try:
            self._run()
        except Exception as exc:  # a supervisor bug must still end the run cleanly
            log.exception("supervisor failed")
            failure = ev.Failure(ev.FailureKind.OTHER, f"internal error: {exc!r}",
                                 "please report this as a Dockpool bug")
        finally:
            try:
                if failure is not None:
                    self._kill_busy()
                    self._fail_unfinished(failure)
                self._stop_workers()
            except Exception:
                log.exception("supervisor clean-up failed")
            finally:
                self._inbox.close()  # no reader of a worker still alive waits for room any more
                if self._logs:
                    self._logs.close()
                self.report.finished = time.time()
                self._emit(ev.RunFinished(self.report))

    def _run(self) -> None:
        applied: tuple[int, int] | None = None
        flushed = time.monotonic()
        while True:
            if self._cancel.is_set():
                self._cancel_all()
                return
            if self.limits != applied:
                applied = self.limits
                self.report.builders, self.report.pushers = applied
                self._emit(ev.LimitsChanged(*applied))
            while not self._cancel_requests.empty():
                self._cancel_one(self._cancel_requests.get())
            self._release_delayed()
            self._dispatch(applied)
            if self._finished():
                return
            self._receive(self._next_wakeup())
            self._check_deadlines()
            if self._logs and time.monotonic() - flushed >= LOG_FLUSH_INTERVAL:
                self._logs.flush()
                flushed = time.monotonic()

    def _finished(self) -> bool:
        return not (self._build_queue or self._push_queue or self._delayed
                    or any(w.job for w in self._workers))

    def _next_wakeup(self) -> float:
        now = time.monotonic()
        deadlines = [now + MAX_WAIT]
        if self._delayed:
            deadlines.append(self._delayed[0][0])
        for w in self._workers:
            if w.job is not None:
                deadlines.append(self._deadline(w))
        return max(0.0, min(deadlines) - now)

    def _deadline(self, w: WorkerProcess) -> float:
        if w in self._wire_waiting:
            return float("inf")  # waiting for an upload slot is not a stall
        if w.role is ev.Stage.BUILD:
            timeout = self.options.build_timeout
            return w.assigned_at + timeout if timeout else float("inf")
        return w.last_activity + self._stall_limit()

    def _stall_limit(self) -> float:
        """How long a pusher may send nothing before it is killed. The engine's push
        shows a stall only as silence. Dockpool's own uploader has a timeout on every
        step (the longest: waiting for the engine's export) and resumes a stalled
        blob itself, so for it this is only a safety net against a hung process."""
        if self.options.push_via == "engine":
            return self.options.stall_timeout
        return export_timeout(self.options.stall_timeout) + PUSHER_SAFETY_MARGIN

    def _receive(self, timeout: float) -> None:
        """Wait up to `timeout` for messages, then handle those that arrived (fairly: in
        arrival order, about MAX_BATCH lines' worth before cancels and deadlines are looked
        at again)."""
        try:
            entry = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        handled = 0
        while True:
            sender, record, lines = entry
            self._accept(sender, record)
            handled += lines
            if handled >= MAX_BATCH:
                return  # never take an entry it will not handle
            try:
                entry = self._inbox.get_nowait()
            except queue.Empty:
                return

    def _accept(self, w: WorkerProcess | None, record: Any) -> None:
        if w is None:
            return  # a wake-up: cancels or new limits, looked at by the loop
        if record is CLOSED:
            self._worker_exited(w)
            return
        if isinstance(record, ev.SlotReleased):  # about the worker, whatever it holds now
            self._wire_holders.discard(w)
            self._grant_slots()
            return
        if w not in self._workers or w.job is None or record.image != w.job.result.key:
            self._stale(record)
            return
        self._handle(w, w.job, record)

    def _stale(self, record: Any) -> None:
        """A late message from a worker that was aborted: clean up what it started."""
        if isinstance(record, ev.BuildContainer):
            self._remove_containers([record.container_id])
        elif isinstance(record, ev.BuildProcess):
            kill_process(record.pid)

    def _handle(self, w: WorkerProcess, job: _Job, record: Any) -> None:
        result = job.result
        if isinstance(record, ev.BuildStarted):
            result.status = ev.Status.BUILDING
            result.build.start = result.build.start or record.at
            self._builds_started = True
        elif isinstance(record, ev.BuildContainer):
            job.container = record.container_id
        elif isinstance(record, ev.BuildProcess):
            w.child_pid = record.pid
        elif isinstance(record, ev.SlotWanted):
            self._wire_waiting.append(w)
            self._grant_slots()
            return  # between the supervisor and its pushers only
        elif isinstance(record, ev.LogLine):
            if self._logs:
                self._logs.append(result.key, record.stage.value, record.text, record.error)
        elif isinstance(record, ev.BuildDone):
            self._release(w)
            job.container = None
            result.image_id = record.image_id
            result.build.end = time.time()
            if self.options.registry:
                result.status = ev.Status.BUILT_WAITING
                self._push_queue.append(result.key)
            else:
                result.status = ev.Status.BUILT
                self._final(job)
        elif isinstance(record, ev.PushStarted):
            result.status = ev.Status.PUSHING
            result.push.start = result.push.start or record.at
        elif isinstance(record, ev.UploadResumed):
            result.push.resumes += 1
            self._log(result.key, ev.Stage.PUSH, f"{record.reason}; "
                      + (f"resumed at byte {record.offset}" if record.offset else "restarted in a new upload"),
                      True)
        elif isinstance(record, ev.PushDone):
            self._release(w)
            result.status, result.digest = ev.Status.PUSHED, record.digest
            result.digests = dict(record.digests)  # the report's own copy
            result.push.end = time.time()
            self._final(job)
        elif isinstance(record, (ev.BuildFailed, ev.PushFailed)):
            self._release(w)
            job.container = None
            stage = ev.Stage.BUILD if isinstance(record, ev.BuildFailed) else ev.Stage.PUSH
            self._retry_or_fail(job, stage, record.failure)
            return  # _retry_or_fail emits the failure or the retry
        self._emit(record)

    def _log(self, key: str, stage: ev.Stage, text: str, error: bool = False) -> None:
        """A log line of the supervisor's own (a retry, an abort): to the file and the caller."""
        if self._logs:
            self._logs.append(key, stage.value, text, error)
        self._emit(ev.LogLine(key, stage, text, error))

    def _release(self, w: WorkerProcess) -> None:
        w.job, w.child_pid = None, None

    def _final(self, job: _Job) -> None:
        self._unfinished -= 1
        if self._logs:
            self._logs.finish(job.result.key)

    def _retry_or_fail(self, job: _Job, stage: ev.Stage, failure: ev.Failure) -> None:
        """Retry a transient failure with backoff, or mark the image failed."""
        result = job.result
        times = result.build if stage is ev.Stage.BUILD else result.push
        if failure.retryable and times.attempts <= self.options.retries:
            delay = self.options.retry_backoff * 2 ** (times.attempts - 1)
            self._sequence += 1
            heapq.heappush(self._delayed, (time.monotonic() + delay, self._sequence, stage, result.key))
            self._delayed_builds += stage is ev.Stage.BUILD
            result.status = ev.Status.QUEUED if stage is ev.Stage.BUILD else ev.Status.BUILT_WAITING
            self._emit(ev.RetryScheduled(result.key, stage, times.attempts + 1, delay, failure))
            return
        times.end = time.time()
        self._mark_failed(job, stage, failure)

    def _mark_failed(self, job: _Job, stage: ev.Stage, failure: ev.Failure) -> None:
        """The image's outcome is this failure: recorded, final, and said."""
        result = job.result
        result.status, result.stage = ev.Status.FAILED, stage
        result.error, result.error_kind, result.hint = failure.message, failure.kind.value, failure.hint
        self._final(job)
        self._emit(ev.BuildFailed(result.key, failure) if stage is ev.Stage.BUILD
                   else ev.PushFailed(result.key, failure))

    def _release_delayed(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, stage, key = heapq.heappop(self._delayed)
            if stage is ev.Stage.BUILD:
                self._delayed_builds -= 1
                self._build_queue.append(key)
            else:
                self._push_queue.append(key)

    # --- dispatch ---------------------------------------------------------------------------

    def _pusher_processes(self, pushers: int) -> int:
        """Direct pushes take upload slots, so one more pusher than slots can prepare
        the next image (export, read, hash) while the others keep the link busy."""
        return pushers + 1 if self.options.push_via == "direct" else pushers

    def _grant_slots(self) -> None:
        """Free slots go to the pushers waiting longest (by when their image was handed out)."""
        while self._wire_waiting and len(self._wire_holders) < self.limits[1]:
            w = min(self._wire_waiting, key=lambda waiting: waiting.assigned_at)
            self._wire_waiting.remove(w)
            if w in self._workers and w.send(SlotGranted()):
                self._wire_holders.add(w)
                w.last_activity = time.monotonic()  # the wait for the slot was not silence

    def _dispatch(self, limits: tuple[int, int]) -> None:
        builders, pushers = limits
        self._fill(ev.Stage.BUILD, self._build_queue, builders)
        if self.options.registry:
            self._fill(ev.Stage.PUSH, self._push_queue, self._pusher_processes(pushers))
            # One pusher starts once the first builds are handed out (after their processes),
            # so the first image built finds it ready; the others once a build has started,
            # not at time zero competing with the first builds (a pusher costs a whole
            # interpreter start under spawn).
            handed_out = any(w.job is not None for w in self._mine(ev.Stage.BUILD))
            if self._builds_started or handed_out:
                wanted = min(self._pusher_processes(pushers) if self._builds_started else 1, self._unfinished)
                while len(self._mine(ev.Stage.PUSH)) < wanted:
                    self._spawn(ev.Stage.PUSH)
            self._grant_slots()
        self._retire_idle(limits)

    def _mine(self, role: ev.Stage) -> list[WorkerProcess]:
        return [w for w in self._workers if w.role is role]

    def _fill(self, role: ev.Stage, waiting: deque[str], limit: int) -> None:
        if not waiting:
            return  # the usual case on a wake-up: nothing to look at (is_alive costs a system call)
        mine = self._mine(role)
        busy = sum(1 for w in mine if w.job is not None)
        while waiting and busy < limit:
            spare = next((w for w in mine if w.job is None and w.alive and w.process.is_alive()), None) \
                or self._spawn(role)
            key = waiting.popleft()
            if not self._assign(spare, self._jobs[key]):
                waiting.appendleft(key)  # the worker was dead: the task never left
                self._discard(spare)
                continue
            busy += 1

    def _assign(self, w: WorkerProcess, job: _Job) -> bool:
        task = self._task(w.role, job)
        times = job.result.build if w.role is ev.Stage.BUILD else job.result.push
        w.job, w.assigned_at, w.last_activity = job, time.monotonic(), time.monotonic()
        if w.send(task):
            return True
        w.job = None
        times.attempts -= 1
        return False

    def _retire_idle(self, limits: tuple[int, int]) -> None:
        builders, pushers = limits
        nothing_to_build = not self._build_queue and not self._delayed_builds
        pusher_limit = min(self._pusher_processes(pushers), self._unfinished) if self.options.registry else 0
        for role, limit in ((ev.Stage.BUILD, 0 if nothing_to_build else builders), (ev.Stage.PUSH, pusher_limit)):
            mine = self._mine(role)
            busy = sum(1 for w in mine if w.job is not None)
            idle = [w for w in mine if w.job is None]
            for extra in idle[max(0, limit - busy):]:
                self._retire(extra)

    def _spawn(self, role: ev.Stage) -> WorkerProcess:
        spawned = WorkerProcess(role, self._config, self._inbox)
        self._workers.append(spawned)
        return spawned

    def _retire(self, idle: WorkerProcess) -> None:
        idle.stop()
        self._discard(idle)

    def _discard(self, w: WorkerProcess) -> None:
        if w in self._workers:
            self._workers.remove(w)
        if w in self._wire_waiting:
            self._wire_waiting.remove(w)
        if w in self._wire_holders:  # a pusher that died uploading gives its slot back
            self._wire_holders.discard(w)
            self._grant_slots()
        reaper = threading.Thread(target=self._reap, args=(w,), daemon=True)
        self._reapers.append(reaper)
        reaper.start()

    @staticmethod
    def _reap(w: WorkerProcess) -> None:
        w.process.join(STOP_GRACE)
        if w.process.is_alive():
            w.kill()
        w.close()

    def _task(self, role: ev.Stage, job: _Job) -> BuildTask | PushTask:
        result, spec = job.result, job.spec
        if role is ev.Stage.BUILD:
            result.build.attempts += 1
            return BuildTask(
                result.key, job.context, spec.dockerfile, tuple(result.refs), dict(spec.build_args),
                spec.target, result.build.attempts, backend=self.options.backend,
                network=spec.network or self.options.network, platform=spec.platform,
                secrets=dict(job.secrets), ssh=tuple(spec.ssh), cache_from=tuple(spec.cache_from),
                cache_to=tuple(spec.cache_to), base_dir=job.base_dir)
        result.push.attempts += 1
        return PushTask(result.key, tuple(result.refs), result.push.attempts, self.options.auth,
                        via=self.options.push_via, insecure=self.options.insecure,
                        stall_timeout=self.options.stall_timeout, image_id=result.image_id or "",
                        memory_budget=self.options.push_memory)

    # --- failures, deadlines, cancel ----------------------------------------------------------

    def _worker_exited(self, w: WorkerProcess) -> None:
        w.alive = False
        if w not in self._workers:
            return  # retired or aborted: already accounted for
        w.process.join(STOP_GRACE)
        job = w.job
        self._discard(w)
        if job is not None:
            self._abandon(w, job, failures.worker_died(w.role, w.process.exitcode))

    def _abort(self, w: WorkerProcess, failure: ev.Failure) -> None:
        """Kill a worker that holds an image; the image is retried or failed."""
        job = w.job
        self._discard(w)
        w.kill()
        if job is not None:
            self._abandon(w, job, failure)

    def _abandon(self, w: WorkerProcess, job: _Job, failure: ev.Failure) -> None:
        """The worker holding `job` is gone: stop what it started, then retry or fail the image."""
        kill_process(w.child_pid)
        w.job, w.child_pid = None, None
        if job.container:
            self._remove_containers([job.container])
            job.container = None
        self._log(job.result.key, w.role, failure.message, True)
        self._retry_or_fail(job, w.role, failure)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        for w in [w for w in self._workers if w.job is not None and now > self._deadline(w)]:
            if w.role is ev.Stage.BUILD:
                self._abort(w, failures.timed_out(self.options.build_timeout or 0))
            else:
                self._abort(w, failures.stalled(self._stall_limit()))

    def _kill_busy(self) -> list[WorkerProcess]:
        """Kill every worker that holds an image, and collect its last messages (a build's
        container id may still be on its way) until its pipe closes. An image whose build or
        push ended before the kill keeps that result: it is built, or in the registry."""
        busy = [w for w in self._workers if w.job is not None]
        for w in busy:
            w.alive = False
            if w.process.is_alive():
                w.process.kill()
            kill_process(w.child_pid)
        waiting = set(busy)
        deadline = time.monotonic() + STOP_GRACE
        while waiting and time.monotonic() < deadline:
            try:
                w, record, _ = self._inbox.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if record is CLOSED:
                waiting.discard(w)
            elif isinstance(record, (ev.BuildDone, ev.PushDone)) and w.job is not None \
                    and record.image == w.job.result.key:
                self._handle(w, w.job, record)
            elif isinstance(record, ev.BuildContainer) and w in busy and w.job is not None:
                w.job.container = record.container_id
            elif isinstance(record, ev.BuildProcess):
                kill_process(record.pid)
        for w in busy:
            w.process.join(STOP_GRACE)
        self._remove_containers([w.job.container for w in busy if w.job is not None and w.job.container])
        return busy

    def _cancel_one(self, key: str) -> None:
        job = self._jobs.get(key)
        if job is None or job.result.status.final:
            return
        for waiting in (self._build_queue, self._push_queue):
            if key in waiting:
                waiting.remove(key)
        if any(entry[3] == key for entry in self._delayed):
            self._delayed_builds -= sum(1 for entry in self._delayed if entry[3] == key and entry[2] is ev.Stage.BUILD)
            self._delayed = [entry for entry in self._delayed if entry[3] != key]
            heapq.heapify(self._delayed)
        holder = next((w for w in self._workers if w.job is job), None)
        if holder is not None:
            self._discard(holder)
            holder.kill()
            kill_process(holder.child_pid)
            self._release(holder)
            if job.container:
                self._remove_containers([job.container])
                job.container = None
        self._cancel_job(job)

    def _cancel_job(self, job: _Job) -> None:
        result = job.result
        result.stage = {ev.Status.BUILDING: ev.Stage.BUILD, ev.Status.PUSHING: ev.Stage.PUSH,
                        ev.Status.BUILT_WAITING: ev.Stage.PUSH}.get(result.status)
        for times in (result.build, result.push):
            if times.start is not None and times.end is None:
                times.end = time.time()
        result.status = ev.Status.CANCELLED
        self._final(job)
        self._emit(ev.Cancelled(result.key, result.stage))

    def _cancel_all(self) -> None:
        busy = self._kill_busy()
        cancelled = 0
        for job in self._jobs.values():
            if not job.result.status.final:
                self._cancel_job(job)
                cancelled += 1
        # A cancel that arrives as the last image finishes cancels nothing: say what happened.
        self.report.cancelled = cancelled > 0
        for w in busy:
            self._release(w)

    def _fail_unfinished(self, failure: ev.Failure) -> None:
        for job in self._jobs.values():
            result = job.result
            if result.status.final:
                continue
            stage = ev.Stage.PUSH if result.status in (ev.Status.BUILT_WAITING, ev.Status.PUSHING) \
                else ev.Stage.BUILD
            times = result.build if stage is ev.Stage.BUILD else result.push
            if times.start is not None and times.end is None:
                times.end = time.time()
            self._mark_failed(job, stage, failure)

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
        """Every worker ends before the run does, those let go earlier included: a pusher
        retired as soon as its image was done may still be removing its temporary files."""
        workers, self._workers = list(self._workers), []
        for w in workers:
            w.stop()
        deadline = time.monotonic() + STOP_GRACE
        for w in workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.kill()
            w.close()
        for reaper in self._reapers:
            reaper.join()  # each ends within STOP_GRACE, and a kill's own wait
