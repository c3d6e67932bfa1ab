"""User content: string maps at workflow, job and task scope.

Workflow and job scope are one znode each; task scope is one znode per task id, sharded
under ``CONTENT/TASKS/<xx>/`` so no parent grows past a few hundred children, and keyed by
task id (not attempt) so it survives retries. Writers are fenced (a participant passes its
incarnation check) and use a versioned CAS with retry, because tasks on several instances
may write the same map at once. Late writes never recreate deleted paths: the workflow and
job nodes are never created here, so a write after a delete fails with ``NotFound``.
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from helixpy.errors import Fenced, NotFound
from helixpy.model import Scope
from helixpy.store.acl import AclProvider
from helixpy.store.codec import decode, encode
from helixpy.store.fencing import MultiFailed, run_multi
from helixpy.store.ops import Check, Create, Op, SetData
from helixpy.store.paths import Paths

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


def get_content_map(
    zk: KazooClient,
    paths: Paths,
    scope: Scope,
    wf: str,
    job: str | None = None,
    task_id: str | None = None,
) -> dict[str, str]:
    """The whole map at one scope; empty when nothing was written (task scope)."""
    path = content_path(paths, scope, wf, job, task_id)
    try:
        data, _ = zk.get(path)
    except NoNodeError:
        if scope is Scope.TASK:
            # A task that never wrote has no node; its job's existence decides NotFound.
            assert job is not None
            if zk.exists(paths.job_content(wf, job)) is None:
                raise NotFound(f"job {wf}/{job}") from None
            return {}
        raise NotFound(path) from None
    return dict(decode(data, path=path) or {})


def put_content(
    zk: KazooClient,
    paths: Paths,
    acl: AclProvider,
    fence: Check,
    scope: Scope,
    wf: str,
    job: str | None,
    task_id: str | None,
    key: str,
    value: str,
) -> None:
    """Set ``key`` to ``value`` in one scope's map: fenced, CAS-retried, durable on return."""
    path = content_path(paths, scope, wf, job, task_id)
    for _ in range(_MAX_CAS_TRIES):
        ops: list[Op]
        try:
            data, stat = zk.get(path)
        except NoNodeError:
            if scope is not Scope.TASK:
                raise NotFound(path) from None
            assert job is not None and task_id is not None
            new = encode({key: value}, path=path)
            shard = paths.task_content_shard(wf, job, task_id)
            ops = [fence, Create(path, new)]
            if zk.exists(shard) is None:
                ops.insert(1, Create(shard))
        else:
            current = dict(decode(data, path=path) or {})
            current[key] = value
            ops = [fence, SetData(path, encode(current, path=path), stat.version)]
        try:
            run_multi(zk, ops, acl)
            return
        except MultiFailed as exc:
            if exc.op is fence:
                raise Fenced(f"{fence.path} moved past version {fence.version}") from None
            if isinstance(exc.error, BadVersionError | NodeExistsError):
                continue  # another writer got there first: re-read and retry
            if isinstance(exc.error, NoNodeError):
                raise NotFound(f"{path}: its workflow or job was deleted") from None
            raise
    raise RuntimeError(f"{path}: gave up after {_MAX_CAS_TRIES} contended CAS attempts")
