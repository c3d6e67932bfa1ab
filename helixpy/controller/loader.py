"""Rebuilding the leader's runtime from ZooKeeper (on takeover) and building new ones."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.controller.runtime import JobRuntime, WorkflowRuntime, rebuild_indexes
from helixpy.errors import CorruptNode, NotFound
from helixpy.model import JobConfig, TaskContextInfo, TaskState
from helixpy.store.paths import Paths
from helixpy.store.records import (
    StoredWorkflow,
    get_json,
    job_states_chunks,
    read_job_config,
    read_job_context,
    read_job_meta,
    read_stored_workflow,
    read_workflow_context,
    stored_chunks,
)

log = logging.getLogger(__name__)


def new_job_runtime(wf: str, name: str, cfg: JobConfig) -> JobRuntime:
    tasks = [TaskContextInfo(task_id=cfg.task_id(p)) for p in range(cfg.task_count)]
    job = JobRuntime(
        workflow=wf, name=name, config=cfg, tasks=tasks, stored_chunks=stored_chunks(len(tasks))
    )
    rebuild_indexes(job, 0.0)
    return job


def new_workflow_runtime(stored: StoredWorkflow, jobs: dict[str, JobConfig]) -> WorkflowRuntime:
    return WorkflowRuntime(
        stored=stored,
        jobs={name: new_job_runtime(stored.name, name, cfg) for name, cfg in jobs.items()},
    )


class Broken:
    """A workflow whose znodes could not be read: it is marked FAILED with the reason."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason


def load_workflows(
    zk: KazooClient, paths: Paths, root: str
) -> Iterator[WorkflowRuntime | Broken | str]:
    """The workflows named by ``root``'s children (``ACTIVE``; ``WORKFLOWS`` once, to build
    the index): a runtime, a ``Broken`` one, or a bare name (half-written or half-deleted)."""
    try:
        names = sorted(zk.get_children(root))
    except NoNodeError:
        return
    for name in names:
        yield load_workflow(zk, paths, name)


def load_workflow(zk: KazooClient, paths: Paths, name: str) -> WorkflowRuntime | Broken | str:
    """One stored workflow: its runtime, ``Broken``, or its bare name (half-written)."""
    now = datetime.now(UTC).timestamp()
    try:
        stored = read_stored_workflow(zk, paths, name)
    except NotFound:
        # CONFIG is written last at start and deleted first at delete: its absence marks
        # a start or delete cut short by a leader change.
        return name
    except CorruptNode as exc:
        return Broken(name, str(exc))
    try:
        ctx = read_workflow_context(zk, paths, name)
        ctx_raw = get_json(zk, paths.workflow_context(name)) or {}
        jobs: dict[str, JobRuntime] = {}
        for job_name in stored.job_names:
            cfg = read_job_config(zk, paths, name, job_name)
            header = get_json(zk, paths.job_context(name, job_name)) or {}
            jctx = read_job_context(zk, paths, name, job_name, header)
            tasks = [
                jctx.tasks.get(p) or TaskContextInfo(task_id=cfg.task_id(p))
                for p in range(cfg.task_count)
            ]
            job = JobRuntime(
                workflow=name,
                name=job_name,
                config=cfg,
                tasks=tasks,
                state=jctx.state,
                start_time=jctx.start_time,
                finish_time=jctx.finish_time,
                info=jctx.info,
            )
            job.deleted, job.config_version = read_job_meta(zk, paths, name, job_name)
            # Chunks of tasks added (add_task, a targeted job's start) whose context
            # was not written yet, because the leader changed in between: create them.
            job.stored_chunks = int(header.get("chunks", 0))
            job.dirty_chunks = set(range(job.stored_chunks, stored_chunks(len(tasks))))
            job.header_dirty = bool(job.dirty_chunks)
            rebuild_indexes(job, now)
            jobs[job_name] = job
    except (CorruptNode, NotFound, KeyError, TypeError, ValueError) as exc:
        return Broken(name, f"unreadable: {exc}")
    wf = WorkflowRuntime(
        stored=stored,
        jobs=jobs,
        state=ctx.state,
        start_time=ctx.start_time,
        finish_time=ctx.finish_time,
        info=ctx.info,
        scheduled=list(ctx.scheduled_workflows),
        last_boundary=ctx_raw.get("last_boundary"),
    )
    if wf.state is TaskState.NOT_STARTED:
        wf.context_dirty = True
    if job_states_chunks(len(wf.order)) or ctx_raw.get("job_chunks"):
        wf.ctx_chunks = -1  # listed before its first write (controller/contexts)
    return wf
