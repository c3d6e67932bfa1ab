"""Streaming jobs on the participant: warm task slots fed splits and barriers (Velox).

A streaming job (``JobConfig(stream=True, num_tasks=N)``) has N slots; slot ``p`` is the
job's task ``p``, placed and retried like any task. Its attempt opens one
:class:`StreamTask` and then follows the job's log (:mod:`helixpy.store.streams`) in order:

- a split batch: ``process(split)`` for each split routed to this slot;
- a barrier: ``on_barrier()`` (flush and reset), then the slot's ack — its contribution and
  the results of the splits it processed since the previous barrier — and, if that ack
  completes the set, the checkpoint, published in one multi;
- the end: a final barrier, then ``close()``; the attempt COMPLETES.

A slot restarted elsewhere (its participant died, the workflow was resumed) opens with its
last contribution and replays every entry after that barrier: each split's effect reaches
the checkpoints once, and results are recorded once per (split, barrier) because they are
written only with the ack that closes their barrier. An exception in ``process`` fails the
attempt, which the controller retries (from the last ack) under the job's attempt rules.
Stream slots are exempt from ``timeout_per_task``. All writes are fenced by the
participant's incarnation: a zombie slot cannot ack.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["StreamTask", "run_stream_attempt"]

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from helixpy.model import TaskPartitionState, TaskResult, TaskStatus
from helixpy.participant.attempt import Attempt, outcome
from helixpy.participant.registry import StreamTask, TaskContext
from helixpy.store.codec import encode
from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Check, Create, Delete, Op, SetData
from helixpy.store.paths import Paths
from helixpy.store.records import read_cluster_config
from helixpy.store.streams import (
    BARRIER_KINDS,
    END,
    checkpoints_keep,
    entry_path,
    list_entries,
    prunable,
    prune_ops,
    read_ack,
    read_entry,
    split_slot,
)

log = logging.getLogger(__name__)
P = TaskPartitionState

#: Bound of a slot's wait for new entries (the log watch and cancellation end it sooner).
_IDLE_WAIT = 0.2


def run_stream_attempt(
    lookup: Callable[[str], Any],
    attempt: Attempt,
    zk: KazooClient,
    paths: Paths,
    writer: FencedWriter,
) -> tuple[TaskPartitionState, str]:
    """Run one slot attempt; the (state, info) to report."""
    ctx = attempt.ctx
    factory = lookup(ctx.command)
    if factory is None:
        return P.ERROR, f"unknown command {ctx.command!r}"
    try:
        task = factory(ctx)
    except Exception as exc:
        return P.TASK_ERROR, f"Exception happened in running task: {type(exc).__name__}: {exc}"
    if not isinstance(task, StreamTask):
        return P.ERROR, (
            f"command {ctx.command!r} made a {type(task).__name__}, not a StreamTask: a "
            "streaming job (stream=True) needs a StreamTask"
        )
    try:
        result = _Slot(zk, paths, writer, ctx, task).run()
    except Exception as exc:
        log.info("%s slot %d failed: %s", ctx.job, ctx.partition, exc)
        return P.TASK_ERROR, f"Exception happened in running task: {type(exc).__name__}: {exc}"
    return outcome(result, attempt.reason)


class _Slot:
    def __init__(
        self,
        zk: KazooClient,
        paths: Paths,
        writer: FencedWriter,
        ctx: TaskContext,
        task: StreamTask,
    ) -> None:
        self.zk = zk
        self.paths = paths
        self.writer = writer
        self.ctx = ctx
        self.task = task
        self.wf, self.job, self.slot = ctx.workflow, ctx.job, ctx.partition
        self.slots = ctx.job_config.num_tasks
        self.wake = threading.Event()
        self.listed: list[tuple[int, str]] = []  # the log entries as last listed
        self._relisted = 0  # fresh listings taken for the current barrier
        #: checkpoints kept (the cluster's ``stream_checkpoints_keep``, read per attempt)
        self.keep = checkpoints_keep(read_cluster_config(zk, paths))
        #: set when a retention delete missed: the next prune reads what is really there
        self._careful = False

    def run(self) -> TaskResult:
        position, checkpoint, ended = self._restart_point()
        self.task.open(checkpoint)
        if ended:
            # Restarted after acking the end (close() raised, or the participant died
            # before reporting): only the close is left to do.
            self.task.close()
            return TaskResult(TaskStatus.COMPLETED, f"stream ended at {position}")
        results: list[list[Any]] = []
        while not self.ctx.cancelled.is_set():
            self.wake.clear()
            try:
                entries = list_entries(self.zk, self.paths, self.wf, self.job, self._on_log)
            except NoNodeError:
                return TaskResult(TaskStatus.CANCELED, "the job was deleted")
            self.listed = entries
            for seq, kind in entries:
                if seq <= position:
                    continue
                if self.ctx.cancelled.is_set():
                    break
                if kind in BARRIER_KINDS:
                    self._relisted = 0
                    self._ack(seq, self.task.on_barrier(), results, end=kind == END)
                    results = []
                    if kind == END:
                        self.task.close()
                        return TaskResult(TaskStatus.COMPLETED, f"stream ended at {seq}")
                else:
                    entry = read_entry(self.zk, self.paths, self.wf, self.job, seq, kind)
                    for i, split in enumerate(entry.get("splits") or []):
                        if split_slot(entry, seq, i, self.slots) == self.slot:
                            results.append([seq, i, self.task.process(split)])
                position = seq
            self.wake.wait(_IDLE_WAIT)  # woken by the log watch; the bound sees cancellation
        return TaskResult(TaskStatus.CANCELED, "cancelled")

    def _on_log(self, _event: object) -> None:
        self.wake.set()  # never block a kazoo callback: the slot's thread reads

    def _restart_point(self) -> tuple[int, dict[str, Any] | None, bool]:
        """The last barrier this slot acked, its contribution, and whether it was the end;
        (-1, None, False) for a fresh slot."""
        try:
            barriers = sorted(
                (
                    int(b)
                    for b in self.zk.get_children(self.paths.stream_barriers(self.wf, self.job))
                ),
                reverse=True,
            )
        except NoNodeError:
            return -1, None, False
        for seq in barriers:
            ack = read_ack(self.zk, self.paths, self.wf, self.job, seq, self.slot)
            if ack is not None:
                contribution = ack.get("contribution")
                restored = dict(contribution) if isinstance(contribution, dict) else None
                return seq, restored, bool(ack.get("end"))
        return -1, None, False

    def _ack(
        self,
        seq: int,
        contribution: dict[str, Any],
        results: list[list[Any]],
        *,
        end: bool = False,
    ) -> None:
        """Write this slot's ack for barrier ``seq``; publish the checkpoint if complete.

        When every other slot has acked already, the ack and the checkpoint go in one multi
        (one round trip on every barrier's critical path); otherwise the ack goes alone and
        the set is checked again after it, so the last ack always publishes.
        """
        if not isinstance(contribution, dict):
            raise TypeError(f"on_barrier() returned {type(contribution).__name__}, not a dict")
        barrier = self.paths.stream_barrier(self.wf, self.job, seq)
        path = self.paths.stream_ack(self.wf, self.job, seq, self.slot)
        body = encode({"contribution": contribution, "results": results, "end": end}, path=path)
        others, dir_exists = self._others(seq)
        replay = False
        for _ in range(6):
            ops: list[Op] = [] if dir_exists else [Create(barrier)]
            ops.append(SetData(path, body) if replay else Create(path, body))
            if others is not None:
                ops += self._publish_ops(seq, {**others, str(self.slot): contribution})
            try:
                self.writer.commit(ops)
                break
            except MultiFailed as exc:
                error, where = exc.error, exc.op.path
                if isinstance(error, NodeExistsError) and where == barrier:
                    dir_exists = True  # another slot made it
                elif isinstance(error, NodeExistsError) and where == path:
                    replay = True  # a restart replays the same splits since the same barrier
                elif isinstance(error, NodeExistsError):
                    others = None  # the checkpoint exists: published before (a replay)
                elif isinstance(error, NoNodeError) and isinstance(exc.op, Delete):
                    self._missed(where)
                else:
                    raise
        else:
            raise RuntimeError(f"{barrier}: could not write the ack of slot {self.slot}")
        if others is None:
            self._publish(seq, contribution)

    def _others(self, seq: int) -> tuple[dict[str, Any] | None, bool]:
        """(the other slots' contributions when all have acked, else None; whether the
        barrier's directory exists)."""
        if self.slots == 1:
            return {}, False
        try:
            acked = self.zk.get_children(self.paths.stream_barrier(self.wf, self.job, seq))
        except NoNodeError:
            return None, False
        if len(set(acked) - {str(self.slot)}) < self.slots - 1:
            return None, True
        contributions: dict[str, Any] = {}
        for slot in range(self.slots):
            if slot != self.slot:
                ack = read_ack(self.zk, self.paths, self.wf, self.job, seq, slot)
                if ack is None:
                    return None, True
                contributions[str(slot)] = ack.get("contribution")
        return contributions, True

    def _missed(self, path: str) -> None:
        """A delete of the publish multi found nothing at ``path``: look again."""
        if path.startswith(self.paths.stream_log(self.wf, self.job) + "/"):
            self.listed = self._fresh_listing()  # compaction saw a stale listing
        else:
            self._careful = True  # retention assumed an ack or checkpoint that is not there

    def _fresh_listing(self) -> list[tuple[int, str]]:
        self._relisted += 1
        if self._relisted > 1:
            return []  # give compaction up for this barrier: the next one catches up
        return list_entries(self.zk, self.paths, self.wf, self.job)

    def _publish_ops(self, seq: int, contributions: dict[str, Any]) -> list[Op]:
        """Checks of every ack, the checkpoint, and the log compaction up to ``seq``.

        Every slot has acked this barrier, so no slot reads the entries up to it again (a
        restart resumes after its last ack): the log stays as short as the work not yet
        checkpointed.
        """
        checkpoint = self.paths.stream_checkpoint(self.wf, self.job, seq)
        ops: list[Op] = [
            Check(self.paths.stream_ack(self.wf, self.job, seq, s), -1)
            for s in range(self.slots)
            if s != self.slot
        ]
        ops.append(Create(checkpoint, encode({"slots": contributions}, path=checkpoint)))
        ops += [
            Delete(entry_path(self.paths, self.wf, self.job, s, kind))
            for s, kind in self.listed
            if s <= seq
        ]
        return ops + self._retention_ops(seq)

    def _retention_ops(self, seq: int) -> list[Op]:
        """Deletes of the barriers (acks, directory, checkpoint) older than the newest
        ``keep`` checkpoints, in the publish multi: a stream's znodes stay bounded."""
        barriers_dir = self.paths.stream_barriers(self.wf, self.job)
        try:
            old = prunable((int(b) for b in self.zk.get_children(barriers_dir)), seq, self.keep)
        except NoNodeError:
            return []  # the job is going: its whole tree goes with it
        if not self._careful:
            # Every barrier up to a checkpoint has an ack of every slot and a checkpoint.
            slots = [str(s) for s in range(self.slots)]
            return prune_ops(self.paths, self.wf, self.job, old, lambda _b: slots, lambda _b: True)
        self._careful = False
        acks = {b: self._children(self.paths.stream_barrier(self.wf, self.job, b)) for b in old}
        return prune_ops(
            self.paths,
            self.wf,
            self.job,
            [b for b in old if acks[b] is not None],
            lambda b: acks[b] or [],
            lambda b: (
                self.zk.exists(self.paths.stream_checkpoint(self.wf, self.job, b)) is not None
            ),
        )

    def _children(self, path: str) -> list[str] | None:
        try:
            return list(self.zk.get_children(path))
        except NoNodeError:
            return None

    def _publish(self, seq: int, own: dict[str, Any]) -> None:
        """After a lone ack: publish the checkpoint if the set is complete now."""
        others, _ = self._others(seq)
        if others is None:
            return  # others still to come: the last one publishes
        for _ in range(3):
            ops = [
                Check(self.paths.stream_ack(self.wf, self.job, seq, self.slot), -1),
                *self._publish_ops(seq, {**others, str(self.slot): own}),
            ]
            try:
                self.writer.commit(ops)
                return
            except MultiFailed as exc:
                if isinstance(exc.error, NodeExistsError):
                    return  # published by another slot meanwhile: fine
                if not (isinstance(exc.error, NoNodeError) and isinstance(exc.op, Delete)):
                    raise
                self._missed(exc.op.path)
