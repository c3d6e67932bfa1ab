"""Result values of completed attempts: ``JOBS/<job>/RESULTS/<shard>/<task>@<attempt>``.

Ownership and lifetime:

- Written only by the participant that ran the attempt, fenced by its incarnation, and only
  for an attempt that COMPLETED with a value (a task that returned None has no node).
- The node (the *head*) is created in the same multi as the participant's state report that
  says COMPLETED, so the value becomes durable with the completion and a zombie (a fenced
  incarnation) can publish neither. A value of more than :data:`INLINE_BYTES` is gzipped
  into chunk nodes ``<task>@<attempt>+<i>`` written (fenced) before that multi; the head
  names how many, so a reader that finds a head finds every chunk, never half a value.
- Keyed by attempt, never updated: a superseded attempt's late write lands on its own
  attempt's node, which no reader asks for. A reader reads the node of the attempt the job
  context says COMPLETED (:func:`read_results`), so only the completed attempt's value is
  ever seen.
- Deleted with the job (so with the workflow), and by ``rerun_failed`` for the jobs it runs
  again, since attempt numbers then start again at 1. A task removed with ``delete_task``
  keeps its nodes until then; they are never read (its id cannot be used again).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from dataclasses import dataclass

from kazoo.client import KazooClient

from helixpy.errors import CorruptNode, NoResult, NotFound
from helixpy.model import JobContext, TaskPartitionState
from helixpy.model.values import JsonValue
from helixpy.store import plan
from helixpy.store.codec import decode, encode, frame
from helixpy.store.ops import Create
from helixpy.store.paths import Paths
from helixpy.store.plan import Exists, Plan, run_plan
from helixpy.store.records import job_config_plan, job_context_plan

#: Values up to this many bytes of JSON live in the head itself (gzipped above 4 KB).
INLINE_BYTES = 64 * 1024
#: The most bytes of one chunk of a larger value's gzipped JSON.
CHUNK_BYTES = 120 * 1024


@dataclass(frozen=True)
class ResultWrite:
    """What publishes one value: its directories (created when missing), the chunks
    (written before the report) and the head (written with it)."""

    dirs: tuple[str, ...]
    chunks: tuple[Create, ...]
    head: Create


def result_write(
    paths: Paths, wf: str, job: str, task_id: str, attempt: int, text: bytes
) -> ResultWrite:
    """The writes that store ``text`` (a value's JSON, see
    :func:`helixpy.model.values.result_json`) as attempt ``attempt``'s result. Pure."""
    head = paths.task_result(wf, job, task_id, attempt)
    dirs = (paths.task_results(wf, job), paths.task_result_shard(wf, job, task_id))
    if len(text) <= INLINE_BYTES:
        return ResultWrite(dirs, (), Create(head, frame(b'{"v":' + text + b"}", path=head)))
    packed = gzip.compress(text, compresslevel=6, mtime=0)
    pieces = [packed[i : i + CHUNK_BYTES] for i in range(0, len(packed), CHUNK_BYTES)]
    chunks = tuple(Create(f"{head}+{i}", piece) for i, piece in enumerate(pieces))
    return ResultWrite(dirs, chunks, Create(head, encode({"c": len(pieces)}, path=head)))


def _chunk_count(data: bytes, path: str) -> tuple[int, JsonValue]:
    """A head's (chunk count, inline value); count 0 for an inline value."""
    body = decode(data, path=path)
    if isinstance(body, dict) and "v" in body:
        return 0, body["v"]
    if isinstance(body, dict) and isinstance(body.get("c"), int) and body["c"] > 0:
        return int(body["c"]), None
    raise CorruptNode(f"{path}: not a result head")


def _join(pieces: list[bytes], path: str) -> JsonValue:
    try:
        return json.loads(gzip.decompress(b"".join(pieces)))
    except (OSError, EOFError, ValueError) as exc:
        raise CorruptNode(f"{path}: cannot decode the result's chunks: {exc}") from exc


def read_results(
    zk: KazooClient, paths: Paths, wf: str, job: str, attempts: Mapping[str, int]
) -> dict[str, JsonValue]:
    """The values of the given completed attempts (task id -> attempt number), read
    pipelined: a task whose attempt stored no value maps to None."""
    return run_plan(zk, results_plan(paths, wf, job, attempts))


