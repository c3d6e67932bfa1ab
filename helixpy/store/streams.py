"""Streaming jobs in ZooKeeper: the log of split batches and barriers, acks, checkpoints.

``JOBS/<job>/STREAM/LOG/<kind>-<seq>`` are persistent sequential znodes: ZooKeeper's
sequence number is the one total order of a job's entries, and the kind is in the name:
``s-`` a split batch ``{"splits": [...], "keys": [...]?}``, ``b-`` a barrier, ``x-`` the end
(a final barrier).

``STREAM/STATE`` is at version 0 while the stream takes entries: every append is a multi
that checks it, and ``end_stream`` (in the multi that appends the end) or the controller
(when the job reaches a final state) bumps it, so nothing is appended after the end.

A slot that reaches a barrier writes ``BARRIERS/<seq>/<slot>``: its contribution and what
``process`` returned for each split it took since the previous barrier. The slot whose ack
completes the set publishes ``CHECKPOINTS/<seq>`` (every slot's contribution) in one multi
that checks every ack is there, so a checkpoint exists once and only when complete.

Retention: the same multi deletes the log entries up to the barrier (every slot is past
them) and the barriers older than the newest ``stream_checkpoints_keep`` (cluster setting,
default 100) with their acks and checkpoints, so a stream's znodes stay bounded however
long it runs, and every record a restart needs (each slot's newest ack) stays.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.store import plan
from helixpy.store.codec import decode
from helixpy.store.ops import Create, Delete, Op
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan, run_plan

#: Entry kinds, as the first letter of the entry's name: the kind of every entry is known
#: from one listing, without reading any (ZooKeeper numbers sequential children of one
#: parent with one counter, whatever their prefix).
SPLITS, BARRIER, END = "s", "b", "x"
BARRIER_KINDS = frozenset({BARRIER, END})


def stream_dirs_ops(paths: Paths, wf: str, job: str) -> list[Op]:
    """Creates for a streaming job's STREAM tree (with its job)."""
    return [
        Create(paths.stream(wf, job)),
        Create(paths.stream_state(wf, job)),
        Create(paths.stream_log(wf, job)),
        Create(paths.stream_barriers(wf, job)),
        Create(paths.stream_checkpoints(wf, job)),
    ]


def entry_prefix(paths: Paths, wf: str, job: str, kind: str) -> str:
    """The path prefix a sequential create of an entry of ``kind`` uses."""
    return f"{paths.stream_log(wf, job)}/{kind}-"


def entry_path(paths: Paths, wf: str, job: str, seq: int, kind: str) -> str:
    return f"{paths.stream_log(wf, job)}/{kind}-{seq:010d}"


def parse_entry(name: str) -> tuple[int, str]:
    """(sequence number, kind) of an entry's name."""
    return int(name[2:]), name[0]


def list_entries(
    zk: KazooClient, paths: Paths, wf: str, job: str, watch: Any = None
) -> list[tuple[int, str]]:
    """Every entry as (sequence number, kind), in order (optionally watching for more);
    kazoo's NoNodeError when the log is gone."""
    return entries_of(zk.get_children(paths.stream_log(wf, job), watch=watch))


def entries_of(names: Iterable[str]) -> list[tuple[int, str]]:
    """The log's entries, as (sequence number, kind) in order, from its child names."""
    return sorted(parse_entry(n) for n in names if n[:2] in ("s-", "b-", "x-"))


def entries_plan(paths: Paths, wf: str, job: str) -> Plan[list[tuple[int, str]]]:
    """:func:`list_entries` (without a watch) as a plan (see :mod:`helixpy.store.plan`)."""
    names = yield from plan.children(paths.stream_log(wf, job))
    if names is None:
        raise NoNodeError(paths.stream_log(wf, job))
    return entries_of(names)


def read_entry(
    zk: KazooClient, paths: Paths, wf: str, job: str, seq: int, kind: str
) -> dict[str, Any]:
    """An entry's body; kazoo's NoNodeError when it is gone (compacted)."""
    return run_plan(zk, entry_plan(paths, wf, job, seq, kind))


