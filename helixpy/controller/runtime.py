"""The leader's in-memory picture of the cluster, rebuilt from ZooKeeper on takeover.

While it leads, the controller is the only writer of configs, contexts and assignments, so
this picture is authoritative: a pass reads only what participants changed (their STATE
nodes and live nodes) and writes only what it changed (dirty chunks and headers). Nothing
here does I/O; :mod:`helixpy.controller.rules` makes the decisions over these objects.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Sequence
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

#: job states a pass has nothing to do in, while no attempt runs, no retry waits and nothing
#: of the job is unwritten (see ``JobRuntime.cold``)
RESTING = frozenset({TaskState.NOT_STARTED, *(s for s in TaskState if s.is_final)})


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
    #: the workflow holding it (set by ``WorkflowRuntime``): told of every state change
    owner: WorkflowRuntime | None = field(default=None, repr=False, compare=False)

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
        self.heat()

    def set_state(self, state: TaskState, now: datetime) -> None:
        if state is self.state:
            return
        old, self.state = self.state, state
        if state is TaskState.IN_PROGRESS and self.start_time is None:
            self.start_time = now
        if state.is_final:
            self.finish_time = now
        self.header_dirty = True
        if self.owner is not None:
            self.owner.job_changed(self, old)

    def heat(self) -> None:
        """Something of this job changed outside ``set_state`` / ``set_task``: passes look
        at it again (see ``WorkflowRuntime.hot``)."""
        if self.owner is not None:
            self.owner.hot[self.name] = self

    @property
    def cold(self) -> bool:
        """Nothing for a pass to do here until its state changes: not started or finished,
        no attempt out, no retry waiting, nothing unwritten."""
        return (
            self.state in RESTING
            and not self.active
            and not self.delayed
            and not self.aborting
            and not self.header_dirty
            and not self.dirty_chunks
        )

    @property
    def finished_tasks(self) -> int:
        return self.completed + self.given_up

    @property
    def live_task_count(self) -> int:
        """Tasks that count toward completion (deleted ones do not)."""
        return len(self.tasks) - len(self.deleted)

    def live_task_ids(self) -> set[str]:
        """The ids of its tasks not deleted (``delete_task`` leaves tombstones)."""
        return {t.task_id for p, t in enumerate(self.tasks) if p not in self.deleted}


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
    #: the jobs a pass must look at, in the order they became hot: every job but the cold
    #: ones (``JobRuntime.cold``), which leave at the end of a pass that wrote them
    #: (``cool``) and come back with their next change. A queue that has run 20,000 jobs
    #: costs a pass what its running ones cost, not a walk of all of them.
    hot: dict[str, JobRuntime] = field(init=False, repr=False, compare=False)
    #: how many jobs are in each state
    job_states: Counter[TaskState] = field(init=False, repr=False, compare=False)
    #: (the order it was computed for, each job's position in it)
    _positions: tuple[Sequence[str], dict[str, int]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    #: a queue's (order, index of its first NOT_STARTED job, or len(order)), see ``frontier``
    _frontier: tuple[Sequence[str], int] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    #: a queue's finished jobs by when they expire: a heap of (due, job); entries of jobs
    #: gone or changed since are skipped when they come up (``expired``)
    _expiring: list[tuple[float, str]] = field(
        default_factory=list, init=False, repr=False, compare=False
    )
    #: the config ``_expiring``'s due times were computed with
    _expiring_for: object = field(default=None, init=False, repr=False, compare=False)
    #: CONTEXT chunks (``CONTEXT/<i>``, job states of a big workflow) that exist: -1 when
    #: unknown (a failed write may have landed in part), found by listing them
    ctx_chunks: int = field(default=0, init=False, repr=False, compare=False)
    #: the order the chunks were last written for (None: rewrite them all)
    ctx_order: Sequence[str] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.hot = {}
        self.job_states = Counter()
        for job in self.jobs.values():
            self._attach(job)

    def _attach(self, job: JobRuntime) -> None:
        job.owner = self
        self.job_states[job.state] += 1
        self.hot[job.name] = job  # cooled by the first pass that looks at it
        self._push_expiry(job)

    def expiry_of(self, job: JobRuntime) -> float | None:
        """When a finished queue job is due for purging (None: never, or not finished):
        COMPLETED after ``expiry`` (the job's, else the queue's), FAILED / TIMED_OUT
        after the job's ``terminal_state_expiry``."""
        if job.finish_time is None or self.stored.queue is None:
            return None
        ttl: float | None
        if job.state is TaskState.COMPLETED:
            ttl = job.config.expiry if job.config.expiry is not None else self.stored.config.expiry
        elif job.state in (TaskState.FAILED, TaskState.TIMED_OUT):
            ttl = job.config.terminal_state_expiry  # None: kept until flushed
        else:
            return None
        return None if ttl is None else job.finish_time.timestamp() + ttl

    def _push_expiry(self, job: JobRuntime) -> None:
        due = self.expiry_of(job)
        if due is not None:
            heapq.heappush(self._expiring, (due, job.name))

    def expired(self, now_s: float) -> tuple[list[str], float | None]:
        """A queue's finished jobs due by ``now_s`` that nothing runs of any more, and the
        next due time of the others (a job still being cancelled is left out of both: its
        attempt's end looks at the queue again). Costs what is due, not the queue's size;
        the entries stay until the jobs are removed (``remove_job``)."""
        if self._expiring_for is not self.stored.config:
            # Due times follow the config: computed again when it changed.
            self._expiring_for = self.stored.config
            self._expiring = []
            for each in self.jobs.values():
                self._push_expiry(each)
        heap = self._expiring
        due: dict[str, None] = {}
        kept: list[tuple[float, str]] = []
        while heap and heap[0][0] <= now_s:
            entry = heapq.heappop(heap)
            found = self.jobs.get(entry[1])
            if found is None or self.expiry_of(found) != entry[0]:
                continue  # removed, or finished again since: its own entry stands
            kept.append(entry)
            if not found.active:
                due[found.name] = None
        next_due = heap[0][0] if heap else None
        for entry in kept:
            heapq.heappush(heap, entry)
        return list(due), next_due

    def add_job(self, job: JobRuntime) -> None:
        """A new job (an enqueue); it is hot until a pass wrote it."""
        self.jobs[job.name] = job
        self._attach(job)

    def remove_job(self, name: str) -> None:
        """Forget job ``name`` (purged, deleted or flushed from a queue)."""
        job = self.jobs.pop(name, None)
        if job is None:
            return
        self.job_states[job.state] -= 1
        self.hot.pop(name, None)
        job.owner = None

    def job_changed(self, job: JobRuntime, old: TaskState) -> None:
        self.job_states[old] -= 1
        self.job_states[job.state] += 1
        self.hot[job.name] = job
        if job.state.is_final:
            self._push_expiry(job)

    def hot_jobs(self) -> list[JobRuntime]:
        """The jobs a pass must look at (a copy: looking may change them)."""
        return list(self.hot.values())

    def cool(self) -> None:
        """After a pass wrote this workflow: cold jobs leave ``hot``."""
        for name in [n for n, job in self.hot.items() if job.cold]:
            del self.hot[name]

    def count(self, states: frozenset[TaskState]) -> int:
        """How many jobs are in one of ``states``."""
        return sum(self.job_states[s] for s in states)

    def position(self, job: str) -> int:
        """Where ``job`` is in ``order`` (computed once per order)."""
        order = self.order
        cached = self._positions
        if cached is None or cached[0] is not order:
            if cached is not None and extends(order, cached[0]):
                positions = cached[1]  # an enqueue appended: the others keep their place
                positions.update((order[i], i) for i in range(len(cached[0]), len(order)))
            else:
                positions = {name: i for i, name in enumerate(order)}
            cached = (order, positions)
            self._positions = cached
        return cached[1][job]

    def frontier(self) -> int:
        """A queue's first NOT_STARTED job's index in ``order`` (``len(order)`` if none).

        A queue starts its jobs in order and no job goes back to NOT_STARTED, so every job
        before it has started: it only moves forward, and an enqueue (which appends) keeps
        it. Any other change of the order (a purge, a delete) finds it again from 0.
        """
        order = self.order
        start = 0
        cached = self._frontier
        if cached is not None:
            old, index = cached
            if extends(order, old):
                start = index
        i = start
        while i < len(order) and self.jobs[order[i]].state is not TaskState.NOT_STARTED:
            i += 1
        self._frontier = (order, i)
        return i

    @property
    def name(self) -> str:
        return self.stored.name

    @property
    def order(self) -> Sequence[str]:
        """The jobs in dependency order; a queue's in enqueue order."""
        if self.stored.queue is not None:
            return self.stored.queue
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


