"""The controller's Prometheus metrics, in its own registry.

Two kinds. **Events** are counted where they happen on the pipeline thread: attempts that
ended (by state), jobs and workflows that finished (by state and type, with their
durations), the delay from a job's start to each task's first scheduling, passes and their
duration. **Levels** (workflows, jobs and tasks by state, running tasks and free slots per
instance) are summarised by the pipeline at most once a second into an immutable
:class:`Snapshot` that a scrape reads: the HTTP thread never walks the pipeline's live
dictionaries. Leadership, run state and the ZooKeeper session state are read at scrape
time from the daemon (plain attribute reads).

A workflow's type is its ``workflow_type``, a job's its ``job_type`` (``none`` when unset).
"""

from __future__ import annotations

import logging
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from helixpy.controller.runtime import JobRuntime, LiveInstance, WorkflowRuntime

log = logging.getLogger(__name__)

#: seconds: from sub-second jobs to day-long ones
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400)
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
SNAPSHOT_EVERY = 1.0


def type_of(value: str | None) -> str:
    return value or "none"


@dataclass(frozen=True)
class Snapshot:
    """The pipeline's levels at the end of one pass."""

    workflows: Mapping[tuple[str, str], int] = field(default_factory=dict)
    jobs: Mapping[tuple[str, str], int] = field(default_factory=dict)
    tasks: Mapping[str, int] = field(default_factory=dict)
    running: Mapping[str, int] = field(default_factory=dict)
    free: Mapping[str, int] = field(default_factory=dict)


def summarise(
    workflows: Iterable[WorkflowRuntime], instances: Mapping[str, LiveInstance]
) -> Snapshot:
    wf_count: Tally[tuple[str, str]] = Tally()
    job_count: Tally[tuple[str, str]] = Tally()
    tasks: Tally[str] = Tally()
    running: Tally[str] = Tally()
    for wf in workflows:
        wf_count[(wf.state.value, type_of(wf.stored.config.workflow_type))] += 1
        for job in wf.jobs.values():
            job_count[(job.state.value, type_of(job.config.job_type))] += 1
            tasks["pending"] += len(job.pending) + len(job.delayed)
            tasks["running"] += len(job.active)
            tasks["completed"] += job.completed
            tasks["given_up"] += job.given_up
            running.update(job.active.values())
    free = {n: max(0, i.capacity - running[n]) for n, i in instances.items()}
    return Snapshot(dict(wf_count), dict(job_count), dict(tasks), dict(running), free)