def entry_plan(paths: Paths, wf: str, job: str, seq: int, kind: str) -> Plan[dict[str, Any]]:
    """:func:`read_entry` as a plan."""
    path = entry_path(paths, wf, job, seq, kind)
    data = yield from plan.get(path)
    if data is None:
        raise NoNodeError(path)
    body = decode(data, path=path)
    return dict(body) if isinstance(body, dict) else {}


def split_slot(entry: dict[str, Any], seq: int, index: int, slots: int) -> int:
    """The slot a split goes to: its key's hash when the batch has keys, else round-robin
    from the batch's sequence number. Slots compute it themselves, from their own job
    config, so a writer never needs to know how many there are."""
    keys = entry.get("keys")
    base = keys[index] if keys else seq + index
    return int(base) % slots


def read_ack(
    zk: KazooClient, paths: Paths, wf: str, job: str, seq: int, slot: int
) -> dict[str, Any] | None:
    """Slot ``slot``'s ack of barrier ``seq``; None when it has not acked (or was pruned)."""
    return ack_from(
        paths.stream_ack(wf, job, seq, slot),
        run_plan(zk, plan.get(paths.stream_ack(wf, job, seq, slot))),
    )


def ack_from(path: str, data: bytes | None) -> dict[str, Any] | None:
    """An ack from the data at its ``path`` (None: no ack)."""
    if data is None:
        return None
    body = decode(data, path=path)
    return dict(body) if isinstance(body, dict) else None


def read_checkpoint(
    zk: KazooClient, paths: Paths, wf: str, job: str, seq: int
) -> dict[int, Any] | None:
    """A published checkpoint: slot -> contribution; None while incomplete."""
    return run_plan(zk, checkpoint_plan(paths, wf, job, seq))


def checkpoint_plan(paths: Paths, wf: str, job: str, seq: int) -> Plan[dict[int, Any] | None]:
    """:func:`read_checkpoint` as a plan."""
    path = paths.stream_checkpoint(wf, job, seq)
    data = yield from plan.get(path)
    if data is None:
        return None
    body = decode(data, path=path) or {}
    return {int(slot): value for slot, value in dict(body.get("slots") or {}).items()}


#: Default of the cluster setting ``stream_checkpoints_keep``: the checkpoints (with their
#: barriers' acks) a streaming job keeps.
CHECKPOINTS_KEEP = 100
#: The most old barriers one publish deletes (a lowered setting shrinks over a few).
PRUNE_PER_PUBLISH = 8


def checkpoints_keep(cluster_config: Mapping[str, Any]) -> int:
    """The cluster's ``stream_checkpoints_keep`` (default :data:`CHECKPOINTS_KEEP`)."""
    return int(cluster_config.get("stream_checkpoints_keep", CHECKPOINTS_KEEP))


def prunable(barriers: Iterable[int], seq: int, keep: int) -> list[int]:
    """The barriers a publish of checkpoint ``seq`` deletes: those up to ``seq`` older than
    the newest ``keep`` (``seq`` counted, listed or not), oldest first, at most
    :data:`PRUNE_PER_PUBLISH`.

    Only barriers up to the one being published go, and every one of those has its
    checkpoint (a checkpoint needs every slot's ack, and slots ack in log order): a
    restart resumes after its slot's newest ack, which is never older than ``seq``.
    """
    done = sorted({b for b in barriers if b <= seq} | {seq})
    return done[: max(0, len(done) - max(1, keep))][:PRUNE_PER_PUBLISH]


def prune_ops(
    paths: Paths,
    wf: str,
    job: str,
    barriers: Iterable[int],
    acks: Callable[[int], Iterable[str]],
    has_checkpoint: Callable[[int], bool],
) -> list[Op]:
    """Deletes of ``barriers``' acks (the slot names ``acks`` gives), their directories
    and their checkpoints (where ``has_checkpoint``)."""
    ops: list[Op] = []
    for seq in barriers:
        ops += [Delete(f"{paths.stream_barrier(wf, job, seq)}/{name}") for name in acks(seq)]
        ops.append(Delete(paths.stream_barrier(wf, job, seq)))
        if has_checkpoint(seq):
            ops.append(Delete(paths.stream_checkpoint(wf, job, seq)))
    return ops
