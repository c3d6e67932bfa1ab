"""Job-queue mutations on the pipeline thread: enqueue, delete a job, flush, purge.

A queue's job order lives in its workflow CONFIG (``queue``). Every change writes the new
jobs' znodes first and the CONFIG (with the new order) last, in fenced multis, so a job
directory the order does not name is an interrupted write that a new leader removes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from helixpy.controller.contexts import context_ops, written
from helixpy.controller.loader import new_job_runtime
from helixpy.controller.removal import PURGE_GROUP
from helixpy.controller.runtime import WorkflowRuntime
from helixpy.controller.signals import Command
from helixpy.errors import AlreadyExists, InvalidConfig, NotFound
from helixpy.model import JobConfig, TaskState
from helixpy.model.queue import check_capacity
from helixpy.store.codec import encode
from helixpy.store.ops import Op, SetData

if TYPE_CHECKING:
    from helixpy.controller.commands import CommandHandler

log = logging.getLogger(__name__)

#: Jobs ``flush_queue`` removes.
FLUSHABLE = frozenset({TaskState.COMPLETED, TaskState.FAILED, TaskState.ABORTED})


def _queue(h: CommandHandler, name: str) -> WorkflowRuntime:
    wf = h.resident(name, "queue")
    if wf.stored.queue is None:
        raise InvalidConfig("queue", f"{name} is a workflow, not a job queue")
    return wf


def _config_op(h: CommandHandler, wf: WorkflowRuntime) -> Op:
    path = h.p.paths.workflow_config(wf.name)
    return SetData(path, encode(wf.stored.to_dict(), path=path))


def enqueue(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Append jobs in the given order, atomically: all or nothing is written. Consecutive
    enqueues to one queue are written together (see :mod:`~helixpy.controller.enqueues`)."""
    name, jobs = cmd.payload
    batch = h.enqueue_batch(_queue(h, name))
    h.p.work.touch(name)  # evaluated once its jobs are known (after the batch's write)
    jobs_list: list[tuple[str, JobConfig]] = list(jobs)
    seen: set[str] = set()
    for job_name, _ in jobs_list:
        if batch.has_job(job_name) or job_name in seen:
            raise AlreadyExists(f"queue {name} already has a job {job_name}")
        seen.add(job_name)
    check_capacity(batch.stored.config, batch.size, len(jobs_list))
    runtimes = [new_job_runtime(name, job_name, cfg) for job_name, cfg in jobs_list]
    ops: list[Op] = []
    for job in runtimes:
        ops += h.new_job_ops(name, job)
    result = {"code": "OK", "message": f"enqueued {len(runtimes)} job(s) to {name}"}
    batch.add(runtimes, ops, h.request_op(cmd.request_id, result))
    h.answer_when_written(cmd, batch.wait)
    return result


