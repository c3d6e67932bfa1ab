"""The store's readers the async driver needs, issuing their reads through kazoo's async API.

Each mirrors the blocking reader of :mod:`helixpy.store` named in its docstring: the same
znodes, read pipelined (every chunk of a record requested at once), decoded by the same
model and store decoders. They raise kazoo's errors and :class:`NotFound` as those do; the
driver's ``_read`` turns the rest into helixpy errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from kazoo.exceptions import NoNodeError, NotEmptyError

from helixpy.driver.aio.session import Session
from helixpy.errors import CorruptNode, InvalidConfig, NoResult, NotFound
from helixpy.model import JobConfig, JobContext, TaskContextInfo, WorkflowConfig, WorkflowContext
from helixpy.model import TaskPartitionState as P
from helixpy.model.values import JsonValue
from helixpy.store.codec import decode
from helixpy.store.paths import CONTEXT_CHUNK, Paths
from helixpy.store.records import StoredWorkflow

# The result heads' pure decoders (private to the store module, shared rather than copied).
from helixpy.store.results import _chunk_count, _join, completed_attempts

#: Requests one tree delete keeps in flight at once.
_DELETES_IN_FLIGHT = 500


async def get_json(s: Session, path: str) -> Any:
    """The decoded payload at ``path``; :class:`NotFound` when absent (``records.get_json``)."""
    try:
        data = await s.get(path)
    except NoNodeError:
        raise NotFound(path) from None
    return decode(data, path=path)


async def _chunks(s: Session, paths: list[str]) -> list[Any]:
    """The decoded payloads at ``paths``, requested together; None for a missing one."""
    replies = await asyncio.gather(*(s.get(p) for p in paths), return_exceptions=True)
    out: list[Any] = []
    for path, reply in zip(paths, replies, strict=True):
        if isinstance(reply, NoNodeError):
            out.append(None)
        elif isinstance(reply, BaseException):
            raise reply
        else:
            out.append(decode(reply, path=path))
    return out


def _mapping(path: str, data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CorruptNode(f"{path}: not a mapping")
    return data


async def read_workflow_config(s: Session, paths: Paths, name: str) -> WorkflowConfig:
    """Workflow ``name``'s config (``views.read_workflow_config``)."""
    path = paths.workflow_config(name)
    data = await get_json(s, path)
    if not isinstance(data, dict):
        raise CorruptNode(f"{path}: not a mapping")
    try:
        return StoredWorkflow.from_dict(name, data).config
    except (InvalidConfig, TypeError, ValueError) as exc:
        raise CorruptNode(f"{path}: {exc}") from exc


def workflow_context_from(path: str, header: Any, chunks: list[Any]) -> WorkflowContext:
    """A workflow context from its CONTEXT payload and its job-state chunks' payloads (a
    chunk removed meanwhile, by a purge shrinking a queue, is None and skipped)."""
    data = _mapping(path, header)
    if chunks:
        states: dict[str, Any] = dict(data.get("jobs") or {})
        for body in chunks:
            states.update((body or {}).get("jobs") or {})
        data = {**data, "jobs": states}
    try:
        return WorkflowContext.from_dict(data)
    except (TypeError, ValueError, AttributeError) as exc:
        raise CorruptNode(f"{path}: {exc}") from exc


def job_chunk_paths(paths: Paths, name: str, header: Any) -> list[str]:
    """The job-state chunks a workflow CONTEXT payload names (none while kept inline)."""
    count = int(header.get("job_chunks", 0)) if isinstance(header, dict) else 0
    return [paths.workflow_context_chunk(name, i) for i in range(count)]


async def read_workflow_context(s: Session, paths: Paths, name: str) -> WorkflowContext:
    """Workflow ``name``'s context with every job's state (``records.read_workflow_context``)."""
    path = paths.workflow_context(name)
    header = await get_json(s, path)
    return workflow_context_from(
        path, header, await _chunks(s, job_chunk_paths(paths, name, header))
    )


async def read_job_config(s: Session, paths: Paths, name: str, job: str) -> JobConfig:
    """Job ``job``'s config without the tasks deleted from it
    (``driver.reads.read_visible_job_config``)."""
    path = paths.job_config(name, job)
    head = dict(_mapping(path, await get_json(s, path)))
    n_chunks = int(head.pop("task_chunks", 0))
    deleted = set(head.pop("deleted", None) or ())
    head.pop("version", None)
    chunk_paths = [paths.task_config_chunk(name, job, i) for i in range(n_chunks)]
    tasks: list[dict[str, Any]] = []
    for chunk_path, chunk in zip(chunk_paths, await _chunks(s, chunk_paths), strict=True):
        if chunk is None:
            raise NotFound(chunk_path)
        tasks.extend(chunk)
    tasks = [t for p, t in enumerate(tasks) if p not in deleted]
    if tasks:
        head["tasks"] = tasks
    try:
        return JobConfig.from_dict(head, f"jobs.{job}")
    except InvalidConfig as exc:
        raise CorruptNode(f"{path}: {exc}") from exc


