"""Administrative commands on the pipeline thread: stop / resume, instance settings,
workflow config updates, cluster settings. Each writes its change with its stored reply in
one fenced multi; none is tied to one workflow's runtime alone, so each makes the pass
sweep (controller/worklist).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kazoo.exceptions import NoNodeError

from helixpy.controller.replies import OK, reply
from helixpy.controller.rerun import rerun_failed
from helixpy.controller.runtime import WorkflowRuntime
from helixpy.controller.signals import Command
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import limits
from helixpy.store.codec import decode, encode
from helixpy.store.content import (
    content_path,
    fenced_map_update,
    missing_content_ops,
    owner_config,
)
from helixpy.store.ops import Create, Op, SetData
from helixpy.store.records import read_job_config
from helixpy.store.views import TARGET_POOL_SIZE

if TYPE_CHECKING:
    from helixpy.controller.commands import CommandHandler

log = logging.getLogger(__name__)

CLUSTER_SETTINGS: Mapping[str, str] = {
    "default_capacity": "an integer >= 1: capacity of participants that do not set one",
    "quota_types": "a mapping of job type to an integer ratio >= 0",
    "min_recurrence_interval": "seconds >= 0 between runs of a recurring workflow",
    **limits.SETTINGS,
    "lock_audit_keep": "an integer >= 1: audit entries kept per lock resource (newest)",
    "lock_audit_max_age": "seconds >= 0: audit entries older than this are pruned",
    "stream_checkpoints_keep": (
        "an integer >= 1: checkpoints (with their barriers' acks) kept per streaming job"
    ),
}


def validate_cluster_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Check cluster settings; ``InvalidConfig`` names the setting and the rule."""
    if not isinstance(settings, Mapping):
        raise InvalidConfig("cluster_config", "must be a mapping")
    for key, value in settings.items():
        if key not in CLUSTER_SETTINGS:
            raise InvalidConfig(
                f"cluster_config.{key}",
                f"unknown setting (known: {', '.join(sorted(CLUSTER_SETTINGS))})",
            )
        rule = CLUSTER_SETTINGS[key]
        if key == "default_capacity":
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key in limits.SETTINGS:
            ok = limits.valid_setting(key, value)
        elif key in ("lock_audit_keep", "stream_checkpoints_keep"):
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        elif key == "quota_types":
            ok = isinstance(value, Mapping) and all(
                isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
                for k, v in value.items()
            )
        else:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
        if not ok:
            raise InvalidConfig(f"cluster_config.{key}", f"must be {rule}")
    return dict(settings)


