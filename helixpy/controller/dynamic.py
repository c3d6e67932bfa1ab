"""Dynamic tasks: ``add_task`` and ``delete_task`` on a running generic job.

Helix's rules: any job but a targeted one (here also not a fan-out job, whose tasks are
fixed from its parent's results, nor a streaming job, whose tasks are its slots); task ids
are unique; a command sits on exactly one of the job and the task; nothing changes in a
terminal or stopping state. A job defined by ``num_tasks`` is first turned into the same
job defined by task configs, ids ``"0"`` to ``"N-1"`` (the ids its tasks already have), as
Helix's JobConfig builder turns ``NumberOfTasks`` into task configs. Partitions never
move: an added task takes the next partition, a deleted one keeps its slot as a tombstone
(``JobRuntime.deleted``, the job CONFIG's and CONTEXT's ``deleted``), so task keys, context
chunks and assignments stay valid. Both bump the job's
config version, which participants use to re-read a cached job config.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from helixpy.controller import rules
from helixpy.controller.runtime import JobRuntime, job_header
from helixpy.controller.signals import Command
from helixpy.errors import AlreadyExists, InvalidConfig, NotFound
from helixpy.model import JobConfig, TaskConfig, TaskContextInfo, TaskPartitionState, TaskState
from helixpy.store.records import (
    chunk_of,
    job_config_update_ops,
    job_context_ops,
    stored_chunks,
)

if TYPE_CHECKING:
    from helixpy.controller.commands import CommandHandler

log = logging.getLogger(__name__)

#: Job states in which tasks may be added or deleted (not terminal, not stopping/failing).
_CHANGEABLE = frozenset({TaskState.NOT_STARTED, TaskState.IN_PROGRESS, TaskState.STOPPED})


def _job(h: CommandHandler, wf_name: str, job_name: str) -> JobRuntime:
    wf = h.resident(wf_name)  # NotFound, or InvalidConfig naming its final state
    if job_name not in wf.jobs:
        raise NotFound(f"job {wf_name}/{job_name} does not exist")
    job = wf.jobs[job_name]
    kind = (
        "a targeted job"
        if job.config.is_targeted
        else "a fan-out job"
        if job.config.expand is not None
        else "a streaming job"
        if job.config.stream
        else None
    )
    if kind is not None:
        raise InvalidConfig(
            "job.tasks",
            f"job {wf_name}/{job_name} is {kind}: its tasks are fixed, "
            "none can be added or deleted",
        )
    if job.state not in _CHANGEABLE or wf.state.is_final:
        raise InvalidConfig(
            "job.state",
            f"job {wf_name}/{job_name} is {job.state.value}: "
            "tasks change only while it runs or is stopped",
        )
    return job


def _listed(cfg: JobConfig) -> JobConfig:
    """``cfg`` defined by task configs: a ``num_tasks`` job's tasks get configs with the ids
    they already have (the partition numbers), so contexts and assignments stay valid."""
    if cfg.tasks:
        return cfg
    return replace(
        cfg, tasks=tuple(TaskConfig(id=str(p)) for p in range(cfg.num_tasks)), num_tasks=0
    )


def _commit(
    h: CommandHandler,
    job: JobRuntime,
    cfg: JobConfig,
    cmd: Command,
    result: dict[str, str],
    tasks: list[TaskContextInfo],
    deleted: set[int],
) -> None:
    """Write the job's new config and its new context in one multi, then adopt them.

    The context goes with the config (not with the next pass) because the driver promises
    the change is visible in ``get_job_context`` once the call returns: the reply is sent
    when this multi lands, and a pass may come later than the caller's next read.
    """
    version = job.config_version + 1
    # (a job that was defined by num_tasks has no task-config chunks yet: all are written)
    stored = len(job.config.tasks)
    ops = job_config_update_ops(h.p.paths, job.workflow, job.name, cfg, deleted, version, stored)
    ops += job_context_ops(
        h.p.paths,
        job.workflow,
        job.name,
        job_header(job, deleted),
        tasks,
        job.dirty_chunks | {chunk_of(len(tasks) - 1)},
        create=False,
        existing_chunks=job.stored_chunks,
    )
    h.p.writer.commit([*ops, h.request_op(cmd.request_id, result)])
    job.config_version = version
    job.config = cfg
    job.tasks = tasks
    job.deleted = deleted
    # The chunks now exist; the dirty marks stay, so the next pass writes its own view of
    # the job again (with its workflow's context and the assignments) as it always does.
    job.stored_chunks = stored_chunks(len(tasks))
    job.header_dirty = True
    job.heat()


def add_task(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    wf_name, job_name, task = cmd.payload
    job = _job(h, wf_name, job_name)
    assert isinstance(task, TaskConfig)
    listed = _listed(job.config)
    if task.task_id in job.live_task_ids():
        raise AlreadyExists(f"job {wf_name}/{job_name} already has a task {task.task_id}")
    if any(t.task_id == task.task_id for t in listed.tasks):
        raise InvalidConfig("task.id", f"{task.task_id} was used by a deleted task")
    if (task.command is None) == (job.config.command is None):
        raise InvalidConfig(
            "task.command", "a command must be set on exactly one of the job and the task"
        )
    old_count = len(job.tasks)
    cfg = replace(listed, tasks=(*listed.tasks, task))
    h.p.limits.check_job("job", cfg)  # the cluster's max_tasks_per_job, tombstones counted
    result = {"code": "OK", "message": f"added task {task.task_id} to {wf_name}/{job_name}"}
    tasks = [*job.tasks, TaskContextInfo(task_id=task.task_id)]
    _commit(h, job, cfg, cmd, result, tasks, job.deleted)
    partition = old_count
    job.dirty_chunks.add(chunk_of(partition))
    job.pending.append(partition)
    job.heat()
    return result


def delete_task(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    wf_name, job_name, task_id = cmd.payload
    job = _job(h, wf_name, job_name)
    listed = _listed(job.config)
    partition = next(
        (p for p, t in enumerate(listed.tasks) if t.task_id == task_id and p not in job.deleted),
        None,
    )
    if partition is None:
        raise NotFound(f"job {wf_name}/{job_name} has no task {task_id}")
    if job.live_task_count <= 1:
        raise InvalidConfig("job.tasks", "a job keeps at least one task")
    result = {"code": "OK", "message": f"deleted task {task_id} from {wf_name}/{job_name}"}
    state = job.tasks[partition].state
    _commit(h, job, listed, cmd, result, job.tasks, job.deleted | {partition})
    # Forget it everywhere: an active attempt leaves the assignment (its participant cancels
    # it), and counters only count live tasks.
    job.active.pop(partition, None)
    job.aborting.discard(partition)
    job.delayed.pop(partition, None)
    if partition in job.pending:
        job.pending.remove(partition)
    if state is TaskPartitionState.COMPLETED:
        job.completed -= 1
    elif (
        state is not None
        and not state.is_active
        and rules.is_given_up(job.tasks[partition], job.config)
    ):
        job.given_up -= 1
    log.info("task %s deleted from %s/%s", task_id, wf_name, job_name)
    return result


DYNAMIC_COMMANDS = {"add_task": add_task, "delete_task": delete_task}