def delete_job(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Remove one job; refused while the queue runs unless forced (its tasks are then
    cancelled). The jobs around it become neighbours in the order."""
    name, job, force = cmd.payload
    wf = _queue(h, name)
    if job not in wf.jobs:
        raise NotFound(f"queue {name} has no job {job}")
    # A recurring queue's jobs never run in it (its runs do): it changes at any time. As in
    # Helix, the job also leaves the last run, if that has not finished, by the same rule.
    last = _last_run(h, wf)
    if last is not None and job in last.jobs:
        _check_deletable(last, force)
    else:
        last = None
    if not wf.stored.config.is_recurring:
        _check_deletable(wf, force)
    result = {"code": "OK", "message": f"deleted job {job} from {name}"}
    if last is not None:
        remove_jobs(h, last, [job], None, None)
    remove_jobs(h, wf, [job], cmd.request_id, result)
    return result


def _last_run(h: CommandHandler, wf: WorkflowRuntime) -> WorkflowRuntime | None:
    """A recurring queue's last run, while it has not finished."""
    last = h.p.workflows.get(wf.scheduled[-1]) if wf.scheduled else None
    return last if last is not None and not last.state.is_final else None


def _check_deletable(wf: WorkflowRuntime, force: bool) -> None:
    if not force and wf.state not in (TaskState.STOPPED, TaskState.NOT_STARTED):
        raise InvalidConfig(
            "queue.state",
            f"queue {wf.name} is {wf.state.value}: stop it first, or delete with force=True",
        )


def flush(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Remove every COMPLETED, FAILED and ABORTED job."""
    wf = _queue(h, cmd.payload)
    done = [n for n in wf.order if wf.jobs[n].state in FLUSHABLE and not wf.jobs[n].active]
    result = {"code": "OK", "message": f"flushed {len(done)} job(s) from {wf.name}"}
    remove_jobs(h, wf, done, cmd.request_id, result)
    return result


def remove_jobs(
    h: CommandHandler,
    wf: WorkflowRuntime,
    jobs: Iterable[str],
    request_id: str | None,
    result: dict[str, str] | None,
) -> None:
    """Drop ``jobs`` from the order (CONFIG first, with the queue's CONTEXT and the request
    node), then their trees. The CONTEXT rides with CONFIG so that whoever hears the answer
    (a flush, a delete) reads a job list without the removed jobs."""
    gone = set(jobs)
    assert wf.stored.queue is not None
    before = wf.stored
    removed = [wf.jobs[n] for n in sorted(gone) if n in wf.jobs]
    wf.stored = replace(wf.stored, queue=tuple(n for n in wf.stored.queue if n not in gone))
    for job in removed:
        wf.remove_job(job.name)
    wf.context_dirty = True
    ctx_ops, chunks = context_ops(h.p.zk, h.p.paths, wf)
    ops = [_config_op(h, wf), *ctx_ops]
    if request_id is not None and result is not None:
        ops.append(h.request_op(request_id, result))
    try:
        h.p.writer.commit(ops)
    except BaseException:
        # Nothing may look removed that is still stored: the pass fails, and a retry of
        # the request decides again from what was there.
        wf.stored = before
        for job in removed:
            wf.add_job(job)
        raise
    written(wf, chunks)
    wf.context_dirty = False
    # Read level by level and deleted in shared multis: a purge of thousands of expired
    # jobs is a few round trips, not a walk and a multi per job.
    roots = [h.p.paths.job(wf.name, job) for job in sorted(gone)]
    for i in range(0, len(roots), PURGE_GROUP):
        h.p.removal.remove_trees(roots[i : i + PURGE_GROUP])


def purge_due(h: CommandHandler, wf: WorkflowRuntime, now: datetime) -> float | None:
    """Purge queue jobs past their expiry: COMPLETED after ``expiry`` (the job's, else the
    queue's), FAILED / TIMED_OUT after ``terminal_state_expiry``. The next time to look.

    Purges are batched as in Helix: at most one every ``job_purge_interval`` per queue,
    taking every job due by then (the first one as soon as a job is due, also after a
    leader change), so a busy queue costs one write per interval, not one per job.
    """
    now_s = now.timestamp()
    # From the queue's expiry heap: what is due costs, not how many jobs it keeps.
    purge, due_next = wf.expired(now_s)
    next_purge = (
        None if wf.last_purge is None else wf.last_purge + wf.stored.config.job_purge_interval
    )
    if purge and next_purge is not None and next_purge > now_s:
        return next_purge  # due, but this queue purged less than an interval ago
    if purge:
        log.info("queue %s: purging expired jobs %s", wf.name, ", ".join(sorted(purge)))
        remove_jobs(h, wf, purge, None, None)
        wf.last_purge = now_s
        next_purge = now_s + wf.stored.config.job_purge_interval
    if due_next is not None and next_purge is not None:
        due_next = max(due_next, next_purge)
    return due_next


QUEUE_COMMANDS: dict[str, Callable[[CommandHandler, Command, datetime], dict[str, str]]] = {
    "enqueue": enqueue,
    "delete_job": delete_job,
    "flush": flush,
}
