"""The leader's in-memory picture of the cluster, rebuilt from ZooKeeper on takeover.

While it leads, the controller is the only writer of configs, contexts and assignments, so
this picture is authoritative: a pass reads only what participants changed (their STATE
nodes and live nodes) and writes only what it changed (dirty chunks and headers). Nothing
here does I/O; :mod:`helixpy.controller.rules` makes the decisions over these objects.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from helixpy.model import (
    JobConfig,
    JobContext,
    TaskContextInfo,
    TaskPartitionState,
    TaskState,
    WorkflowContext,
)
from helixpy.model.workflow import topological_order
from helixpy.store.codec import encoded_size
from helixpy.store.paths import task_key
from helixpy.store.records import StoredWorkflow, chunk_of, job_config_head

#: A job config whose JSON is at most this long rides in its attempts' ASSIGNMENT entries,
#: so a participant starts them without reading the job's CONFIG (one read per one-task
#: workflow). Bigger ones, and jobs with task configs, are read from CONFIG as before.
ASSIGNMENT_CONFIG_BYTES = 512

#: Target of an assignment entry: run the attempt, cancel it because the job or workflow is
#: failing or timing out (ABORT), or because the workflow is stopping (STOP). A removed
#: entry means "forget it" (deleted, or folded in). DROP: the instance was disabled; the
#: attempt is cancelled there and reported DROPPED, then retried elsewhere. MOVE: likewise,
#: because the target partition of a targeted job's task left the instance.
RUN = "RUN"
ABORT = "ABORT"
STOP = "STOP"
DROP = "DROP"
MOVE = "MOVE"


@dataclass
class JobRuntime:
    """One job: its config, its tasks' records and the indexes a pass needs."""

    workflow: str
    name: str
    config: JobConfig
    tasks: list[TaskContextInfo]
    state: TaskState = TaskState.NOT_STARTED
    start_time: datetime | None = None
    finish_time: datetime | None = None
    info: str = ""
    #: partitions waiting to be scheduled, in order
    pending: deque[int] = field(default_factory=deque)
    #: partitions waiting for their retry delay: partition -> not-before (epoch seconds)
    delayed: dict[int, float] = field(default_factory=dict)
    #: partitions with an attempt on an instance: partition -> instance
    active: dict[int, str] = field(default_factory=dict)
    #: partitions whose active attempt is being cancelled
    aborting: set[int] = field(default_factory=set)
    completed: int = 0
    given_up: int = 0
    dirty_chunks: set[int] = field(default_factory=set)
    header_dirty: bool = False
    #: when the job became ready to schedule (parents done); drives execution_delay
    ready_time: float | None = None
    #: partitions removed with delete_task (their slots stay, so partitions never move)
    deleted: set[int] = field(default_factory=set)
    #: bumped by add_task / delete_task so participants re-read a cached job config
    config_version: int = 0
    #: context chunks that exist in ZooKeeper (an added task may need a new one)
    stored_chunks: int = 0
    #: its final state was counted in the metrics (so each finish counts once)
    counted: bool = False
    #: (config, what assignment_config gives for it): computed once per config object
    _assigned_config: tuple[JobConfig, dict[str, Any] | None] | None = field(
        default=None, repr=False, compare=False
    )

    def key(self, partition: int) -> str:
        return task_key(self.workflow, self.name, partition)

    def assignment_config(self) -> dict[str, Any] | None:
        """The job's CONFIG payload to carry in its ASSIGNMENT entries, or None when it has
        task configs (kept in chunks) or is longer than ``ASSIGNMENT_CONFIG_BYTES``. The
        same dict each call for one config (never mutate it)."""
        cached = self._assigned_config
        if cached is not None and cached[0] is self.config:
            return cached[1]
        head: dict[str, Any] | None = None
        if not self.config.tasks:
            head = job_config_head(self.config)
            if encoded_size(head) > ASSIGNMENT_CONFIG_BYTES:
                head = None
        self._assigned_config = (self.config, head)
        return head

    def set_task(self, partition: int, info: TaskContextInfo) -> None:
        self.tasks[partition] = info
        self.dirty_chunks.add(chunk_of(partition))

    def set_state(self, state: TaskState, now: datetime) -> None:
        if state is self.state:
            return
        self.state = state
        if state is TaskState.IN_PROGRESS and self.start_time is None:
            self.start_time = now
        if state.is_final:
            self.finish_time = now
        self.header_dirty = True

    @property
    def finished_tasks(self) -> int:
        return self.completed + self.given_up

    @property
    def live_task_count(self) -> int:
        """Tasks that count toward completion (deleted ones do not)."""
        return len(self.tasks) - len(self.deleted)


