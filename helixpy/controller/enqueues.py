"""Enqueues that arrive together, written together: one CONFIG write per queue per burst.

A queue's job order lives in its CONFIG, so one enqueue at a time rewrites the whole order
per job. Consecutive enqueues to one queue within a pass are decided one by one (each may
be refused on its own: a taken name, a full capacity) against the batch so far, then
written as: every new job's znodes, then the CONFIG with the new order and every accepted
enqueue's stored reply in one multi. Nothing is answered, and nothing changes in memory,
before that multi landed; a failure answers every enqueue of the batch with it (the pass is
retried, the drivers retry with the same request ids).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from helixpy.controller.runtime import JobRuntime, WorkflowRuntime
from helixpy.store.codec import encode
from helixpy.store.fencing import FencedWriter
from helixpy.store.ops import Op, SetData, split_batches
from helixpy.store.paths import Paths
from helixpy.store.records import StoredWorkflow


@dataclass
class EnqueueBatch:
    """The enqueues to one queue decided so far in this pass, not yet written."""

    wf: WorkflowRuntime
    stored: StoredWorkflow
    jobs: list[JobRuntime] = field(default_factory=list)
    job_ops: list[Op] = field(default_factory=list)
    request_ops: list[Op] = field(default_factory=list)
    error: BaseException | None = None
    written: bool = False
    #: names of ``jobs`` (a burst of n enqueues costs n lookups, not n^2 / 2 comparisons)
    names: set[str] = field(default_factory=set)

    def has_job(self, name: str) -> bool:
        return name in self.wf.jobs or name in self.names

    @property
    def size(self) -> int:
        return len(self.wf.jobs) + len(self.jobs)

    def add(self, runtimes: list[JobRuntime], job_ops: list[Op], request_op: Op) -> None:
        """Add one enqueue (its jobs already checked against :meth:`has_job`)."""
        self.jobs += runtimes
        self.names.update(j.name for j in runtimes)
        self.job_ops += job_ops
        self.request_ops.append(request_op)

    def write(self, writer: FencedWriter, paths: Paths) -> None:
        """Jobs first, then CONFIG and the replies together; then the runtime learns them."""
        if self.written or self.error is not None:
            return
        # The new order is built once here (a copy of the queue's order per enqueue was
        # O(queue length) each).
        assert self.stored.queue is not None
        self.stored = replace(
            self.stored, queue=self.stored.queue + tuple(j.name for j in self.jobs)
        )
        path = paths.workflow_config(self.wf.name)
        tail: list[Op] = [SetData(path, encode(self.stored.to_dict(), path=path))]
        tail += self.request_ops
        try:
            if len(split_batches(self.job_ops + tail, writer.checks)) == 1:
                writer.commit(self.job_ops + tail)
            else:  # the replies must land with CONFIG: never split them from it
                writer.commit(self.job_ops)
                writer.commit(tail)
        except BaseException as exc:
            self.error = exc
            raise
        self.written = True
        self.wf.stored = self.stored
        for job in self.jobs:
            self.wf.add_job(job)
        self.wf.context_dirty = True

    def wait(self) -> None:
        """For one enqueue of the batch: raise what the write raised, if anything."""
        if self.error is not None:
            raise self.error
        if not self.written:
            raise RuntimeError(f"enqueue batch for {self.wf.name} was never written")