def target_state(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Stop (STOP) or resume (START) a workflow: persisted in its CONFIG, acted on by
    the same pass's evaluation."""
    name, target = cmd.payload
    verb = "stopped" if target == "STOP" else "resumed"
    runtime = h.p.workflows.get(name)
    if runtime is None:
        state = h.retired_state(name)
        if state is None:
            raise NotFound(f"workflow {name} does not exist")
        # As for a finished workflow in the hot set: its state is never rewritten.
        return reply(OK, f"workflow {name} has finished ({state}); nothing {verb}")
    result = reply(OK, f"workflow {name} {verb}")
    # On a recurring template, stop and resume apply to its last clone too.
    last = h.p.workflows.get(runtime.scheduled[-1]) if runtime.scheduled else None
    if last is not None:
        _set_target(h, last, target, None)
    _set_target(h, runtime, target, h.request_op(cmd.request_id, result))
    log.info("workflow %s %s", name, verb)
    return result


def _set_target(
    h: CommandHandler, runtime: WorkflowRuntime, target: str, request_op: Op | None
) -> None:
    if runtime.state.is_final or runtime.stored.config.target_state == target:
        return  # nothing to change; finished state is never rewritten
    stored = replace(runtime.stored, config=replace(runtime.stored.config, target_state=target))
    path = h.p.paths.workflow_config(runtime.name)
    ops: list[Op] = [SetData(path, encode(stored.to_dict(), path=path))]
    if request_op is not None:
        ops.append(request_op)
    h.p.writer.commit(ops)
    runtime.stored = stored


def _instance_config(
    h: CommandHandler, cmd: Command, name: str, changes: dict[str, Any], verb: str
) -> dict[str, str]:
    """Change fields of an instance's CONFIG (CAS, fenced); the CONFIG watch brings the
    change into the next pass."""
    path = h.p.paths.instance_config(name)
    try:
        data, stat = h.p.zk.get(path)
    except NoNodeError:
        raise NotFound(f"instance {name} has never registered") from None
    body = dict(decode(data, path=path) or {})
    body.update(changes)
    body = {k: v for k, v in body.items() if v is not None}  # None: the field is cleared
    result = reply(OK, f"instance {name} {verb}")
    h.p.writer.commit(
        [
            SetData(path, encode(body, path=path), stat.version),
            h.request_op(cmd.request_id, result),
        ]
    )
    h.p.signals.mark_membership()
    return result


def update_workflow(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Replace the config of a job queue (applies at once) or of a recurring template
    (applies to its future clones); Helix allows nothing else to change after start."""
    name, config = cmd.payload
    runtime = h.resident(name)
    old = runtime.stored.config
    is_template, recurring = old.is_recurring, config.is_recurring
    if runtime.stored.queue is not None and runtime.stored.config.terminable:
        raise InvalidConfig(
            "workflow",
            f"{name} is a recurring queue's run: its config cannot change (update the queue)",
        )
    if runtime.stored.queue is not None:
        if is_template != recurring:
            raise InvalidConfig(
                "config.schedule",
                "a recurring queue keeps a recurring schedule"
                if is_template
                else "a job queue started without a schedule cannot get one",
            )
        config = replace(config, terminable=False)
    elif is_template:
        if not recurring:
            raise InvalidConfig("config.schedule", "a template keeps a recurring schedule")
    else:
        raise InvalidConfig(
            "workflow",
            f"{name} is neither a job queue nor a recurring "
            "template: its config cannot change after start",
        )
    if recurring:
        assert config.schedule is not None
        h.check_recurrence(config.schedule)
    config = replace(config, target_state=old.target_state)  # stop/resume own that
    stored = replace(runtime.stored, config=config)
    result = reply(OK, f"workflow {name} updated")
    path = h.p.paths.workflow_config(name)
    h.p.writer.commit(
        [
            SetData(path, encode(stored.to_dict(), path=path)),
            h.request_op(cmd.request_id, result),
        ]
    )
    runtime.stored = stored
    return result


def cluster_config(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    settings = validate_cluster_settings(cmd.payload)
    path = h.p.paths.config
    try:
        data, stat = h.p.zk.get(path)
        current = dict(decode(data, path=path) or {})
        current.update(settings)
        op: Op = SetData(path, encode(current, path=path), stat.version)
    except NoNodeError:
        current = dict(settings)
        op = Create(path, encode(current, path=path))
    result = reply(OK, "cluster config updated")
    h.p.writer.commit([op, h.request_op(cmd.request_id, result)])
    h.p.set_cluster_config(current)
    return result


def instance_enabled(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    name, enabled = cmd.payload
    verb = "enabled" if enabled else "disabled"
    return _instance_config(h, cmd, name, {"enabled": bool(enabled)}, verb)


def instance_tags(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    name, tags = cmd.payload
    return _instance_config(h, cmd, name, {"tags": sorted(set(tags))}, "retagged")


def thread_pool_size(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Helix's setTargetTaskThreadPoolSize: recorded in the instance's CONFIG, taken by the
    participant when it next starts (as in Helix); None clears it."""
    name, size = cmd.payload
    verb = (
        f"will start with a task thread pool of {size}"
        if size is not None
        else "has no target task thread pool size"
    )
    return _instance_config(h, cmd, name, {TARGET_POOL_SIZE: size}, verb)


def user_content(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    """Helix's addOrUpdate{Workflow,Job,Task}UserContentMap: merge entries into one scope's
    map, with the same fenced CAS as a task's writes (tasks may write it meanwhile). The
    scope's owner (the workflow or the job) must exist; its stored reply rides along."""
    scope, wf, job, task, content = cmd.payload
    what = f"{scope.value.lower()} {'/'.join(p for p in (wf, job, task) if p)}"
    result = reply(OK, f"user content of {what} updated ({len(content)} key(s))")
    owner = owner_config(h.p.paths, scope, wf, job)
    if job is not None and task is not None:
        _check_task(h, wf, job, task)
    elif h.p.zk.exists(owner) is None:
        raise NotFound(
            f"{'job' if job else 'workflow'} {'/'.join(p for p in (wf, job) if p)} does not exist"
        )
    fenced_map_update(
        h.p.zk,
        h.p.writer.acl,
        h.p.writer.checks,
        content_path(h.p.paths, scope, wf, job, task),
        lambda current: {**current, **content},
        lambda leaf: missing_content_ops(h.p.zk, h.p.paths, scope, wf, job, task, leaf),
        owner=owner,
        also=[h.request_op(cmd.request_id, result)],
    )
    return result


def _check_task(h: CommandHandler, wf: str, job: str, task: str) -> None:
    """NotFound unless ``task`` is a live task of ``wf/job``: from memory while the
    workflow is resident, else from the job's stored config (a finished workflow)."""
    runtime = h.p.workflows.get(wf)
    if runtime is not None and job in runtime.jobs:
        ids = runtime.jobs[job].live_task_ids()
    else:
        try:
            cfg = read_job_config(h.p.zk, h.p.paths, wf, job, hide_deleted=True)
        except NotFound:
            raise NotFound(f"job {wf}/{job} does not exist") from None
        ids = {cfg.task_id(p) for p in range(cfg.task_count)}
    if task not in ids:
        raise NotFound(f"job {wf}/{job} has no task {task}")


ADMIN_COMMANDS: dict[str, Callable[[CommandHandler, Command, datetime], dict[str, str]]] = {
    "target_state": target_state,
    "instance_enabled": instance_enabled,
    "instance_tags": instance_tags,
    "update_workflow": update_workflow,
    "cluster_config": cluster_config,
    "rerun_failed": rerun_failed,
    "thread_pool_size": thread_pool_size,
    "user_content": user_content,
}
