"""Helix's ``AllowOverlapJobAssignment``: keep a job's tasks off instances busy with another
job of the same workflow.

With ``WorkflowConfig.allow_overlap_job_assignment`` False (Helix's default), a task of job
J is not placed on an instance that runs an active attempt (INIT or RUNNING) of another
IN_PROGRESS job of J's workflow; jobs of a workflow that run at once (``parallel_jobs`` > 1,
independent branches of a DAG, a queue's parallel jobs) then use disjoint instances. A job
that is STOPPING, FAILING or TIMING_OUT holds none: Helix looks at IN_PROGRESS jobs only.
Attempts placed earlier in the same pass count, so two jobs placed in one pass do not meet
on an instance either.

Pure bookkeeping over the runtime's jobs: :func:`helixpy.controller.rules.assign` asks it
which instances a job may not use and tells it what it placed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from helixpy.controller.runtime import JobRuntime
from helixpy.model import TaskState


class Overlap:
    """Which instances each workflow's jobs occupy, for the workflows that forbid overlap.

    ``exclusive(job)``: whether the job's workflow forbids overlap; ``siblings(job)``: the
    jobs of its workflow that may hold attempts (its hot jobs). Occupancy is read once per
    workflow per pass, then kept up to date by :meth:`placed`.
    """

    def __init__(
        self,
        exclusive: Callable[[JobRuntime], bool],
        siblings: Callable[[JobRuntime], Iterable[JobRuntime]],
    ) -> None:
        self._exclusive = exclusive
        self._siblings = siblings
        # workflow -> instance -> active attempts there by job name; None for a workflow
        # with at most one job IN_PROGRESS (most: nothing to keep apart, nothing to count)
        self._occupied: dict[str, dict[str, Counter[str]] | None] = {}

    def _of(self, job: JobRuntime) -> dict[str, Counter[str]] | None:
        if job.workflow in self._occupied:
            return self._occupied[job.workflow]
        occupied: dict[str, Counter[str]] | None = None
        if self._exclusive(job):
            running = [o for o in self._siblings(job) if o.state is TaskState.IN_PROGRESS]
            # (states do not change while a pass places tasks: a workflow with one job
            # IN_PROGRESS now has one until the placement ends)
            if len(running) > 1:
                occupied = {}
                for other in running:
                    for inst in other.active.values():
                        occupied.setdefault(inst, Counter())[other.name] += 1
        self._occupied[job.workflow] = occupied
        return occupied

    def blocked(self, job: JobRuntime) -> frozenset[str]:
        """The instances ``job`` may not use now: those running another job's attempts."""
        occupied = self._of(job)
        if not occupied:
            return frozenset()
        return frozenset(
            inst for inst, jobs in occupied.items() if any(n != job.name for n in jobs)
        )

    def placed(self, job: JobRuntime, instance: str) -> None:
        """Record an attempt of ``job`` placed on ``instance`` in this pass."""
        occupied = self._of(job)
        if occupied is not None:
            occupied.setdefault(instance, Counter())[job.name] += 1