def extends(order: Sequence[str], old: Sequence[str]) -> bool:
    """Whether ``order`` is ``old`` with jobs appended (or ``old`` itself)."""
    return order is old or (len(order) >= len(old) and order[: len(old)] == old)


@dataclass(frozen=True)
class LiveInstance:
    """What a participant's live node advertises."""

    name: str
    incarnation: int
    session: int
    tags: frozenset[str]
    #: the slots placement may fill: advertised capacity minus ``abandoned``
    capacity: int
    #: from INSTANCES/<inst>/CONFIG; a disabled instance gets no new attempts
    enabled: bool = True
    #: slots held by threads of attempts abandoned after their cancel grace
    abandoned: int = 0


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


def job_header(job: JobRuntime, deleted: set[int] | None = None) -> dict[str, Any]:
    """A job CONTEXT header as stored, from the runtime (with ``deleted`` instead of the
    job's tombstones when given: a change about to be written)."""
    header = JobContext(
        state=job.state, start_time=job.start_time, finish_time=job.finish_time, info=job.info
    ).header_dict()
    tombstones = job.deleted if deleted is None else deleted
    if tombstones:
        header["deleted"] = sorted(tombstones)
    return header


def workflow_context(wf: WorkflowRuntime, with_jobs: bool = True) -> dict[str, Any]:
    """A workflow CONTEXT as stored, from the runtime (``with_jobs=False``: without its
    jobs' states, for a workflow that keeps them in chunks)."""
    out = WorkflowContext(
        state=wf.state,
        job_states={name: j.state for name, j in wf.jobs.items()} if with_jobs else {},
        start_time=wf.start_time,
        finish_time=wf.finish_time,
        info=wf.info,
        scheduled_workflows=tuple(wf.scheduled),
        last_scheduled_workflow=wf.scheduled[-1] if wf.scheduled else None,
    ).to_dict()
    if wf.last_boundary is not None:
        out["last_boundary"] = wf.last_boundary
    return out
