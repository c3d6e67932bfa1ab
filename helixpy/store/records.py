"""Reading and encoding the stored records: configs, contexts (chunked) and cluster config.

The encoders return ops (see :mod:`helixpy.store.ops`) so the controller can put many
records in one fenced multi; the readers are used by the driver and by a new leader
rebuilding its state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.errors import CorruptNode, InvalidConfig, NotFound
from helixpy.model import (
    JobConfig,
    JobContext,
    TaskContextInfo,
    WorkflowConfig,
    WorkflowContext,
)
from helixpy.store import plan
from helixpy.store.codec import decode, encode
from helixpy.store.ops import Create, Delete, Op, SetData
from helixpy.store.paths import (
    CONTEXT_CHUNK,
    INLINE_TASKS,
    JOB_STATES_CHUNK,
    TASKCONFIG_CHUNK,
    Paths,
)
from helixpy.store.plan import Plan, run_plan
from helixpy.store.streams import stream_dirs_ops


@dataclass(frozen=True)
class StoredWorkflow:
    """A workflow's stored definition: config, DAG parents and a unique id per start.

    A job queue has ``queue``: its jobs in enqueue order (its ``parents`` are empty; order,
    not completion, links queue jobs).
    """

    name: str
    config: WorkflowConfig
    parents: Mapping[str, frozenset[str]]
    uid: str
    queue: tuple[str, ...] | None = None

    @property
    def job_names(self) -> list[str]:
        return list(self.queue) if self.queue is not None else list(self.parents)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "config": self.config.to_dict(),
            "parents": {k: sorted(v) for k, v in self.parents.items()},
            "uid": self.uid,
        }
        if self.queue is not None:
            out["queue"] = list(self.queue)
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> StoredWorkflow:
        return cls(
            name=name,
            config=WorkflowConfig.from_dict(data.get("config") or {}),
            parents={k: frozenset(v) for k, v in (data.get("parents") or {}).items()},
            uid=str(data.get("uid", "")),
            queue=tuple(data["queue"]) if data.get("queue") is not None else None,
        )


def get_json(zk: KazooClient, path: str) -> Any:
    """The decoded payload at ``path``; :class:`NotFound` when absent."""
    try:
        data, _ = zk.get(path)
    except NoNodeError:
        raise NotFound(path) from None
    return decode(data, path=path)


def json_plan(path: str) -> Plan[Any]:
    """A plan step: :func:`get_json` (``yield from``)."""
    data = yield from plan.get(path)
    if data is None:
        raise NotFound(path)
    return decode(data, path=path)


# --- job configs ------------------------------------------------------------------------


def job_config_head(cfg: JobConfig) -> dict[str, Any]:
    """A job's CONFIG payload: the config without its tasks, and how many task-config
    chunks beside it hold them (what :func:`job_config_from_head` reads back)."""
    head = cfg.to_dict(include_tasks=False)
    head["task_chunks"] = -(-len(cfg.tasks) // TASKCONFIG_CHUNK)
    return head


def job_config_ops(paths: Paths, wf: str, job: str, cfg: JobConfig) -> list[Op]:
    """Creates for a job's config; task configs go in fixed-size chunks beside it."""
    head = job_config_head(cfg)
    tasks = [t.to_dict() for t in cfg.tasks]
    chunks = [tasks[i : i + TASKCONFIG_CHUNK] for i in range(0, len(tasks), TASKCONFIG_CHUNK)]
    config_path = paths.job_config(wf, job)
    ops: list[Op] = [
        Create(paths.job(wf, job)),
        Create(config_path, encode(head, path=config_path)),
    ]
    if chunks:
        ops.append(Create(paths.task_configs(wf, job)))
        for i, chunk in enumerate(chunks):
            path = paths.task_config_chunk(wf, job, i)
            ops.append(Create(path, encode(chunk, path=path)))
    if cfg.stream:
        ops += stream_dirs_ops(paths, wf, job)
    return ops


