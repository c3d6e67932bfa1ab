"""User content: string maps at workflow, job and task scope.

Workflow and job scope are one znode each; task scope is one znode per task id, sharded
under ``CONTENT/TASKS/<xx>/`` so no parent grows past a few hundred children, and keyed by
task id (not attempt) so it survives retries. Every content node is created by its first
write (most workflows never write content, so a start creates none): a missing node reads
as an empty map while its owner (the workflow's CONFIG, the job's CONFIG) exists. Writers
are fenced (a participant passes its incarnation check) and use a versioned CAS with retry,
because tasks on several instances may write the same map at once. Late writes never
recreate deleted paths: a write creates only content nodes, never the workflow or job
directory they hang from, so a write after a delete fails with ``NotFound``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from helixpy.errors import Fenced, NotFound
from helixpy.model import Scope
from helixpy.store import plan
from helixpy.store.acl import AclProvider
from helixpy.store.codec import decode, encode
from helixpy.store.fencing import MultiFailed, fenced_message, is_fence, run_multi
from helixpy.store.ops import Check, Create, Op, SetData
from helixpy.store.paths import Paths
from helixpy.store.plan import Exists, Plan, run_plan

_MAX_CAS_TRIES = 100


def content_path(paths: Paths, scope: Scope, wf: str, job: str | None, task_id: str | None) -> str:
    if scope is Scope.WORKFLOW:
        return paths.workflow_content(wf)
    if job is None:
        raise ValueError(f"{scope.value} scope needs a job")
    if scope is Scope.JOB:
        return paths.job_content(wf, job)
    if task_id is None:
        raise ValueError("TASK scope needs a task id")
    return paths.task_content(wf, job, task_id)


def owner_config(paths: Paths, scope: Scope, wf: str, job: str | None) -> str:
    """The node whose presence says the scope exists: the workflow's or the job's CONFIG."""
    if scope is Scope.WORKFLOW or job is None:
        return paths.workflow_config(wf)
    return paths.job_config(wf, job)


def get_content_map(
    zk: KazooClient,
    paths: Paths,
    scope: Scope,
    wf: str,
    job: str | None = None,
    task_id: str | None = None,
) -> dict[str, str]:
    """The whole map at one scope; empty when nothing was written there yet."""
    return run_plan(zk, content_map_plan(paths, scope, wf, job, task_id))


def content_map_plan(
    paths: Paths, scope: Scope, wf: str, job: str | None = None, task_id: str | None = None
) -> Plan[dict[str, str]]:
    """:func:`get_content_map` as a plan (see :mod:`helixpy.store.plan`)."""
    path = content_path(paths, scope, wf, job, task_id)
    return (yield from map_or_empty(path, owner_config(paths, scope, wf, job)))


def map_or_empty(path: str, owner: str) -> Plan[dict[str, Any]]:
    """The JSON map at ``path``: empty when it was never written while ``owner`` (a
    config node) exists, :class:`NotFound` naming the owner's directory when it is gone."""
    data = yield from plan.get(path)
    if data is None:
        if not (yield [Exists(owner)])[0]:
            raise NotFound(owner.rsplit("/", 1)[0])
        return {}
    return dict(decode(data, path=path) or {})


def missing_content_ops(
    zk: KazooClient,
    paths: Paths,
    scope: Scope,
    wf: str,
    job: str | None,
    task_id: str | None,
    leaf: bytes,
) -> list[Op]:
    """Creates for a scope's first write: the missing content nodes down to the leaf.

    Only content nodes: their parent (the workflow or job directory) must exist, so a write
    racing a delete fails NoNode instead of recreating it.
    """
    path = content_path(paths, scope, wf, job, task_id)
    if scope is not Scope.TASK:
        return [Create(path, leaf)]
    assert job is not None and task_id is not None
    ops: list[Op] = []
    for parent, data in (
        (paths.job_content(wf, job), encode({})),
        (paths.task_contents(wf, job), b""),
        (paths.task_content_shard(wf, job, task_id), b""),
    ):
        if zk.exists(parent) is None:
            ops.append(Create(parent, data))
    return [*ops, Create(path, leaf)]


def put_content(
    zk: KazooClient,
    paths: Paths,
    acl: AclProvider,
    fence: Sequence[Check],
    scope: Scope,
    wf: str,
    job: str | None,
    task_id: str | None,
    key: str,
    value: str,
) -> None:
    """Set ``key`` to ``value`` in one scope's map: fenced, CAS-retried, durable on return."""
    fenced_map_update(
        zk,
        acl,
        fence,
        content_path(paths, scope, wf, job, task_id),
        lambda current: {**current, key: value},
        lambda leaf: missing_content_ops(zk, paths, scope, wf, job, task_id, leaf),
        owner=owner_config(paths, scope, wf, job),
    )


def fenced_map_update(
    zk: KazooClient,
    acl: AclProvider,
    fence: Sequence[Check],
    path: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    first_ops: Callable[[bytes], list[Op]],
    *,
    owner: str | None = None,
    also: Sequence[Op] = (),
    tries: int = _MAX_CAS_TRIES,
) -> None:
    """Rewrite the JSON map at ``path`` as ``change(current)``: fenced, a CAS on its
    version, retried when another writer got there first, durable on return.

    A missing map is created by ``first_ops(encoded {} changed)`` (the node and whichever
    parents are missing), while ``owner`` (when given) exists. :class:`Fenced` when the
    fence moved, :class:`NotFound` when the tree it hangs from was deleted: a late write
    never recreates it. ``also``: ops that ride in the same multi (a stored reply).
    """
    for _ in range(tries):
        ops: list[Op]
        try:
            data, stat = zk.get(path)
        except NoNodeError:
            if owner is not None and zk.exists(owner) is None:
                raise NotFound(path) from None
            ops = [*fence, *first_ops(encode(change({}), path=path)), *also]
        else:
            current = dict(decode(data, path=path) or {})
            ops = [
                *fence,
                SetData(path, encode(change(current), path=path), stat.version),
                *also,
            ]
        try:
            run_multi(zk, ops, acl)
            return
        except MultiFailed as exc:
            if is_fence(exc, fence):
                raise Fenced(fenced_message(exc.op)) from None
            if isinstance(exc.error, BadVersionError | NodeExistsError):
                continue  # another writer got there first: re-read and retry
            if isinstance(exc.error, NoNodeError):
                raise NotFound(f"{path}: its workflow or job was deleted") from None
            raise
    raise RuntimeError(f"{path}: gave up after {tries} contended CAS attempts")
