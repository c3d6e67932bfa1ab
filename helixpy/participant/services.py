"""What a running attempt's context is given (fenced user content and its task locks),
and the fenced record of a failed attempt's full error."""

from __future__ import annotations

import logging
from typing import Any

from kazoo.client import KazooClient

from helixpy.errors import NotFound
from helixpy.model import JobConfig, Scope
from helixpy.model.locks import Holder
from helixpy.model.values import JsonValue
from helixpy.participant.attempt import Attempt
from helixpy.participant.registration import incarnation_fence
from helixpy.participant.registry import TaskContext
from helixpy.store.acl import AclProvider
from helixpy.store.content import get_content_map, put_content
from helixpy.store.locks import LockBox
from helixpy.store.paths import Paths, parse_task_key
from helixpy.store.results import read_job_results
from helixpy.store.task_errors import put_task_error

log = logging.getLogger(__name__)


def task_context(
    cfg: JobConfig, key: str, attempt: int, instance: str, incarnation: int, content: FencedContent
) -> TaskContext:
    """The context of attempt ``attempt`` of the task ``key`` of a job configured ``cfg``:
    the job's command config overlaid with the task's own."""
    wf, job, partition = parse_task_key(key)
    task_cfg = cfg.tasks[partition] if cfg.tasks else None
    merged: dict[str, Any] = dict(cfg.command_config)
    if task_cfg is not None:
        merged.update(task_cfg.config)
    return TaskContext(
        workflow=wf,
        job=job,
        task_id=cfg.task_id(partition),
        partition=partition,
        attempt=attempt,
        instance=instance,
        incarnation=incarnation,
        job_config=cfg,
        task_config=merged,
        command=cfg.task_command(partition),
        _content=content,
    )


def keep_error(
    zk: KazooClient,
    paths: Paths,
    acl: AclProvider,
    instance: str,
    incarnation: int,
    attempt: Attempt,
    text: str,
) -> None:
    """Store a failed attempt's full error text (its report carries 256 bytes of it),
    fenced by the incarnation it ran in. A failed store is logged: the failure itself is
    still reported, only its detail is lost."""
    ctx = attempt.ctx
    fence = incarnation_fence(paths, instance, incarnation)
    try:
        put_task_error(
            zk, paths, acl, fence, ctx.workflow, ctx.job, ctx.task_id, attempt.attempt, text
        )
    except Exception as exc:
        log.warning(
            "%s: the error text of attempt %d was not stored: %r",
            attempt.key,
            attempt.attempt,
            exc,
            extra=attempt.fields,
        )


class FencedContent:
    """User content for a participant's tasks, written under the incarnation they run in."""

    def __init__(
        self,
        zk: KazooClient | None,
        paths: Paths,
        acl: AclProvider,
        instance: str,
        incarnation: int,
    ) -> None:
        assert zk is not None
        self.zk = zk
        self.paths = paths
        self.acl = acl
        self.fence = incarnation_fence(paths, instance, incarnation)

    def put(self, ctx: TaskContext, key: str, value: str, scope: Scope) -> None:
        put_content(
            self.zk,
            self.paths,
            self.acl,
            self.fence,
            scope,
            ctx.workflow,
            ctx.job,
            ctx.task_id,
            key,
            value,
        )

    def get(self, ctx: TaskContext, key: str, scope: Scope) -> str | None:
        try:
            return get_content_map(
                self.zk, self.paths, scope, ctx.workflow, ctx.job, ctx.task_id
            ).get(key)
        except NotFound:
            return None

    def results(self, ctx: TaskContext, job: str) -> dict[str, JsonValue]:
        return read_job_results(self.zk, self.paths, ctx.workflow, job)


def attempt_locks(
    zk: KazooClient | None,
    paths: Paths,
    acl: AclProvider,
    ctx: TaskContext,
    instance: str,
    incarnation: int,
) -> LockBox:
    """The lock box of one attempt: its holder is the attempt (its liveness node goes with
    the participant's session), its group the job's ``lock_group`` (default: the job), its
    priority and default wait the job's."""
    assert zk is not None
    cfg = ctx.job_config
    key = f"{ctx.workflow}/{ctx.job}/{ctx.partition}"
    holder = Holder(
        id=f"{instance}.{incarnation}.{key}.{ctx.attempt}",
        instance=instance,
        incarnation=incarnation,
        task=key,
        attempt=ctx.attempt,
    )
    return LockBox(
        zk,
        paths.cluster,
        holder,
        group=cfg.lock_group or f"{ctx.workflow}/{ctx.job}",
        priority=cfg.effective_priority(),
        timeout=300.0 if cfg.lock_timeout is None else cfg.lock_timeout,
        acl=acl,
    )
