"""Jobs whose tasks are fixed when they start: targeted jobs and fan-out jobs.

A targeted job (``target_resource``) gets one task per partition of its resource
(:mod:`helixpy.controller.targeting`); a fan-out job (``expand``, in the spirit of Airflow
TaskFlow's ``.expand()``) one task per element of its parent job's list results, the element
as task config ``item``. Either way the tasks are decided in the pass that starts the job and
written to its CONFIG (the dynamic-task machinery's write) before any is scheduled, so a new
leader loads them as they were and never decides again. Should the leader die before that
write, its successor decides again from the same inputs: a parent's results never change
once it has COMPLETED. A job whose tasks cannot be made fails with an ``info`` saying why.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from helixpy.controller.runtime import JobRuntime, WorkflowRuntime
from helixpy.controller.targeting import materialize
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, TaskConfig, TaskContextInfo, TaskPartitionState, TaskState
from helixpy.model.values import JsonValue
from helixpy.store.records import job_config_update_ops, num_chunks
from helixpy.store.results import read_results

if TYPE_CHECKING:
    from helixpy.controller.commands import CommandHandler

log = logging.getLogger(__name__)

#: The task config key a fan-out task finds its element under.
ITEM = "item"


def start_late_bound(
    h: CommandHandler, workflows: list[WorkflowRuntime], now: datetime
) -> list[JobRuntime]:
    """Fix the tasks of every targeted or fan-out job that just started (or fail it);
    the jobs handled."""
    starting = [
        job
        for wf in workflows
        for job in wf.hot.values()  # it just started: hot
        if (job.config.target_resource is not None or job.config.expand is not None)
        and not job.config.tasks
        and job.state is TaskState.IN_PROGRESS
    ]
    for job in starting:
        if job.config.expand is not None:
            assert job.owner is not None
            decided = expanded(h, job.owner, job)
        else:
            decided = materialize(job.config, h.p.partitions)
        _adopt(h, job, decided, now)
    return starting


def expanded(h: CommandHandler, wf: WorkflowRuntime, job: JobRuntime) -> JobConfig | str | None:
    """``job``'s config with one task per element of its parent's list results, why it
    cannot have one, or None when the lists are empty (nothing to run). The parent's
    completed attempts come from the leader's memory (its context may not be written yet),
    their values from ZooKeeper (they were written with the reports that completed them)."""
    source = job.config.expand
    assert source is not None
    parent = wf.jobs.get(source)
    if parent is None or parent.state is not TaskState.COMPLETED:
        state = "missing" if parent is None else parent.state.value
        return f"expand: job {source} is {state}, not COMPLETED"
    done = {
        t.task_id: t.num_attempts
        for p, t in enumerate(parent.tasks)
        if p not in parent.deleted and t.state is TaskPartitionState.COMPLETED
    }
    values = read_results(h.p.zk, h.p.paths, wf.name, source, done)
    items: list[JsonValue] = []
    for task_id, value in values.items():
        if not isinstance(value, list):
            return (
                f"expand: task {task_id} of job {source} returned "
                f"{'no value' if value is None else type(value).__name__}, not a list"
            )
        items.extend(value)
    if not items:
        return None
    try:
        tasks = [TaskConfig(id=str(i), config={ITEM: item}) for i, item in enumerate(items)]
        return replace(job.config, tasks=tuple(tasks))
    except InvalidConfig as exc:
        return f"expand: {exc}"


def _adopt(
    h: CommandHandler, job: JobRuntime, decided: JobConfig | str | None, now: datetime
) -> None:
    """Write a starting job's tasks and make them pending, or end the job as decided."""
    if decided is None:  # fanned out to nothing: done at once (Airflow skips it)
        job.info = f"expanded to no tasks: job {job.config.expand}'s lists are empty"
        job.set_state(TaskState.COMPLETED, now)
        h.p.signals.wake()
        return
    limit = h.p.limits.max_tasks_per_job
    if not isinstance(decided, str) and len(decided.tasks) > limit:
        what = "fans out to" if job.config.expand is not None else "targets"
        unit = "tasks" if job.config.expand is not None else "partitions"
        decided = (
            f"it {what} {len(decided.tasks)} {unit}, over the cluster's max_tasks_per_job={limit}"
        )
    if isinstance(decided, str):
        log.info("job %s/%s failed: %s", job.workflow, job.name, decided)
        job.info = decided
        job.set_state(TaskState.FAILED, now)
        h.p.signals.wake()  # the workflow takes the failure in on the next pass
        return
    version = job.config_version + 1
    h.p.writer.commit(
        job_config_update_ops(h.p.paths, job.workflow, job.name, decided, job.deleted, version, 0)
    )
    job.config_version = version
    job.config = decided
    job.tasks = [TaskContextInfo(task_id=t.task_id) for t in decided.tasks]
    job.pending.extend(range(len(job.tasks)))
    job.dirty_chunks.update(range(num_chunks(len(job.tasks))))
    job.header_dirty = True
    job.heat()
    log.info("job %s/%s starts with %d task(s)", job.workflow, job.name, len(job.tasks))
