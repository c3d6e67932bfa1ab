"""``rerun_failed``: run a FAILED, TIMED_OUT or STOPPED workflow's unfinished jobs again.

Every job that did not COMPLETE (failed, timed out, aborted, stopped, never run) starts over
as NOT_STARTED with fresh task records, so its attempts count from 1 again; completed jobs,
their results and every job's user content stay. Because attempt numbers restart, the rerun
jobs' stored results and error texts (keyed by attempt) are deleted first, in the same
ordered write, so a new attempt 1 never meets an old one's value. The workflow gets a new
uid (its old expiry item, if it had retired, then no longer matches and is never purged
mid-run), its target state START, a new start time (its ``timeout`` counts from the
rerun), and its ACTIVE entry back; then the leader loads it from
ZooKeeper as a new leader would (one decision, written, then applied by the loader), and the
next pass starts the jobs whose parents are done.

Decide, write, adopt: a leader that dies before the write leaves the workflow as it was; one
that dies after it leaves a rerun workflow its successor loads; the driver's retry of the
same request is answered from the stored reply.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from helixpy.controller.loader import load_workflow
from helixpy.controller.replies import OK, reply
from helixpy.controller.runtime import WorkflowRuntime, job_header, workflow_context
from helixpy.controller.signals import Command
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import TaskContextInfo, TaskState
from helixpy.store.codec import encode
from helixpy.store.ops import Create, Op, SetData
from helixpy.store.records import (
    job_context_ops,
    job_states_chunks,
    workflow_context_ops,
)

if TYPE_CHECKING:
    from helixpy.controller.commands import CommandHandler

log = logging.getLogger(__name__)

#: Workflow states from which what failed may run again.
RERUNNABLE = frozenset({TaskState.FAILED, TaskState.TIMED_OUT, TaskState.STOPPED})


def rerun_failed(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    name = str(cmd.payload)
    wf, retired = _workflow(h, name)
    again = [job for job in wf.jobs.values() if job.state is not TaskState.COMPLETED]
    if not again:
        return reply(OK, f"workflow {name}: every job completed, nothing to run again")
    paths = h.p.paths
    # 1. What goes first: the rerun jobs' results and error texts (keyed by attempt).
    trees = [root for job in again for root in _attempt_trees(h, name, job.name)]
    # 2. The workflow's definition (new uid, START), its jobs' fresh contexts, its own.
    stored = replace(
        wf.stored, uid=uuid.uuid4().hex, config=replace(wf.stored.config, target_state="START")
    )
    path = paths.workflow_config(name)
    ops: list[Op] = [SetData(path, encode(stored.to_dict(), path=path))]
    for job in again:
        job.state, job.start_time, job.finish_time, job.info = TaskState.NOT_STARTED, None, None, ""
        fresh = [TaskContextInfo(task_id=t.task_id) for t in job.tasks]
        ops += job_context_ops(
            paths,
            name,
            job.name,
            job_header(job),
            fresh,
            None,  # every chunk
            create=False,
            existing_chunks=job.stored_chunks,
        )
    # Its own timeout counts from the rerun (kept, it would time the rerun out at once).
    wf.state, wf.start_time, wf.finish_time, wf.info = TaskState.IN_PROGRESS, now, None, ""
    ops += _context_ops(h, wf)
    if retired:
        ops.append(Create(paths.active_entry(name)))
    result = reply(OK, f"workflow {name}: {len(again)} job(s) run again")
    h.p.removal.remove_trees(trees)
    h.p.writer.commit([*ops, h.request_op(cmd.request_id, result)])
    # 3. Adopt it as a new leader would: loaded from what was just written.
    loaded = load_workflow(h.p.zk, paths, name)
    if not isinstance(loaded, WorkflowRuntime):
        raise RuntimeError(f"workflow {name} unreadable right after its rerun: {loaded}")
    h.p.workflows.pop(name, None)
    h.p.work.forget(name)
    h.p.workflows[name] = loaded
    h.p.work.touch(name)
    h.p.watch_config(name)
    log.info("workflow %s: %s run again", name, ", ".join(job.name for job in again))
    return result


def _workflow(h: CommandHandler, name: str) -> tuple[WorkflowRuntime, bool]:
    """The workflow to rerun (loaded if it left the hot set), and whether it had; refused
    unless it may rerun."""
    wf = h.p.workflows.get(name)
    retired = wf is None
    if wf is None:
        if h.retired_state(name) is None:
            raise NotFound(f"workflow {name} does not exist")
        loaded = load_workflow(h.p.zk, h.p.paths, name)
        if not isinstance(loaded, WorkflowRuntime):
            raise InvalidConfig("workflow", f"{name} cannot be read back to rerun it")
        wf = loaded
    kind = _kind(wf)
    if kind:
        raise InvalidConfig("workflow", f"{name} is a {kind}: it has no failed run to repeat")
    if wf.state not in RERUNNABLE:
        raise InvalidConfig(
            "workflow.state",
            f"workflow {name} is {wf.state.value}: only a FAILED, TIMED_OUT or STOPPED "
            "workflow runs what did not complete again",
        )
    busy = sorted(job.name for job in wf.jobs.values() if job.active)
    if busy:
        raise InvalidConfig(
            "workflow.state",
            f"workflow {name} is still ending attempts of {', '.join(busy)}: "
            "rerun it once they have ended",
        )
    return wf, retired


def _kind(wf: WorkflowRuntime) -> str:
    if wf.stored.queue is not None:
        return "job queue"
    if wf.stored.config.is_recurring:
        return "recurring template"
    return ""


def _attempt_trees(h: CommandHandler, wf: str, job: str) -> list[str]:
    """The job's trees keyed by attempt number: its results and its error texts."""
    return [h.p.paths.task_results(wf, job), h.p.paths.task_errors(wf, job)]


def _context_ops(h: CommandHandler, wf: WorkflowRuntime) -> list[Op]:
    """The workflow CONTEXT as ``wf`` now holds it, every chunk of it."""
    paths = h.p.paths
    order = wf.order
    count = job_states_chunks(len(order))
    if count == 0:
        path = paths.workflow_context(wf.name)
        return [SetData(path, encode(workflow_context(wf), path=path))]
    return workflow_context_ops(
        paths,
        wf.name,
        workflow_context(wf, with_jobs=False),
        order,
        lambda job: wf.jobs[job].state.value,
        set(range(count)),
        count,
    )