def job_config_update_ops(
    paths: Paths,
    wf: str,
    job: str,
    cfg: JobConfig,
    deleted: Iterable[int],
    version: int,
    old_task_count: int,
) -> list[Op]:
    """Ops rewriting a job's config after tasks were added (from ``old_task_count`` on) or
    deleted.

    Partitions never move: a deleted task keeps its slot in the task-config chunks and is
    listed in the header's ``deleted``; ``version`` lets participants drop cached configs.
    """
    head = job_config_head(cfg)
    head["deleted"] = sorted(deleted)
    head["version"] = version
    config_path = paths.job_config(wf, job)
    ops: list[Op] = [SetData(config_path, encode(head, path=config_path))]
    if len(cfg.tasks) > old_task_count:
        # The chunks from the one holding the first new task to the last: the partly
        # filled one is overwritten, the rest created (with their directory, for a targeted
        # job whose tasks are fixed only when it starts).
        if old_task_count == 0:
            ops.append(Create(paths.task_configs(wf, job)))
        stored = -(-old_task_count // TASKCONFIG_CHUNK)
        last = (len(cfg.tasks) - 1) // TASKCONFIG_CHUNK
        for c in range(old_task_count // TASKCONFIG_CHUNK, last + 1):
            lo = c * TASKCONFIG_CHUNK
            path = paths.task_config_chunk(wf, job, c)
            chunk = cfg.tasks[lo : lo + TASKCONFIG_CHUNK]
            body = encode([t.to_dict() for t in chunk], path=path)
            ops.append(SetData(path, body) if c < stored else Create(path, body))
    return ops


def read_job_meta(zk: KazooClient, paths: Paths, wf: str, job: str) -> tuple[set[int], int]:
    """(deleted partitions, config version) of a job."""
    head = get_json(zk, paths.job_config(wf, job)) or {}
    return set(head.get("deleted") or ()), int(head.get("version", 0))


def read_job_config(
    zk: KazooClient, paths: Paths, wf: str, job: str, *, hide_deleted: bool = False
) -> JobConfig:
    """A job's config. Tasks are positional (partition = index) unless ``hide_deleted``,
    which leaves out tasks removed with ``delete_task`` (what a user asking wants)."""
    return run_plan(zk, job_config_plan(paths, wf, job, hide_deleted=hide_deleted))


def job_config_plan(
    paths: Paths, wf: str, job: str, *, hide_deleted: bool = False
) -> Plan[JobConfig]:
    """:func:`read_job_config` as a plan (see :mod:`helixpy.store.plan`)."""
    head = yield from json_plan(paths.job_config(wf, job))
    return (yield from job_config_from_head_plan(paths, wf, job, head, hide_deleted=hide_deleted))


def job_config_from_head(
    zk: KazooClient, paths: Paths, wf: str, job: str, head: Any, *, hide_deleted: bool = False
) -> JobConfig:
    """A job's config from its CONFIG's decoded payload (read ahead by the caller); task
    config chunks, if it has any, are read here (together)."""
    return run_plan(zk, job_config_from_head_plan(paths, wf, job, head, hide_deleted=hide_deleted))


def job_config_from_head_plan(
    paths: Paths, wf: str, job: str, head: Any, *, hide_deleted: bool = False
) -> Plan[JobConfig]:
    """:func:`job_config_from_head` as a plan."""
    if not isinstance(head, dict):
        raise CorruptNode(f"{paths.job_config(wf, job)}: not a mapping")
    head = dict(head)
    n_chunks = int(head.pop("task_chunks", 0))
    deleted = set(head.pop("deleted", None) or ())
    head.pop("version", None)
    chunk_paths = [paths.task_config_chunk(wf, job, i) for i in range(n_chunks)]
    tasks: list[dict[str, Any]] = []
    for path, data in zip(chunk_paths, (yield from plan.get_many(chunk_paths)), strict=True):
        if data is None:
            raise NotFound(path)
        tasks.extend(decode(data, path=path))
    if hide_deleted:
        tasks = [t for p, t in enumerate(tasks) if p not in deleted]
    if tasks:
        head["tasks"] = tasks
    try:
        return JobConfig.from_dict(head, f"jobs.{job}")
    except InvalidConfig as exc:
        raise CorruptNode(f"{paths.job_config(wf, job)}: {exc}") from exc


# --- workflow records -------------------------------------------------------------------


def read_stored_workflow(zk: KazooClient, paths: Paths, wf: str) -> StoredWorkflow:
    """Workflow ``wf``'s stored definition; :class:`NotFound` while it has no CONFIG."""
    return run_plan(zk, stored_workflow_plan(paths, wf))


def stored_workflow_plan(paths: Paths, wf: str) -> Plan[StoredWorkflow]:
    """:func:`read_stored_workflow` as a plan."""
    return stored_workflow_from(paths, wf, (yield from json_plan(paths.workflow_config(wf))))


def stored_workflow_from(paths: Paths, wf: str, data: Any) -> StoredWorkflow:
    """Workflow ``wf``'s stored definition from its CONFIG's decoded payload."""
    if not isinstance(data, dict):
        raise CorruptNode(f"{paths.workflow_config(wf)}: not a mapping")
    try:
        return StoredWorkflow.from_dict(wf, data)
    except (InvalidConfig, TypeError, ValueError) as exc:
        raise CorruptNode(f"{paths.workflow_config(wf)}: {exc}") from exc


def read_workflow_context(zk: KazooClient, paths: Paths, wf: str) -> WorkflowContext:
    """A workflow's context, its jobs' states gathered from its chunks if it has them
    (read together; a chunk removed meanwhile, by a purge shrinking the queue, is skipped)."""
    return run_plan(zk, workflow_context_plan(paths, wf))


def workflow_context_plan(paths: Paths, wf: str) -> Plan[WorkflowContext]:
    """:func:`read_workflow_context` as a plan."""
    path = paths.workflow_context(wf)
    header = yield from json_plan(path)
    chunk_paths = job_chunk_paths(paths, wf, header)
    chunks = yield from plan.get_many(chunk_paths)
    bodies = [
        None if d is None else decode(d, path=p) for p, d in zip(chunk_paths, chunks, strict=True)
    ]
    return workflow_context_from(path, header, bodies)


def job_chunk_paths(paths: Paths, wf: str, header: Any) -> list[str]:
    """The job-state chunks a workflow CONTEXT payload names (none while kept inline)."""
    count = int(header.get("job_chunks", 0)) if isinstance(header, dict) else 0
    return [paths.workflow_context_chunk(wf, i) for i in range(count)]


def workflow_context_from(path: str, header: Any, chunks: Sequence[Any]) -> WorkflowContext:
    """A workflow context from its CONTEXT payload and its job-state chunks' payloads (a
    chunk removed meanwhile is None and skipped)."""
    if header is None:
        header = {}
    if not isinstance(header, dict):
        raise CorruptNode(f"{path}: not a mapping")
    data = header
    if chunks:
        states: dict[str, Any] = dict(data.get("jobs") or {})
        for body in chunks:
            states.update((body or {}).get("jobs") or {})
        data = {**data, "jobs": states}
    try:
        return WorkflowContext.from_dict(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptNode(f"{path}: {exc}") from exc


def job_states_chunks(jobs: int) -> int:
    """How many ``CONTEXT/<i>`` chunks a workflow of ``jobs`` jobs keeps (0: inline)."""
    return 0 if jobs <= JOB_STATES_CHUNK else -(-jobs // JOB_STATES_CHUNK)


def workflow_context_ops(
    paths: Paths,
    wf: str,
    header: Mapping[str, Any] | None,
    order: Sequence[str],
    state_of: Callable[[str], str],
    dirty: Iterable[int],
    existing: int,
) -> list[Op]:
    """Ops writing a workflow CONTEXT kept in chunks (``job_states_chunks(len(order)) > 0``,
    or ``existing`` chunks to remove): the ``dirty`` chunks (created past ``existing``),
    the header (when given, or when the chunk count changed; without job states, naming
    the count), and deletes of chunks past the new count. Growing, the header goes last;
    shrinking, first: a reader sees every chunk the header it read names, or skips one.
    ``header`` is needed whenever the chunk count changes."""
    count = job_states_chunks(len(order))
    ops: list[Op] = []
    for i in sorted(set(dirty)):
        if i >= count:
            continue
        path = paths.workflow_context_chunk(wf, i)
        names = order[i * JOB_STATES_CHUNK : (i + 1) * JOB_STATES_CHUNK]
        body = {"jobs": {n: state_of(n) for n in names}}
        ops.append((SetData if i < existing else Create)(path, encode(body, path=path)))
    if header is None:
        if count != existing:
            raise ValueError("the chunk count changes: the header must be written")
        return ops
    path = paths.workflow_context(wf)
    head = dict(header)
    if count:
        head["jobs"] = {}
        head["job_chunks"] = count
    else:
        head["jobs"] = {n: state_of(n) for n in order}
    head_op = SetData(path, encode(head, path=path))
    if count >= existing:
        return [*ops, head_op]
    gone = [Delete(paths.workflow_context_chunk(wf, i)) for i in range(count, existing)]
    return [head_op, *ops, *gone]


# --- job contexts (chunked) -------------------------------------------------------------


def chunk_of(partition: int) -> int:
    return partition // CONTEXT_CHUNK


def num_chunks(task_count: int) -> int:
    return (task_count + CONTEXT_CHUNK - 1) // CONTEXT_CHUNK


def is_inline(task_count: int) -> bool:
    """Whether a job's task records live in its context header instead of chunk nodes.

    A small job (most workflows have one task) changes its header and its only chunk in
    the same passes, so one node saves a znode and a write op per change.
    """
    return task_count <= INLINE_TASKS


def stored_chunks(task_count: int) -> int:
    """How many chunk nodes a job of ``task_count`` tasks has once its context is written."""
    return 0 if is_inline(task_count) else num_chunks(task_count)


def encode_chunk(
    tasks: Sequence[TaskContextInfo] | Mapping[int, TaskContextInfo],
    chunk: int,
    task_count: int,
    path: str,
) -> bytes:
    """One chunk: the records of partitions ``chunk*CONTEXT_CHUNK`` onwards, as a list."""
    lo = chunk * CONTEXT_CHUNK
    hi = min(lo + CONTEXT_CHUNK, task_count)
    return encode([tasks[p].to_dict() for p in range(lo, hi)], path=path)


def job_context_ops(
    paths: Paths,
    wf: str,
    job: str,
    header: Mapping[str, Any],
    tasks: Sequence[TaskContextInfo] | Mapping[int, TaskContextInfo],
    chunks: Iterable[int] | None,
    *,
    create: bool,
    include_header: bool = True,
    existing_chunks: int | None = None,
) -> list[Op]:
    """Ops writing a job context: its header and the given chunks (all when None).

    ``header`` is :meth:`JobContext.header_dict`; the chunk count is added here.
    """
    task_count = len(tasks)
    op_cls = Create if create else SetData
    ops: list[Op] = []
    header_path = paths.job_context(wf, job)
    body = dict(header)
    if is_inline(task_count):
        # One node: any change to the header or to a task record rewrites it.
        if include_header or chunks is None or chunks:
            body["chunks"] = 0
            body["records"] = [tasks[p].to_dict() for p in range(task_count)]
            ops.append(op_cls(header_path, encode(body, path=header_path)))
        return ops
    # The header names the chunk count: a job that grew (tasks added, or past the inline
    # size) rewrites it with its new chunks.
    if include_header or existing_chunks not in (None, num_chunks(task_count)):
        body["chunks"] = num_chunks(task_count)
        ops.append(op_cls(header_path, encode(body, path=header_path)))
    todo = range(num_chunks(task_count)) if chunks is None else sorted(chunks)
    for c in todo:
        path = paths.job_context_chunk(wf, job, c)
        # A chunk past the ones stored (a task was added) is created, not overwritten.
        cls = Create if existing_chunks is not None and c >= existing_chunks else op_cls
        ops.append(cls(path, encode_chunk(tasks, c, task_count, path)))
    return ops


def read_job_context(
    zk: KazooClient, paths: Paths, wf: str, job: str, header: Any = None
) -> JobContext:
    """A job's context: the header (read here unless given) plus every chunk, in order
    (the chunks read together)."""
    return run_plan(zk, job_context_plan(paths, wf, job, header))


def job_context_plan(paths: Paths, wf: str, job: str, header: Any = None) -> Plan[JobContext]:
    """:func:`read_job_context` as a plan."""
    if header is None:
        header = (yield from json_plan(paths.job_context(wf, job))) or {}
    if not isinstance(header, dict):
        raise CorruptNode(f"{paths.job_context(wf, job)}: not a mapping")
    tasks: dict[int, TaskContextInfo] = {}
    deleted = set(header.get("deleted") or ())
    for p, rec in enumerate(header.get("records") or ()):  # an inline (small) job
        if p not in deleted:
            tasks[p] = TaskContextInfo.from_dict(rec)
    chunk_paths = [paths.job_context_chunk(wf, job, c) for c in range(int(header.get("chunks", 0)))]
    chunks = yield from plan.get_many(chunk_paths)
    for c, (path, data) in enumerate(zip(chunk_paths, chunks, strict=True)):
        if data is None:
            raise NotFound(path)
        base = c * CONTEXT_CHUNK
        for i, rec in enumerate(decode(data, path=path)):
            if base + i not in deleted:  # removed with delete_task
                tasks[base + i] = TaskContextInfo.from_dict(rec)
    return JobContext(**JobContext.header_from_dict(header), tasks=tasks)


# --- cluster config ---------------------------------------------------------------------


def read_cluster_config(zk: KazooClient, paths: Paths) -> dict[str, Any]:
    """The cluster config; empty when nothing was ever set."""
    return run_plan(zk, cluster_config_plan(paths))


def cluster_config_plan(paths: Paths) -> Plan[dict[str, Any]]:
    """:func:`read_cluster_config` as a plan."""
    data = yield from plan.get(paths.config)
    return {} if data is None else dict(decode(data, path=paths.config) or {})