async def read_job_context(s: Session, paths: Paths, name: str, job: str) -> JobContext:
    """Job ``job``'s state and its tasks' records (``records.read_job_context``)."""
    path = paths.job_context(name, job)
    header = _mapping(path, await get_json(s, path))
    deleted = set(header.get("deleted") or ())
    tasks: dict[int, TaskContextInfo] = {}
    for p, rec in enumerate(header.get("records") or ()):  # an inline (small) job
        if p not in deleted:
            tasks[p] = TaskContextInfo.from_dict(rec)
    chunk_paths = [
        paths.job_context_chunk(name, job, c) for c in range(int(header.get("chunks", 0)))
    ]
    for c, (chunk_path, chunk) in enumerate(
        zip(chunk_paths, await _chunks(s, chunk_paths), strict=True)
    ):
        if chunk is None:
            raise NotFound(chunk_path)
        base = c * CONTEXT_CHUNK
        for i, rec in enumerate(chunk):
            if base + i not in deleted:  # removed with delete_task
                tasks[base + i] = TaskContextInfo.from_dict(rec)
    return JobContext(**JobContext.header_from_dict(header), tasks=tasks)


# --- task results (helixpy.store.results) -----------------------------------------------


async def _context_or_empty(s: Session, paths: Paths, name: str, job: str) -> JobContext:
    try:
        return await read_job_context(s, paths, name, job)
    except NotFound:
        if not await s.exists(paths.job_config(name, job)):
            raise NotFound(f"job {name}/{job} does not exist in cluster {paths.cluster}") from None
        return JobContext()  # not started: no task has run


async def read_results(
    s: Session, paths: Paths, name: str, job: str, attempts: Mapping[str, int]
) -> dict[str, JsonValue]:
    """The values of the given completed attempts (``results.read_results``)."""
    ids = list(attempts)
    heads = [paths.task_result(name, job, tid, attempts[tid]) for tid in ids]
    replies = await asyncio.gather(*(s.get(h) for h in heads), return_exceptions=True)
    out: dict[str, JsonValue] = {}
    chunked: dict[str, tuple[str, int]] = {}
    for tid, head, reply in zip(ids, heads, replies, strict=True):
        if isinstance(reply, NoNodeError):
            out[tid] = None  # the attempt stored no value
            continue
        if isinstance(reply, BaseException):
            raise reply
        count, value = _chunk_count(reply, head)
        if count == 0:
            out[tid] = value
        else:
            chunked[tid] = (head, count)
    for tid, (head, count) in chunked.items():
        try:
            pieces = await asyncio.gather(*(s.get(f"{head}+{i}") for i in range(count)))
        except NoNodeError:
            raise CorruptNode(f"{head}: a chunk of the result is missing") from None
        out[tid] = _join(pieces, head)
    return out


async def read_job_results(s: Session, paths: Paths, name: str, job: str) -> dict[str, JsonValue]:
    """The values of the job's COMPLETED tasks by task id (``results.read_job_results``)."""
    ctx = await _context_or_empty(s, paths, name, job)
    return await read_results(s, paths, name, job, completed_attempts(ctx))


async def read_task_result(
    s: Session, paths: Paths, name: str, job: str, task_id: str
) -> JsonValue:
    """The value task ``task_id`` COMPLETED with (``results.read_task_result``)."""
    ctx = await _context_or_empty(s, paths, name, job)
    task = next((t for t in ctx.tasks.values() if t.task_id == task_id), None)
    if task is None or task.state is not P.COMPLETED:
        if task is None:
            cfg = await read_job_config(s, paths, name, job)
            if cfg.tasks:
                known = any(t.task_id == task_id for t in cfg.tasks)
            else:
                known = task_id.isdigit() and int(task_id) < cfg.task_count
            if not known:
                raise NotFound(f"job {name}/{job} has no task {task_id}")
        state = None if task is None or task.state is None else task.state.value
        raise NoResult(
            f"task {task_id} of job {name}/{job} is {state or 'not scheduled yet'}: only a "
            "COMPLETED task has a result",
            state,
        )
    return (await read_results(s, paths, name, job, {task_id: task.num_attempts}))[task_id]


# --- force delete -----------------------------------------------------------------------


async def delete_tree(s: Session, path: str) -> None:
    """Delete ``path`` and everything under it, children first (kazoo's recursive delete,
    with the requests of one level in flight together); a missing node is no error."""
    limit = asyncio.Semaphore(_DELETES_IN_FLIGHT)

    async def remove(node: str) -> None:
        while True:
            try:
                async with limit:
                    children = await s.children(node)
            except NoNodeError:
                return
            await asyncio.gather(*(remove(f"{node}/{c}") for c in children))
            try:
                async with limit:
                    await s.delete(node)
                return
            except NoNodeError:
                return
            except NotEmptyError:
                continue  # a child was created meanwhile: delete it too

    await remove(path)