class ControllerMetrics:
    """Metrics of one controller; ``registry`` is what its telemetry server serves."""

    def __init__(
        self,
        state: Callable[[], Mapping[str, str | bool | int]],
        locks: Callable[[], Mapping[str, list[dict[str, Any]]]] | None = None,
        wake: Callable[[], None] | None = None,
    ) -> None:
        """``state()`` gives ``leader`` (bool), ``run_state``, ``session``, ``epoch`` and
        ``multis``; ``locks()`` reads the cluster's task locks (at scrape time); ``wake()``
        asks the pipeline for a pass (a scrape wants fresh levels)."""
        self.registry = CollectorRegistry(auto_describe=False)
        r = self.registry
        self.attempts_finished = Counter(
            "helixpy_task_attempts_finished",
            "Task attempts that ended, by the state they ended in.",
            ["state"],
            registry=r,
        )
        self.jobs_finished = Counter(
            "helixpy_jobs_finished",
            "Jobs that reached a final state.",
            ["state", "type"],
            registry=r,
        )
        self.workflows_finished = Counter(
            "helixpy_workflows_finished",
            "Workflows that reached a final state.",
            ["state", "type"],
            registry=r,
        )
        self.job_duration = Histogram(
            "helixpy_job_duration_seconds",
            "Start to finish of jobs that reached a final state.",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.workflow_duration = Histogram(
            "helixpy_workflow_duration_seconds",
            "Start to finish of workflows that reached a final state.",
            ["type"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.schedule_delay = Histogram(
            "helixpy_task_schedule_delay_seconds",
            "From a job's start to the first scheduling of each of its tasks.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.passes = Counter(
            "helixpy_controller_passes", "Pipeline passes, by result.", ["result"], registry=r
        )
        self.pass_duration = Histogram(
            "helixpy_controller_pass_seconds",
            "Duration of pipeline passes.",
            buckets=DELAY_BUCKETS,
            registry=r,
        )
        self.snapshot = Snapshot()
        self._next_snapshot = 0.0
        # The levels walk every active workflow: computed only when a scrape asked since
        # the last one, so a controller nobody scrapes never pays for them.
        self._wanted = False
        self._wake = wake
        r.register(_Levels(self, state, locks))

    # --- events (pipeline thread) ---------------------------------------------------------

    def baseline(self, workflows: Iterable[WorkflowRuntime]) -> None:
        """What a new term loads as finished already is not counted as finishing now."""
        for wf in workflows:
            wf.counted = wf.state.is_final
            for job in wf.jobs.values():
                job.counted = job.state.is_final

    def count_finished(self, workflows: Iterable[WorkflowRuntime]) -> None:
        """Count jobs and workflows of ``workflows`` (those the pass touched) that became
        final. Called before the pass writes, so whoever sees a final state in ZooKeeper
        finds it counted already."""
        for wf in workflows:
            for job in wf.hot.values():  # a job that became final is hot until written
                final = job.state.is_final
                if final and not job.counted:
                    self._job_done(job)
                job.counted = final
            final = wf.state.is_final
            if final and not wf.counted:
                self._workflow_done(wf)
            wf.counted = final

    def after_pass(
        self,
        workflows: Mapping[str, WorkflowRuntime],
        instances: Mapping[str, LiveInstance],
        seconds: float,
    ) -> None:
        """Count the pass; refresh the levels when a scrape wants them, at most once a
        second."""
        self.passes.labels("ok").inc()
        self.pass_duration.observe(seconds)
        now = time.monotonic()
        if self._wanted and now >= self._next_snapshot:
            self._wanted = False
            self.snapshot = summarise(workflows.values(), instances)
            self._next_snapshot = now + SNAPSHOT_EVERY

    def want_snapshot(self) -> None:
        """A scrape read the levels: the next pass refreshes them (the scrape itself serves
        the last ones, so levels lag by up to one scrape interval)."""
        if not self._wanted:
            self._wanted = True
            if self._wake is not None:
                self._wake()

    def _job_done(self, job: JobRuntime) -> None:
        kind = type_of(job.config.job_type)
        self.jobs_finished.labels(job.state.value, kind).inc()
        if job.start_time is not None and job.finish_time is not None:
            self.job_duration.labels(kind).observe(
                max(0.0, (job.finish_time - job.start_time).total_seconds())
            )

    def _workflow_done(self, wf: WorkflowRuntime) -> None:
        kind = type_of(wf.stored.config.workflow_type)
        self.workflows_finished.labels(wf.state.value, kind).inc()
        if wf.start_time is not None and wf.finish_time is not None:
            self.workflow_duration.labels(kind).observe(
                max(0.0, (wf.finish_time - wf.start_time).total_seconds())
            )


class _Levels(Collector):
    """Gauges computed at scrape time from the last snapshot and the daemon's state."""

    def __init__(
        self,
        metrics: ControllerMetrics,
        state: Callable[[], Mapping[str, str | bool | int]],
        locks: Callable[[], Mapping[str, list[dict[str, Any]]]] | None,
    ) -> None:
        self._metrics = metrics
        self._state = state
        self._locks = locks

    def collect(self) -> Iterator[Metric]:
        state = self._state()
        snap = self._metrics.snapshot
        self._metrics.want_snapshot()
        yield _gauge(
            "helixpy_controller_leader",
            "1 while this controller leads.",
            [],
            {(): int(bool(state.get("leader")))},
        )
        yield _gauge(
            "helixpy_controller_epoch",
            "The leadership epoch (0 when not leading).",
            [],
            {(): int(state.get("epoch", 0))},
        )
        yield _gauge(
            "helixpy_controller_run_state",
            "1 for the controller's current run state.",
            ["state"],
            {(str(state.get("run_state")),): 1},
        )
        yield _gauge(
            "helixpy_zookeeper_session",
            "1 for the ZooKeeper session's state.",
            ["state"],
            {(str(state.get("session")),): 1},
        )
        multis = CounterMetricFamily(
            "helixpy_zookeeper_multis",
            "Fenced multis this leadership term committed (resets with the term).",
        )
        multis.add_metric([], int(state.get("multis", 0)))
        yield multis
        yield _gauge(
            "helixpy_workflows",
            "Workflows known to the leader, by state and type.",
            ["state", "type"],
            {tuple(k): v for k, v in snap.workflows.items()},
        )
        yield _gauge(
            "helixpy_jobs",
            "Jobs known to the leader, by state and type.",
            ["state", "type"],
            {tuple(k): v for k, v in snap.jobs.items()},
        )
        yield _gauge(
            "helixpy_tasks",
            "Tasks of known jobs: pending, running, completed, given_up.",
            ["state"],
            {(k,): v for k, v in snap.tasks.items()},
        )
        yield _gauge(
            "helixpy_instance_running_tasks",
            "Active attempts per live instance.",
            ["instance"],
            {(k,): v for k, v in snap.running.items()},
        )
        yield _gauge(
            "helixpy_instance_free_slots",
            "Advertised capacity minus abandoned and active attempts.",
            ["instance"],
            {(k,): v for k, v in snap.free.items()},
        )
        if self._locks is not None:
            yield from _lock_levels(self._locks)


def _lock_levels(
    read: Callable[[], Mapping[str, list[dict[str, Any]]]],
) -> Iterator[Metric]:
    """Task locks in ZooKeeper now: granted by type, and revoked ones not yet released."""
    try:
        found = read()
    except Exception as exc:  # a scrape while ZooKeeper is away: say nothing about locks
        log.debug("locks not read for metrics: %s", exc)
        return
    held: Tally[tuple[str, ...]] = Tally()
    revoked: Tally[tuple[str, ...]] = Tally()
    for posses in found.values():
        for posse in posses:
            kind = (str(posse.get("type", "?")),)
            (revoked if posse.get("revoked") else held)[kind] += 1
    yield _gauge(
        "helixpy_locks", "Task locks granted and not revoked, by type.", ["type"], dict(held)
    )
    yield _gauge(
        "helixpy_locks_revoked",
        "Task locks revoked by a higher priority and not yet released by their holders, by type.",
        ["type"],
        dict(revoked),
    )


def _gauge(
    name: str, doc: str, labels: list[str], values: Mapping[tuple[str, ...], int]
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for key, value in sorted(values.items()):
        family.add_metric(list(key), value)
    return family
