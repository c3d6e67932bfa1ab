"""The hot set's exit and the expiry index: finished workflows leave the leader's memory.

A workflow is *active* while it may still change: not final, or final with attempts still
being cancelled, or a job queue or recurring template (they never finish by themselves).
Its ``ACTIVE/<name>`` entry is created in the first batch of its start and deleted in the
multi that *retires* it (the pass's write that follows its final context); a new leader
loads only what ``ACTIVE`` names, so takeover costs follow active work, not history.

A retired terminable workflow gets an item ``[name, uid, due]`` in an entry node
``EXPIRY/<bucket>/<entry>`` (``bucket = due // BUCKET``; one entry per pass and bucket, at
most ``ENTRY_ITEMS`` items). The leader keeps only the bucket ids and, per bucket, the
earliest time something in it may be due, so its memory follows the buckets of the expiry
window, not the workflows it retains. A due bucket is read, its due items purged (the
workflow's CONFIG uid must still match: a name reused by a later start is not touched),
and its entries shrunk or deleted in the same fenced writes.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from kazoo.exceptions import NoNodeError

from helixpy.controller.runtime import WorkflowRuntime
from helixpy.errors import CorruptNode
from helixpy.store.codec import decode, encode
from helixpy.store.ops import Create, Delete, Op, SetData

if TYPE_CHECKING:
    from kazoo.client import KazooClient

    from helixpy.store.fencing import FencedWriter
    from helixpy.store.paths import Paths

log = logging.getLogger(__name__)

#: Width of one expiry bucket, seconds. Coarse enough that a day's window is a few
#: thousand buckets (one short child list at takeover); purges are still on time because
#: a bucket's items carry their own due times.
BUCKET = 10
#: Items per entry node (each ~100 bytes: far below the payload limit).
ENTRY_ITEMS = 1000

#: (name, uid) pairs to purge -> purges them (the CommandHandler's batched remover)
Purger = Callable[[list[tuple[str, str]]], None]


def is_retirable(wf: WorkflowRuntime) -> bool:
    """Whether ``wf`` can leave the hot set: it is final and nothing of it still runs."""
    if not wf.state.is_final:
        return False  # (a queue never is, but a recurring queue's run: terminable)
    if wf.stored.config.is_recurring:
        return False
    return not any(job.active for job in wf.hot.values())


def expiry_due(wf: WorkflowRuntime) -> float | None:
    """When a retired ``wf`` is purged (None: never, it is not terminable)."""
    if not wf.stored.config.terminable or wf.finish_time is None:
        return None
    return wf.finish_time.timestamp() + wf.stored.config.expiry


class ExpiryIndex:
    """The leader's view of ``EXPIRY``: bucket ids and their earliest possible due time."""

    def __init__(self, zk: KazooClient, paths: Paths, writer: FencedWriter) -> None:
        self.zk = zk
        self.paths = paths
        self.writer = writer
        #: bucket -> the earliest time an item in it may be due
        self.wake: dict[int, float] = {}

    def load(self) -> None:
        try:
            names = self.zk.get_children(self.paths.expiry)
        except NoNodeError:
            names = []
        self.wake = {int(b): int(b) * BUCKET for b in names if b.isdigit()}

    def retire_ops(self, wfs: Iterable[WorkflowRuntime]) -> tuple[list[Op], Callable[[], None]]:
        """The writes retiring ``wfs``, and what to note once they are committed."""
        ops: list[Op] = []
        items: dict[int, list[list[Any]]] = defaultdict(list)
        for wf in wfs:
            ops.append(Delete(self.paths.active_entry(wf.name)))
            due = expiry_due(wf)
            if due is not None:
                items[int(due // BUCKET)].append([wf.name, wf.stored.uid, due])
        for bucket, entries in sorted(items.items()):
            if bucket not in self.wake:
                ops.append(Create(self.paths.expiry_bucket(bucket)))
            for i in range(0, len(entries), ENTRY_ITEMS):
                path = self.paths.expiry_entry(bucket, uuid.uuid4().hex[:12])
                ops.append(Create(path, encode(entries[i : i + ENTRY_ITEMS], path=path)))

        def committed() -> None:
            for bucket, entries in items.items():
                first = min(e[2] for e in entries)
                self.wake[bucket] = min(self.wake.get(bucket, math.inf), first)

        return ops, committed

    def next_due(self) -> float | None:
        return min(self.wake.values()) if self.wake else None

    def purge(self, now: float, purger: Purger) -> float | None:
        """Purge every due item; returns when the next one may be due."""
        for bucket in sorted(b for b, at in self.wake.items() if at <= now):
            self._purge_bucket(bucket, now, purger)
        return self.next_due()

    def _purge_bucket(self, bucket: int, now: float, purger: Purger) -> None:
        root = self.paths.expiry_bucket(bucket)
        try:
            names = self.zk.get_children(root)
        except NoNodeError:
            self.wake.pop(bucket, None)
            return
        reads = [(n, self.zk.get_async(f"{root}/{n}")) for n in names]
        due_items: list[tuple[str, str]] = []
        ops: list[Op] = []
        later = math.inf
        for name, read in reads:
            path = f"{root}/{name}"
            try:
                items = list(decode(read.get()[0], path=path) or [])
            except NoNodeError:
                continue
            except CorruptNode as exc:
                log.error("expiry entry %s is unreadable and dropped: %s", path, exc)
                ops.append(Delete(path))
                continue
            rest = [i for i in items if float(i[2]) > now]
            due_items += [(str(i[0]), str(i[1])) for i in items if float(i[2]) <= now]
            if rest:
                later = min(later, min(float(i[2]) for i in rest))
                if len(rest) < len(items):
                    ops.append(SetData(path, encode(rest, path=path)))
            else:
                ops.append(Delete(path))
        if due_items:
            log.info("purging %d expired workflows", len(due_items))
            purger(due_items)
        closes = (bucket + 1) * BUCKET
        if later == math.inf and closes <= now:
            ops.append(Delete(root))  # closed and empty: nothing can be added to it
            self.wake.pop(bucket, None)
        else:
            self.wake[bucket] = min(later, closes)
        if ops:
            self.writer.commit(ops)