@dataclass
class WorkflowRuntime:
    """One workflow: its stored definition, its jobs and its context."""

    stored: StoredWorkflow
    jobs: dict[str, JobRuntime]
    state: TaskState = TaskState.NOT_STARTED
    start_time: datetime | None = None
    finish_time: datetime | None = None
    info: str = ""
    context_dirty: bool = False
    #: recurring templates: clones oldest first, and the last period boundary scheduled
    scheduled: list[str] = field(default_factory=list)
    last_boundary: float | None = None
    #: queues: when expired jobs were last purged (epoch seconds; in memory only, so a new
    #: leader purges what is due at once)
    last_purge: float | None = None
    #: its final state was counted in the metrics (so each finish counts once)
    counted: bool = False

    @property
    def name(self) -> str:
        return self.stored.name

    @property
    def order(self) -> list[str]:
        """The jobs in dependency order; a queue's in enqueue order."""
        if self.stored.queue is not None:
            return list(self.stored.queue)
        return self._dag_order

    @cached_property
    def _dag_order(self) -> list[str]:
        # A workflow's DAG never changes after start: ordered once.
        return topological_order({name: self.stored.parents.get(name, ()) for name in self.jobs})

    def set_state(self, state: TaskState, now: datetime, info: str = "") -> None:
        if state is self.state:
            return
        self.state = state
        if state is TaskState.IN_PROGRESS and self.start_time is None:
            self.start_time = now
        if state.is_final:
            self.finish_time = now
        if info:
            self.info = info
        self.context_dirty = True


@dataclass(frozen=True)
class LiveInstance:
    """What a participant's live node advertises."""

    name: str
    incarnation: int
    session: int
    tags: frozenset[str]
    capacity: int
    #: from INSTANCES/<inst>/CONFIG; a disabled instance gets no new attempts
    enabled: bool = True


def rebuild_indexes(job: JobRuntime, now_epoch: float) -> None:
    """Derive pending/delayed/active/counters from the task records (after a load)."""
    from helixpy.controller.rules import is_given_up, retry_ready_at

    job.pending.clear()
    job.delayed.clear()
    job.active.clear()
    job.completed = job.given_up = 0
    for p, t in enumerate(job.tasks):
        if p in job.deleted:
            continue
        if t.state is None:
            job.pending.append(p)
        elif t.state.is_active:
            assert t.assigned_participant is not None
            job.active[p] = t.assigned_participant
        elif t.state is TaskPartitionState.COMPLETED:
            job.completed += 1
        elif t.state is TaskPartitionState.STOPPED:
            job.pending.append(p)  # scheduled again once the job runs
        elif is_given_up(t, job.config):
            job.given_up += 1
        else:
            at = retry_ready_at(t, job.config)
            if at is None or at <= now_epoch:
                job.pending.append(p)
            else:
                job.delayed[p] = at
    if job.state in (TaskState.FAILING, TaskState.TIMING_OUT, TaskState.ABORTED):
        # Whatever still runs of a failing, timing-out or aborted job is being aborted: a
        # new leader must keep sending ABORT, not RUN.
        job.aborting = set(job.active)


def job_header(job: JobRuntime) -> dict[str, Any]:
    """A job CONTEXT header as stored, from the runtime."""
    header = JobContext(
        state=job.state, start_time=job.start_time, finish_time=job.finish_time, info=job.info
    ).header_dict()
    if job.deleted:
        header["deleted"] = sorted(job.deleted)
    return header


def workflow_context(wf: WorkflowRuntime) -> dict[str, Any]:
    """A workflow CONTEXT as stored, from the runtime."""
    out = WorkflowContext(
        state=wf.state,
        job_states={name: j.state for name, j in wf.jobs.items()},
        start_time=wf.start_time,
        finish_time=wf.finish_time,
        info=wf.info,
        scheduled_workflows=tuple(wf.scheduled),
        last_scheduled_workflow=wf.scheduled[-1] if wf.scheduled else None,
    ).to_dict()
    if wf.last_boundary is not None:
        out["last_boundary"] = wf.last_boundary
    return out
