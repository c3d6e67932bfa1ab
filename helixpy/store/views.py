"""Read-only views of a cluster for clients (the driver, the dashboard): workflows and
instances as plain data, read straight from ZooKeeper."""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient

from helixpy.errors import NotFound
from helixpy.model import TaskExecutionInfo, TaskState, WorkflowConfig
from helixpy.store import plan, records
from helixpy.store.codec import decode
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan, run_plan


def read_workflow_config(zk: KazooClient, paths: Paths, name: str) -> WorkflowConfig:
    """Workflow ``name``'s config; :class:`NotFound` while it has no CONFIG."""
    return records.read_stored_workflow(zk, paths, name).config


def workflow_config_plan(paths: Paths, name: str) -> Plan[WorkflowConfig]:
    """:func:`read_workflow_config` as a plan (see :mod:`helixpy.store.plan`)."""
    return (yield from records.stored_workflow_plan(paths, name)).config


def read_workflows(zk: KazooClient, paths: Paths) -> dict[str, WorkflowConfig]:
    """Every workflow's config by name, leaving out those being started or deleted."""
    return run_plan(zk, workflows_plan(paths))


def workflows_plan(paths: Paths) -> Plan[dict[str, WorkflowConfig]]:
    """:func:`read_workflows` as a plan: the configs read together."""
    names = sorted((yield from plan.children(paths.workflows)) or ())
    configs = yield from plan.get_many([paths.workflow_config(n) for n in names])
    out: dict[str, WorkflowConfig] = {}
    for name, data in zip(names, configs, strict=True):
        if data is None:
            continue  # no CONFIG: a start or delete is under way
        out[name] = records.stored_workflow_from(
            paths, name, decode(data, path=paths.workflow_config(name))
        ).config
    return out


#: The instance CONFIG field of Helix's target task thread pool size: the capacity the
#: participant takes when it next starts (written by the leader, read by the participant).
TARGET_POOL_SIZE = "target_task_thread_pool_size"


def read_instances(zk: KazooClient, paths: Paths) -> dict[str, dict[str, Any]]:
    """Every instance that ever registered: ``{id: {live, enabled, tags, capacity,
    target_task_thread_pool_size, abandoned}}`` (``capacity``: what its process advertised
    when it last registered; the target: what it takes at its next start, None when unset;
    ``abandoned``: slots held by threads of attempts given up on after their
    ``cancel_grace``, 0 when not live).

    An instance without a config (registering just now) is left out.
    """
    return run_plan(zk, instances_plan(paths))


def instances_plan(paths: Paths) -> Plan[dict[str, dict[str, Any]]]:
    """:func:`read_instances` as a plan: every config and live node read together."""
    names = sorted((yield from plan.children(paths.instances)) or ())
    wanted = [p for n in names for p in (paths.instance_config(n), paths.live_instance(n))]
    found = yield from plan.get_many(wanted)
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        cfg_data, live_data = found[2 * i], found[2 * i + 1]
        if cfg_data is None:
            continue
        cfg = decode(cfg_data) or {}
        node = {} if live_data is None else decode(live_data) or {}
        out[name] = {
            "live": live_data is not None,
            "enabled": bool(cfg.get("enabled", True)),
            "tags": list(cfg.get("tags") or []),
            "capacity": cfg.get("capacity"),
            TARGET_POOL_SIZE: cfg.get(TARGET_POOL_SIZE),
            "abandoned": int(node.get("abandoned", 0)) if isinstance(node, dict) else 0,
        }
    return out


def read_target_pool_size(zk: KazooClient, paths: Paths, name: str) -> int | None:
    """Instance ``name``'s target task thread pool size (None when unset); NotFound when
    it never registered."""
    return run_plan(zk, target_pool_size_plan(paths, name))


def target_pool_size_plan(paths: Paths, name: str) -> Plan[int | None]:
    """:func:`read_target_pool_size` as a plan."""
    data = yield from plan.get(paths.instance_config(name))
    if data is None:
        raise NotFound(f"instance {name} has never registered")
    target = (decode(data) or {}).get(TARGET_POOL_SIZE)
    return None if target is None else int(target)


def read_current_pool_size(zk: KazooClient, paths: Paths, name: str) -> int:
    """The capacity live instance ``name`` advertises; NotFound when it is not live."""
    return run_plan(zk, current_pool_size_plan(paths, name))


def current_pool_size_plan(paths: Paths, name: str) -> Plan[int]:
    """:func:`read_current_pool_size` as a plan."""
    data = yield from plan.get(paths.live_instance(name))
    if data is None:
        raise NotFound(f"instance {name} is not live")
    return int((decode(data) or {})["capacity"])


def read_last_scheduled_task(zk: KazooClient, paths: Paths, wf: str) -> TaskExecutionInfo | None:
    """Helix's ``getLastScheduledTaskExecutionInfo``: the task of ``wf`` with the latest
    start time over its started jobs; None when none was scheduled yet."""
    return run_plan(zk, last_scheduled_task_plan(paths, wf))


def last_scheduled_task_plan(paths: Paths, wf: str) -> Plan[TaskExecutionInfo | None]:
    """:func:`read_last_scheduled_task` as a plan: the workflow context, then the contexts
    of its jobs that have started (as Helix, which skips NOT_STARTED jobs)."""
    ctx = yield from records.workflow_context_plan(paths, wf)
    best: TaskExecutionInfo | None = None
    for job, state in ctx.job_states.items():
        if state is TaskState.NOT_STARTED:
            continue
        try:
            job_ctx = yield from records.job_context_plan(paths, wf, job)
        except NotFound:
            continue  # purged or deleted meanwhile
        for partition, task in job_ctx.tasks.items():
            start = task.start_time
            if start is not None and (best is None or start > best.start_time):
                best = TaskExecutionInfo(
                    job=job,
                    partition=partition,
                    task_id=task.task_id,
                    state=task.state,
                    start_time=start,
                )
    return best