def results_plan(
    paths: Paths, wf: str, job: str, attempts: Mapping[str, int]
) -> Plan[dict[str, JsonValue]]:
    """:func:`read_results` as a plan (see :mod:`helixpy.store.plan`)."""
    ids = list(attempts)
    heads = [paths.task_result(wf, job, tid, attempts[tid]) for tid in ids]
    out: dict[str, JsonValue] = {}
    chunked: list[tuple[str, str, int]] = []
    for tid, path, data in zip(ids, heads, (yield from plan.get_many(heads)), strict=True):
        if data is None:
            out[tid] = None  # the attempt stored no value
            continue
        count, value = _chunk_count(data, path)
        if count == 0:
            out[tid] = value
        else:
            chunked.append((tid, path, count))
    pieces = yield from plan.get_many([f"{p}+{i}" for _, p, n in chunked for i in range(n)])
    at = 0
    for tid, path, count in chunked:
        mine, at = pieces[at : at + count], at + count
        if any(piece is None for piece in mine):
            raise CorruptNode(f"{path}: a chunk of the result is missing")
        out[tid] = _join([piece or b"" for piece in mine], path)
    return out


def completed_attempts(ctx: JobContext) -> dict[str, int]:
    """Task id -> the attempt that COMPLETED, for the job's completed tasks."""
    return {
        t.task_id: t.num_attempts
        for t in ctx.tasks.values()
        if t.state is TaskPartitionState.COMPLETED
    }


def _context(paths: Paths, wf: str, job: str) -> Plan[JobContext]:
    try:
        return (yield from job_context_plan(paths, wf, job))
    except NotFound:
        if not (yield [Exists(paths.job_config(wf, job))])[0]:
            raise NotFound(f"job {wf}/{job} does not exist in cluster {paths.cluster}") from None
        return JobContext()  # not started: no task has run


def read_job_results(zk: KazooClient, paths: Paths, wf: str, job: str) -> dict[str, JsonValue]:
    """The values of the job's COMPLETED tasks by task id (None for one that returned no
    value); :class:`NotFound` when the job does not exist."""
    return run_plan(zk, job_results_plan(paths, wf, job))


def job_results_plan(paths: Paths, wf: str, job: str) -> Plan[dict[str, JsonValue]]:
    """:func:`read_job_results` as a plan."""
    ctx = yield from _context(paths, wf, job)
    return (yield from results_plan(paths, wf, job, completed_attempts(ctx)))


def read_task_result(zk: KazooClient, paths: Paths, wf: str, job: str, task_id: str) -> JsonValue:
    """The value task ``task_id`` COMPLETED with (None when it returned none);
    :class:`NoResult` when it has not completed, :class:`NotFound` when it does not exist."""
    return run_plan(zk, task_result_plan(paths, wf, job, task_id))


def task_result_plan(paths: Paths, wf: str, job: str, task_id: str) -> Plan[JsonValue]:
    """:func:`read_task_result` as a plan."""
    ctx = yield from _context(paths, wf, job)
    task = next((t for t in ctx.tasks.values() if t.task_id == task_id), None)
    if task is None or task.state is not TaskPartitionState.COMPLETED:
        if task is None and not (yield from _has_task(paths, wf, job, task_id)):
            raise NotFound(f"job {wf}/{job} has no task {task_id}")
        state = None if task is None or task.state is None else task.state.value
        raise NoResult(
            f"task {task_id} of job {wf}/{job} is {state or 'not scheduled yet'}: only a "
            "COMPLETED task has a result",
            state,
        )
    values = yield from results_plan(paths, wf, job, {task_id: task.num_attempts})
    return values[task_id]


def _has_task(paths: Paths, wf: str, job: str, task_id: str) -> Plan[bool]:
    """Whether the job's config names the task (one not scheduled yet has no record)."""
    cfg = yield from job_config_plan(paths, wf, job, hide_deleted=True)
    if cfg.tasks:
        return any(t.task_id == task_id for t in cfg.tasks)
    return task_id.isdigit() and int(task_id) < cfg.task_count
