"""Which resident workflows one pass must look at: what changed, what is due, what runs.

A pass used to evaluate, schedule and write by walking every active workflow, so with
thousands of small workflows in flight each pass cost O(in flight) even when one report
came in. The work list keeps the pass O(what changed):

- ``touched``: workflows something changed this pass (a start, an enqueue, a folded report,
  a placement, a purge) -- evaluated, written and re-indexed;
- timers: each workflow's next due time as its last evaluation returned it (a retry delay,
  a timeout, a delayed start), so a workflow nothing touches is evaluated again when due;
- ``busy``: workflows with attempts on instances (the load, the assignments);
- ``candidates``: jobs with pending tasks, in scheduling order (a heap: a pass takes as
  many as the free slots can use, not a sort of every waiting job);
- ``templates``: what recurring schedules look at; queue purge checks have timers of their
  own (``purges``).

Ownership: the pipeline thread alone reads and writes this. Whoever mutates a workflow's
runtime marks it (:meth:`touch`); a mutation whose reach is not one known workflow (an
instance left, a cluster setting, a partition moved, a command other than a start or an
enqueue) asks for a sweep instead (:meth:`sweep_next`), which looks at every resident
workflow. Sweeps also run every :data:`SWEEP_EVERY` seconds as a check: a workflow that a
sweep finds changed although nothing marked it is logged as an error (a missed mark).
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Iterable, Iterator, Mapping

from helixpy.controller.rules import is_schedulable, schedule_key
from helixpy.controller.runtime import JobRuntime, WorkflowRuntime
from helixpy.model import TaskState

#: seconds between sweeps that check no change went unmarked
SWEEP_EVERY = 30.0


class Timers:
    """One due time per workflow, earliest first (a heap with lazy deletion)."""

    def __init__(self) -> None:
        self._at: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []

    def set(self, name: str, at: float | None) -> None:
        """``name`` is due at ``at`` (None: it has no timer)."""
        if at is None:
            self._at.pop(name, None)
            return
        if self._at.get(name) == at:
            return
        self._at[name] = at
        heapq.heappush(self._heap, (at, name))
        if len(self._heap) > 2 * len(self._at) + 64:
            self._heap = [(t, n) for n, t in self._at.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: float) -> list[str]:
        """The workflows due by ``now``; their timers are cleared."""
        out: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            at, name = heapq.heappop(self._heap)
            if self._at.get(name) == at:
                del self._at[name]
                out.append(name)
        return out

    def next(self) -> float | None:
        """The earliest due time, None if no timer is set."""
        while self._heap and self._at.get(self._heap[0][1]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._at)


#: a candidate: its scheduling key (rules.schedule_key), workflow, job
_Entry = tuple[tuple[int, bool, float, str, int], str, str]


class Candidates:
    """Jobs with pending tasks in scheduling order (:func:`rules.schedule_key`).

    An entry is added when its workflow is touched (a job can only gain pending tasks
    through a change that touches it), checked when taken (it may have finished or left
    since), and given back after the placement if it still has pending tasks.
    """

    def __init__(self) -> None:
        self._heap: list[_Entry] = []
        self._queued: set[tuple[str, str]] = set()
        self._taken: list[tuple[_Entry, WorkflowRuntime, JobRuntime]] = []

    def add(self, wf: WorkflowRuntime) -> None:
        """Queue ``wf``'s schedulable jobs not queued yet."""
        if wf.state is not TaskState.IN_PROGRESS:
            return
        for job in wf.hot_jobs():  # a schedulable job is IN_PROGRESS: never cold
            name = job.name
            if is_schedulable(wf, job) and (wf.name, name) not in self._queued:
                self._queued.add((wf.name, name))
                key = schedule_key(wf, wf.position(name), job)
                heapq.heappush(self._heap, (key, wf.name, name))

    def rebuild(self, workflows: Iterable[WorkflowRuntime]) -> None:
        """Forget every entry and queue ``workflows`` afresh (a sweep: priorities may have
        changed)."""
        self._heap, self._queued = [], set()
        for wf in workflows:
            self.add(wf)

    def take(self, workflows: Mapping[str, WorkflowRuntime]) -> Iterator[JobRuntime]:
        """The queued jobs in order, as long as the caller iterates; each one taken is
        given back by :meth:`give_back` if it still has pending tasks."""
        while self._heap:
            entry = heapq.heappop(self._heap)
            _, wf_name, job_name = entry
            self._queued.discard((wf_name, job_name))
            wf = workflows.get(wf_name)
            job = wf.jobs.get(job_name) if wf is not None else None
            if wf is None or job is None or not is_schedulable(wf, job):
                continue  # finished, stopped or gone since it was queued
            self._taken.append((entry, wf, job))
            yield job

    def give_back(self) -> None:
        """Re-queue (at their place) the jobs taken since the last call that still have
        pending tasks: one push each, not a scan of their workflows (a queue of 20,000)."""
        taken, self._taken = self._taken, []
        for entry, wf, job in taken:
            key = (wf.name, job.name)
            if is_schedulable(wf, job) and key not in self._queued:
                self._queued.add(key)
                heapq.heappush(self._heap, entry)

    def __len__(self) -> int:
        return len(self._heap)


