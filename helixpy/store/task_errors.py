"""Full error texts of failed attempts: ``JOBS/<job>/ERRORS/<shard>/<task id>``.

A task's context keeps a short ``info`` (256 bytes, so contexts stay small); the whole text
(the traceback of an exception, the whole info a task returned) goes here, per attempt,
at most :data:`ERROR_CAP` bytes each (gzip-compressed by the codec above 4 KB), the last
:data:`KEEP_ATTEMPTS` attempts of each task. Written by the participant, fenced by its
incarnation, only when an attempt fails; created on first failure like task content, and
under the job, so it goes when the workflow is deleted or purged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kazoo.client import KazooClient

from helixpy.model.context import cap_info
from helixpy.store.acl import AclProvider
from helixpy.store.content import fenced_map_update, map_or_empty
from helixpy.store.ops import Check, Create, Op
from helixpy.store.paths import Paths, content_shard
from helixpy.store.plan import Plan, run_plan

#: The most bytes (JSON-encoded) kept of one attempt's error text.
ERROR_CAP = 16 * 1024
#: Attempts whose texts a task keeps (the newest).
KEEP_ATTEMPTS = 3
_MAX_TRIES = 20


def put_task_error(
    zk: KazooClient,
    paths: Paths,
    acl: AclProvider,
    fence: Sequence[Check],
    wf: str,
    job: str,
    task_id: str,
    attempt: int,
    text: str,
) -> None:
    """Store ``attempt``'s error ``text`` (capped) for the task; fenced and durable on
    return. :class:`NotFound` when the job is gone."""
    path = paths.task_error(wf, job, task_id)
    shard = f"{paths.task_errors(wf, job)}/{content_shard(task_id)}"

    def change(current: dict[str, Any]) -> dict[str, Any]:
        current[str(attempt)] = cap_info(text, ERROR_CAP)
        return {k: current[k] for k in sorted(current, key=int)[-KEEP_ATTEMPTS:]}

    def first_ops(leaf: bytes) -> list[Op]:
        # Only ERRORS and its shard: the job directory must exist (NotFound otherwise)
        ops: list[Op] = [
            Create(parent, b"")
            for parent in (paths.task_errors(wf, job), shard)
            if zk.exists(parent) is None
        ]
        return [*ops, Create(path, leaf)]

    fenced_map_update(zk, acl, fence, path, change, first_ops, tries=_MAX_TRIES)


def read_task_errors(
    zk: KazooClient, paths: Paths, wf: str, job: str, task_id: str
) -> dict[int, str]:
    """Every kept attempt's error text for the task, by attempt; empty when none failed,
    :class:`NotFound` when the job does not exist."""
    return run_plan(zk, task_errors_plan(paths, wf, job, task_id))


def task_errors_plan(paths: Paths, wf: str, job: str, task_id: str) -> Plan[dict[int, str]]:
    """:func:`read_task_errors` as a plan (see :mod:`helixpy.store.plan`)."""
    body = yield from map_or_empty(paths.task_error(wf, job, task_id), paths.job_config(wf, job))
    return {int(k): str(v) for k, v in body.items()}
