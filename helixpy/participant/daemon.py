"""The participant daemon: registration, the assignment source, workers, self-fencing.

Registration bumps INCARNATION and creates the live node; everything this incarnation writes
carries ``check(INCARNATION, incarnation)``. The ASSIGNMENT watch only marks work pending: the
source thread reads the node and starts or cancels attempts, so kazoo's event thread never
blocks. Self-fencing: kazoo reports LOST only once it reconnects, and a stalled connection
can look alive, so a heartbeat thread tracks the last confirmed contact with the server; after
2/3 of the session timeout without one, the participant cancels its attempts, stops writing,
and later re-registers under a new incarnation (the controller then drops and retries what the
old incarnation held).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionLoss,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)

from helixpy.errors import CorruptNode, InvalidConfig
from helixpy.model import (
    DEFAULT_CAPACITY,
    TaskPartitionState,
    TaskResult,
    TaskStatus,
)
from helixpy.model.context import cap_info
from helixpy.model.limits import check_capacity
from helixpy.model.names import check_name
from helixpy.participant.aio import LoopRunner
from helixpy.participant.assignment import readable_entries
from helixpy.participant.attempt import (
    Attempt,
    CancelReason,
    error_text,
    outcome,
    run_attempt,
    task_fields,
    with_follow_ups,
)
from helixpy.participant.executor import Executor, Item, WorkGroup
from helixpy.participant.grace import CancelGrace, GraceEnd
from helixpy.participant.isolation import TaskLookup
from helixpy.participant.jobconfigs import JobConfigs
from helixpy.participant.metrics import ParticipantMetrics
from helixpy.participant.registration import (
    advertise_op,
    incarnation_fence,
    register,
    target_capacity,
)
from helixpy.participant.registry import TaskRegistry
from helixpy.participant.reporter import Attachment, StateReporter
from helixpy.participant.results import ResultPublisher, publish_outcome
from helixpy.participant.services import FencedContent, attempt_locks, keep_error, task_context
from helixpy.participant.stream import run_stream_attempt
from helixpy.participant.timeouts import Deadlines
from helixpy.store.acl import AclProvider, OpenAclProvider
from helixpy.store.client import connect, request_counts
from helixpy.store.codec import decode
from helixpy.store.fencing import FencedWriter
from helixpy.store.paths import Paths, parse_task_key
from helixpy.store.records import read_cluster_config
from helixpy.telemetry import Health, RequestCounts, TelemetryServer

log = logging.getLogger(__name__)
P = TaskPartitionState


#: Assignment targets that cancel a running attempt, and why.
_CANCELS = {
    "ABORT": CancelReason.ABORT,
    "STOP": CancelReason.STOP,
    "DROP": CancelReason.DISABLED,
    "MOVE": CancelReason.MOVED,
}


class RunState(enum.Enum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    FENCED = "FENCED"
    DRAINING = "DRAINING"
    STOPPED = "STOPPED"


class Participant:
    """One participant instance running tasks from ``registry``."""

    def __init__(
        self,
        zk_hosts: str,
        cluster: str,
        instance: str,
        registry: TaskRegistry,
        *,
        tags: tuple[str, ...] = (),
        capacity: int | None = None,
        session_timeout: float = 10.0,
        acl: AclProvider | None = None,
        tasks_spec: str | None = None,
        zk_auth: str | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_port: int | None = None,
    ) -> None:
        self.zk_auth = zk_auth
        #: ``--metrics-port``: None serves no /metrics or /healthz (0 picks a free port)
        self._metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
        self.telemetry: TelemetryServer | None = None
        self.paths = Paths(cluster)
        self.instance = check_name("instance", instance)
        self.tags = tuple(check_name("tag", t) for t in tags)
        #: None until start(): then the given capacity, else the cluster's default_capacity
        self._capacity_arg = check_capacity(capacity) if capacity is not None else None
        self.capacity = capacity or DEFAULT_CAPACITY
        self.registry = registry
        #: ``MODULE:ATTR`` of ``registry``: worker processes (isolation="process") load it
        self.tasks_spec = tasks_spec
        #: how a job's commands become tasks (worker processes for isolation="process")
        self._lookup = TaskLookup(registry, tasks_spec, name=f"worker-{self.instance}")
        #: the event loop of async tasks (its thread starts with the first one)
        self._aio = LoopRunner(name=f"aio-{self.instance}")
        self.zk_hosts = zk_hosts
        self.session_timeout = session_timeout
        self.acl = acl or OpenAclProvider()
        self.state = RunState.STARTING
        self.zk: KazooClient | None = None
        self.incarnation = -1
        self._writer: FencedWriter | None = None
        self._reporter: StateReporter | None = None
        self._results = ResultPublisher(self.paths)
        self._attempts: dict[str, Attempt] = {}  # running, by task key
        self._finished: dict[str, int] = {}  # key -> attempt, reported and awaiting prune
        self._lock = threading.Lock()
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._draining = threading.Event()
        self._fence_now = threading.Event()
        self._last_contact = time.monotonic()
        self._job_configs = JobConfigs(self.paths)
        self._executor: Executor | None = None
        self._threads: list[threading.Thread] = []
        self._deadlines = Deadlines(self._on_deadline, name=f"timeouts-{instance}")
        #: cancel graces, and thread attempts abandoned after theirs (their threads still
        #: run); the live node advertises their count (the source loop writes a change)
        self._grace = CancelGrace(
            self._deadlines, self._release_attempt, self._retire_abandoned, self._pending.set
        )
        self._advertised = 0
        self.metrics = ParticipantMetrics(
            self.instance,
            self._levels,
            lambda: self._executor.metrics() if self._executor is not None else None,
        )
        self.metrics.registry.register(
            RequestCounts(lambda: request_counts(self.zk), {"instance": self.instance})
        )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.zk = connect(self.zk_hosts, session_timeout=self.session_timeout, auth=self.zk_auth)
        self.zk.add_listener(self._on_session)
        # Helix's target task thread pool size (set through the driver) wins: it is the
        # operator's newer word for this instance; then --capacity, the cluster's default.
        pool_target = target_capacity(self.zk, self.paths, self.instance)
        if pool_target is not None:
            self.capacity = pool_target
        elif self._capacity_arg is None:
            default = read_cluster_config(self.zk, self.paths).get("default_capacity")
            self.capacity = check_capacity(int(default or DEFAULT_CAPACITY))
        self._lookup.capacity = self.capacity
        # One worker per advertised slot: the controller never assigns more attempts than
        # that, so admission never holds an attempt back; follow-ups a task emits share
        # the workers (and run inline on the emitting worker when the queue is full).
        self._executor = Executor(workers=self.capacity, name=f"task-{self.instance}")
        self._executor.start()
        self._register()
        if self._metrics_at is not None:
            self.telemetry = TelemetryServer(self.metrics.registry, self.health, *self._metrics_at)
            self.telemetry.start()
            log.info("metrics and health on http://%s", self.telemetry.address)
        self._deadlines.start()
        for target, name in ((self._source_loop, "source"), (self._heartbeat_loop, "heartbeat")):
            t = threading.Thread(target=target, name=f"{name}-{self.instance}", daemon=True)
            t.start()
            self._threads.append(t)

    def shutdown(self, grace: float = 30.0) -> None:
        """Graceful stop: take no new work, let running tasks finish within ``grace`` seconds,
        cancel the rest, report, deregister."""
        self.state = RunState.DRAINING
        self._draining.set()
        deadline = time.monotonic() + grace
        while self._running_count() and time.monotonic() < deadline:
            self._pending.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            self._pending.clear()
        with self._lock:
            leftovers = list(self._attempts.values())
        for attempt in leftovers:
            # Not reported unless they complete anyway: the controller marks them DROPPED
            # when the live node goes, and retries them elsewhere.
            self._cancel(attempt, CancelReason.DROP)
        # Cancelled tasks get a moment to return and report before we leave.
        end = time.monotonic() + 5.0
        while self._running_count() and time.monotonic() < end:
            self._pending.wait(0.1)
            self._pending.clear()
        if self._reporter is not None:
            self._reporter.flush(5.0)
        self.close()

    def close(self) -> None:
        """Stop at once: deregister (delete the live node) and close the session."""
        self._stop.set()
        self._pending.set()
        self._deadlines.close()
        if self._executor is not None:
            # Attempts were cancelled or finished by now (shutdown) or are fenced (close):
            # what still runs is abandoned to its daemon thread, never reported.
            self._executor.stop(0.0)
        self._lookup.close()  # worker processes do not outlive their participant
        self._aio.close()  # bounded: coroutines still running are cancelled, then left
        if self._reporter is not None:
            self._reporter.close()
        if self.zk is not None:
            try:
                self.zk.delete(self.paths.live_instance(self.instance))
            except Exception as exc:  # gone already, or the session is gone
                log.debug("live node not deleted: %s", exc)
            self.zk.stop()
            self.zk.close()
        if self.telemetry is not None:
            self.telemetry.stop()
        self.state = RunState.STOPPED

    def _running_count(self) -> int:
        with self._lock:
            return len(self._attempts)

    def health(self) -> Health:
        """Healthy while registered (not fenced, not stopping) on a connected session."""
        levels = self._levels()
        ok = levels["run_state"] in (RunState.RUNNING.value, RunState.DRAINING.value) and (
            levels["session"] == KazooState.CONNECTED
        )
        return Health(ok, {"instance": self.instance, **levels})

    def _levels(self) -> dict[str, str | int]:
        return {
            "run_state": self.state.value,
            "session": str(self.zk.state) if self.zk is not None else "NONE",
            "incarnation": self.incarnation,
            "capacity": self.capacity,
            "running": self._running_count(),
            "abandoned": len(self._grace),
            "multis": self._writer.multis if self._writer is not None else 0,
        }

    # --- registration ---------------------------------------------------------------------

    def _register(self) -> None:
        """Register a new incarnation (:func:`register`), then report under its fence."""
        zk = self.zk
        assert zk is not None
        inst = self.instance
        abandoned = len(self._grace)
        incarnation = register(zk, self.paths, inst, self.acl, self.tags, self.capacity, abandoned)
        fence, alive = incarnation_fence(self.paths, inst, incarnation)
        writer = FencedWriter(zk, fence.path, incarnation, self.acl, also=(alive,))
        reporter = StateReporter(zk, self.paths.state(inst, incarnation), writer)
        reporter.start()
        with self._lock:
            self.incarnation = incarnation
            self._writer = writer
            self._reporter = reporter
            self._advertised = abandoned
            if self.state is not RunState.DRAINING:
                self.state = RunState.RUNNING
        self._last_contact = time.monotonic()
        self._fence_now.clear()
        self._pending.set()
        log.info("participant %s registered, incarnation %d", inst, incarnation)

    # --- session and heartbeat ------------------------------------------------------------

    def _on_session(self, state: str) -> None:
        if state == KazooState.LOST:
            self._fence_now.set()
        self._pending.set()

    def _heartbeat_loop(self) -> None:
        interval = self.session_timeout / 6
        while not self._stop.is_set():
            zk = self.zk
            assert zk is not None
            try:
                zk.sync_async("/").get(timeout=interval)
                self._last_contact = time.monotonic()
            except Exception as exc:
                log.debug("heartbeat failed: %s", exc)
            silent = time.monotonic() - self._last_contact
            if self.state is RunState.RUNNING and (
                self._fence_now.is_set() or silent > self.session_timeout * 2 / 3
            ):
                self._self_fence(f"no contact with ZooKeeper for {silent:.1f}s")
            recovered = time.monotonic() - self._last_contact < interval * 2
            if self.state is RunState.FENCED and zk.state == KazooState.CONNECTED and recovered:
                try:
                    self._register()
                except Exception:
                    log.exception("re-registration failed; retrying")
            self._stop.wait(interval)

    def _on_deadline(self, item: object) -> None:
        if isinstance(item, GraceEnd):
            self._grace.grace_end(item.attempt)
            return
        assert isinstance(item, Attempt)
        with self._lock:
            running = self._attempts.get(item.key) is item
        if running:
            log.info("%s attempt %d timed out", item.key, item.attempt, extra=item.fields)
            self._cancel(item, CancelReason.TIMEOUT)

    # --- cancel grace (see helixpy.participant.grace) -------------------------------------

    def _cancel(self, attempt: Attempt, reason: CancelReason) -> None:
        self._grace.cancel(attempt, reason)

    def _retire_abandoned(self, attempt: Attempt, state: P, info: str) -> None:
        """Report an abandoned attempt as ended (its thread runs on, holding a slot)."""
        with self._lock:
            current = self._attempts.get(attempt.key)
            if current is attempt:
                del self._attempts[attempt.key]
            stale = current is not attempt or attempt.ctx.incarnation != self.incarnation
            stale |= attempt.reason is CancelReason.DROP
            if not stale:
                self._finished[attempt.key] = attempt.attempt
        if not stale:
            self._report(attempt.key, attempt.attempt, state, info, attempt.start, time.time())

    def _advertise(self) -> None:
        """Write the abandoned count into the live node when it changed (fenced)."""
        count = len(self._grace)
        writer = self._writer
        if count == self._advertised or writer is None:
            return
        op = advertise_op(
            self.paths, self.instance, self.incarnation, self.tags, self.capacity, count
        )
        writer.commit([op])
        self._advertised = count

    def _self_fence(self, why: str) -> None:
        log.warning("participant %s fences itself: %s", self.instance, why)
        with self._lock:
            self.state = RunState.FENCED
            attempts = list(self._attempts.values())
            self._attempts.clear()
            self._finished.clear()
        if self._reporter is not None:
            self._reporter.close()
        for attempt in attempts:
            self._cancel(attempt, CancelReason.DROP)

    # --- the source: assignments -> attempts ----------------------------------------------

    def _on_assignment(self, _event: Any) -> None:
        self._pending.set()

    def _source_loop(self) -> None:
        while not self._stop.is_set():
            self._pending.wait(1.0)
            self._pending.clear()
            if self._stop.is_set() or self.state is RunState.FENCED:
                continue
            try:
                self._sync_assignment()
                self._advertise()
            except Exception:
                log.exception("reading the assignment failed; retrying")

    def _sync_assignment(self) -> None:
        zk = self.zk
        assert zk is not None
        path = self.paths.assignment(self.instance)
        # The incarnation this read is for: a fence and re-registration may happen while the
        # read is in flight, and an attempt must never start under the wrong one.
        incarnation = self.incarnation
        try:
            data, _ = zk.get(path, watch=self._on_assignment)
            body = decode(data, path=path) or {}
        except (NoNodeError, CorruptNode) as exc:
            log.warning("assignment unreadable: %s", exc)
            body = {}
        # An assignment written for an earlier incarnation is stale: never run it. An entry
        # that cannot be read is skipped (and logged), never the whole assignment.
        tasks, problems = readable_entries(body, incarnation)
        for problem in problems:
            log.error("assignment %s: unreadable entry skipped: %s", path, problem)
        with self._lock:
            running = dict(self._attempts)
            finished = dict(self._finished)
        for key, attempt in running.items():
            entry = tasks.get(key)
            if entry is None or entry.attempt != attempt.attempt:
                self._cancel(attempt, CancelReason.DROP)
            elif entry.target in _CANCELS:
                self._cancel(attempt, _CANCELS[entry.target])
        prune = [k for k, a in finished.items() if k not in tasks or tasks[k].attempt != a]
        if prune:
            with self._lock:
                for k in prune:
                    self._finished.pop(k, None)
            assert self._reporter is not None
            self._reporter.remove(prune)
        if self._draining.is_set():
            return
        launch = {
            key: entry
            for key, entry in tasks.items()
            if entry.target == "RUN" and key not in running and finished.get(key) != entry.attempt
        }
        self._job_configs.read_ahead(
            zk,
            ((*parse_task_key(k)[:2], e.version) for k, e in launch.items() if e.config is None),
        )
        for key, entry in launch.items():
            a = entry.attempt
            try:
                self._launch(key, a, entry.version, incarnation, entry.config)
            except (ConnectionLoss, OperationTimeoutError, SessionExpiredError) as exc:
                # ZooKeeper is away for a moment (its leader changed): not the task's fault.
                # Nothing is reported; the source loop reads the assignment again shortly.
                log.warning(
                    "%s: attempt %d not started yet: %r", key, a, exc, extra=task_fields(key, a)
                )
            except Exception as exc:
                log.exception("%s: cannot start attempt %d", key, a, extra=task_fields(key, a))
                self._report(key, a, P.ERROR, f"cannot start: {exc}", time.time())

    def _launch(
        self,
        key: str,
        attempt_no: int,
        uid: str,
        incarnation: int,
        head: dict[str, Any] | None = None,
    ) -> None:
        wf, job, _ = parse_task_key(key)
        assert self.zk is not None
        cfg = self._job_configs.get(self.zk, wf, job, uid, head)
        content = FencedContent(self.zk, self.paths, self.acl, self.instance, self.incarnation)
        ctx = task_context(cfg, key, attempt_no, self.instance, incarnation, content)
        ctx._aio = self._aio
        attempt = Attempt(key=key, attempt=attempt_no, ctx=ctx)
        executor = self._executor
        assert executor is not None
        attempt.group = WorkGroup(on_done=lambda _err: self._complete(attempt, incarnation))
        ctx._emit = lambda fn: executor.emit(Item(fn, job=f"{wf}/{job}"))
        ctx._locks = lambda: attempt_locks(
            self.zk, self.paths, self.acl, ctx, self.instance, incarnation
        )
        with self._lock:
            # Checked under the lock _self_fence takes: nothing starts once fenced.
            if self.state is not RunState.RUNNING or incarnation != self.incarnation:
                return
            self._attempts[key] = attempt
        item = Item(lambda: self._run(attempt), job=f"{wf}/{job}", group=attempt.group)
        if not executor.submit(item, stop_event=self._stop):
            with self._lock:
                self._attempts.pop(key, None)  # stopping: never started, never reported

    def _run(self, attempt: Attempt) -> None:
        """The attempt's root item: run the task. Its outcome is reported by
        :meth:`_complete` once everything it emitted has run too."""
        # RUNNING is reported from the worker thread, when the task really starts; the
        # per-task timeout counts from here until the attempt's follow-ups are done.
        attempt.start = time.time()
        self._report(attempt.key, attempt.attempt, P.RUNNING, "", attempt.start)
        cfg = attempt.ctx.job_config
        if cfg.stream:
            # A stream slot runs until its stream ends: exempt from timeout_per_task.
            writer = self._writer
            assert self.zk is not None and writer is not None
            attempt.outcome = run_stream_attempt(
                self.registry.get, attempt, self.zk, self.paths, writer
            )
            return
        attempt.deadline_token = self._deadlines.add(
            time.monotonic() + cfg.timeout_per_task, attempt
        )
        try:
            lookup = self._lookup.for_job(attempt.ctx.job_config)
        except InvalidConfig as exc:
            attempt.outcome = (P.ERROR, str(exc))  # never retried: no attempt can run here
            return
        attempt.outcome = run_attempt(lookup, attempt)

    def _release_attempt(self, attempt: Attempt) -> None:
        """Release what an attempt held: its locks and its deadlines."""
        attempt.release_locks()
        for token in (attempt.deadline_token, attempt.grace_token):
            if token is not None:
                self._deadlines.discard(token)

    def _complete(self, attempt: Attempt, incarnation: int) -> None:
        """The attempt's work is done (run and follow-ups): report it, unless stale."""
        if self._grace.ended(attempt):  # reported when it was abandoned: result ignored
            self._pending.set()
            return
        self._release_attempt(attempt)
        if attempt.outcome is None:  # skipped: cancelled while it waited for a worker
            cancelled = TaskResult(TaskStatus.CANCELED, "cancelled before it started")
            attempt.outcome = outcome(cancelled, attempt.reason)
        state, info = with_follow_ups(*attempt.outcome, attempt)
        with self._lock:
            current = self._attempts.get(attempt.key)
            if current is attempt:
                del self._attempts[attempt.key]
            stale = (
                current is not attempt
                or incarnation != self.incarnation
                or (attempt.reason is CancelReason.DROP and state is not P.COMPLETED)
            )
            if not stale:
                self._finished[attempt.key] = attempt.attempt
        if stale:
            # Fenced or superseded meanwhile: nobody wants this result, but the key is free
            # again for a newer attempt, which the source may start now.
            log.info(
                "%s attempt %d ended stale (fenced or superseded): not reported",
                attempt.key,
                attempt.attempt,
                extra=attempt.fields,
            )
            self._pending.set()
            return
        assert self.zk is not None and self._reporter is not None
        state, info, head = publish_outcome(self._results, self._reporter, attempt, state, info)
        text = error_text(state, info, attempt)
        if text is not None:  # stored before the report: readable once the failure shows
            keep_error(self.zk, self.paths, self.acl, self.instance, incarnation, attempt, text)
        now = time.time()
        self._report(attempt.key, attempt.attempt, state, info, attempt.start, now, head)
        self._pending.set()

    def _report(
        self,
        key: str,
        attempt: int,
        state: P,
        info: str,
        start: float,
        finish: float | None = None,
        attach: Attachment | None = None,
    ) -> None:
        entry: dict[str, Any] = {"a": attempt, "s": state.value, "st": start}
        if info:
            entry["i"] = cap_info(info)
        if finish is not None:
            entry["f"] = finish
        if self._reporter is not None and self.state is not RunState.FENCED:
            self._reporter.report(key, entry, attach)
            if state is P.RUNNING:
                self.metrics.attempts_started.inc()
            elif not state.is_active:
                self.metrics.attempts_finished.labels(state.value).inc()