class WorkList:
    """The pass's indexes over the resident workflows (see the module docstring)."""

    def __init__(self) -> None:
        self.touched: set[str] = set()
        self.timers = Timers()
        self.busy: set[str] = set()
        self.candidates = Candidates()
        self.templates: set[str] = set()
        #: queues' next purge check (epoch seconds)
        self.purges = Timers()
        self._sweep = True
        self._next_sweep = time.monotonic() + SWEEP_EVERY
        #: whether the pass in progress is a sweep
        self.sweeping = False
        #: on a periodic sweep: what marks and timers named (the rest should not change)
        self._expected: set[str] | None = None

    def touch(self, name: str) -> None:
        """Something changed in workflow ``name``: this pass evaluates and writes it."""
        self.touched.add(name)

    def sweep_next(self) -> None:
        """The next pass looks at every resident workflow."""
        self._sweep = True

    def begin(self, workflows: Mapping[str, WorkflowRuntime], now: float) -> list[WorkflowRuntime]:
        """Start a pass: the workflows to evaluate (all on a sweep; else the touched and the
        due), each marked touched."""
        due = self.timers.pop_due(now)
        self.sweeping = self._sweep or time.monotonic() >= self._next_sweep
        if self.sweeping:
            self._expected = None if self._sweep else self.touched | set(due)
            self._sweep = False
            self._next_sweep = time.monotonic() + SWEEP_EVERY
            self.touched.update(workflows)
        else:
            self.touched.update(due)
        return self.resident(workflows, self.touched)

    def unmarked(self, workflows: Iterable[WorkflowRuntime]) -> list[str]:
        """After a periodic sweep evaluated everything: the workflows it changed that no
        mark or timer had named (each one a missed :meth:`touch`)."""
        expected, self._expected = self._expected, None
        if expected is None:
            return []
        return sorted(
            wf.name
            for wf in workflows
            if wf.name not in expected
            and (wf.context_dirty or any(j.header_dirty for j in wf.hot.values()))
        )

    @staticmethod
    def resident(
        workflows: Mapping[str, WorkflowRuntime], names: Iterable[str]
    ) -> list[WorkflowRuntime]:
        """The workflows of ``names`` still resident (removed ones are skipped)."""
        out = []
        for name in names:
            wf = workflows.get(name)
            if wf is not None:
                out.append(wf)
        return out

    def settle(self, workflows: Mapping[str, WorkflowRuntime]) -> None:
        """After a pass wrote: re-index what it touched; forget what left."""
        for name in self.touched:
            wf = workflows.get(name)
            if wf is None:
                self.forget(name)
                continue
            _mark(self.busy, name, any(job.active for job in wf.hot.values()))
            _mark(self.templates, name, wf.stored.config.is_recurring)
        self.touched.clear()
        if self.sweeping:
            # Names of workflows that left without a mark (a force delete) go too.
            for index in (self.busy, self.templates):
                index.intersection_update(workflows)
        self.sweeping = False

    def forget(self, name: str) -> None:
        for index in (self.busy, self.templates):
            index.discard(name)
        self.timers.set(name, None)
        self.purges.set(name, None)

    def failed(self) -> None:
        """A pass failed: what it touched stays touched, and the next pass sweeps."""
        self._sweep = True


def _mark(index: set[str], name: str, member: bool) -> None:
    if member:
        index.add(name)
    else:
        index.discard(name)
