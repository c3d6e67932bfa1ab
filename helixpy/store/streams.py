"""Streaming jobs in ZooKeeper: the log of split batches and barriers, acks, checkpoints.

``JOBS/<job>/STREAM/LOG/e-<seq>`` are persistent sequential znodes: ZooKeeper's sequence
number is the one total order of a job's entries. An entry is a split batch
``{"splits": [...], "slots": [...]}`` (each split's slot chosen by the writer), a barrier
``{"barrier": true}`` or the end ``{"end": true}`` (a final barrier).

``STREAM/STATE`` is at version 0 while the stream takes entries: every append is a multi
that checks it, and ``end_stream`` (in the multi that appends the end) or the controller
(when the job reaches a final state) bumps it, so nothing is appended after the end.

A slot that reaches a barrier writes ``BARRIERS/<seq>/<slot>``: its contribution and what
``process`` returned for each split it took since the previous barrier. The slot whose ack
completes the set publishes ``CHECKPOINTS/<seq>`` (every slot's contribution) in one multi
that checks every ack is there, so a checkpoint exists once and only when complete.
"""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.store.codec import decode, encode
from helixpy.store.ops import Create, Op
from helixpy.store.paths import Paths

ENTRY_PREFIX = "e-"


def stream_dirs_ops(paths: Paths, wf: str, job: str) -> list[Op]:
    """Creates for a streaming job's STREAM tree (with its job)."""
    return [
        Create(paths.stream(wf, job)),
        Create(paths.stream_state(wf, job)),
        Create(paths.stream_log(wf, job)),
        Create(paths.stream_barriers(wf, job)),
        Create(paths.stream_checkpoints(wf, job)),
    ]


def entry_seq(name: str) -> int:
    return int(name[len(ENTRY_PREFIX) :])


def append_entry(zk: KazooClient, paths: Paths, wf: str, job: str, body: dict[str, Any]) -> int:
    """Append one entry; its sequence number (NoNodeError when the job is gone)."""
    prefix = f"{paths.stream_log(wf, job)}/{ENTRY_PREFIX}"
    created = zk.create(prefix, encode(body, path=prefix), sequence=True)
    return entry_seq(created.rsplit("/", 1)[1])


def entry_seqs(zk: KazooClient, paths: Paths, wf: str, job: str, watch: Any = None) -> list[int]:
    """Every entry's sequence number, in order (optionally watching for new ones)."""
    names = zk.get_children(paths.stream_log(wf, job), watch=watch)
    return sorted(entry_seq(n) for n in names if n.startswith(ENTRY_PREFIX))


def read_entry(zk: KazooClient, paths: Paths, wf: str, job: str, seq: int) -> dict[str, Any]:
    path = f"{paths.stream_log(wf, job)}/{ENTRY_PREFIX}{seq:010d}"
    data, _ = zk.get(path)
    body = decode(data, path=path)
    return dict(body) if isinstance(body, dict) else {}


def is_barrier(entry: dict[str, Any]) -> bool:
    return bool(entry.get("barrier") or entry.get("end"))


def read_ack(
    zk: KazooClient, paths: Paths, wf: str, job: str, seq: int, slot: int
) -> dict[str, Any] | None:
    path = paths.stream_ack(wf, job, seq, slot)
    try:
        data, _ = zk.get(path)
    except NoNodeError:
        return None
    body = decode(data, path=path)
    return dict(body) if isinstance(body, dict) else None


def checkpoint_seqs(zk: KazooClient, paths: Paths, wf: str, job: str) -> list[int]:
    return sorted(int(n) for n in zk.get_children(paths.stream_checkpoints(wf, job)))


def read_checkpoint(
    zk: KazooClient, paths: Paths, wf: str, job: str, seq: int
) -> dict[int, Any] | None:
    """A published checkpoint: slot -> contribution; None while incomplete."""
    path = paths.stream_checkpoint(wf, job, seq)
    try:
        data, _ = zk.get(path)
    except NoNodeError:
        return None
    body = decode(data, path=path) or {}
    return {int(slot): value for slot, value in dict(body.get("slots") or {}).items()}
