"""The driver's side of streaming jobs: appending splits and barriers, waiting, results.

Appends are data-plane writes straight to ZooKeeper (one sequential create per batch or
barrier, :mod:`helixpy.store.streams`), not controller mutations: routing them through the
leader's pipeline would put the data plane behind scheduling. Each entry carries a random
id, so an append retried after a lost connection finds its first try instead of adding the
batch twice. Every append checks ``STREAM/STATE`` is still at version 0 in the same multi
(``end_stream`` bumps it there), so nothing lands after the end.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, ConnectionLoss, NoNodeError, RolledBackError

from helixpy.driver.leader import SAFETY_WAKE, Watcher
from helixpy.errors import BarrierCancelled, InvalidConfig, NotFound, PollTimeout
from helixpy.model import JobContext, TaskState
from helixpy.store import plan, records
from helixpy.store.codec import decode, encode
from helixpy.store.ops import Check, Create, SetData
from helixpy.store.paths import Paths
from helixpy.store.plan import Exists, Get, Multi, Plan, Sync, run_plan
from helixpy.store.streams import (
    BARRIER,
    END,
    SPLITS,
    ack_from,
    checkpoint_plan,
    entries_plan,
    entry_path,
    entry_plan,
    entry_prefix,
    parse_entry,
)

#: How far back from the log's tail a retried append looks for its first try.
_RETRY_LOOKBACK = 64
#: Job states in which a barrier can no longer complete.
_CANCELLING = frozenset(
    {
        TaskState.STOPPING,
        TaskState.STOPPED,
        TaskState.FAILING,
        TaskState.FAILED,
        TaskState.TIMING_OUT,
        TaskState.TIMED_OUT,
        TaskState.ABORTED,
    }
)


@dataclass(frozen=True)
class SplitResult:
    """What ``process`` returned for one split: batch = the sequence number of its
    ``add_splits``, index = its place in that batch, barrier = the barrier that recorded it."""

    batch: int
    index: int
    result: Any
    barrier: int


class Barrier:
    """A barrier requested on a streaming job (``TaskDriver.request_barrier``)."""

    def __init__(
        self, zk: KazooClient, paths: Paths, watcher: Watcher, wf: str, job: str, seq: int
    ) -> None:
        self._zk = zk
        self._paths = paths
        self._watcher = watcher
        self.workflow = wf
        self.job = job
        self.sequence = seq

    def __repr__(self) -> str:
        return f"Barrier({self.workflow}/{self.job} #{self.sequence})"

    def done(self) -> bool:
        """Whether its checkpoint is published (also when it has been pruned since)."""
        return run_plan(self._zk, barrier_done(self._paths, self.workflow, self.job, self.sequence))

    def wait(self, timeout: float = 300.0) -> dict[int, dict[str, Any]]:
        """The checkpoint (slot -> contribution) once every slot has contributed.

        Raises :class:`PollTimeout` after ``timeout`` seconds, :class:`BarrierCancelled`
        when the job stops, fails or is deleted first, :class:`NotFound` when the
        checkpoint was published but has been pruned since (a stream keeps its newest
        ``stream_checkpoints_keep`` checkpoints, cluster setting, default 100).
        """
        deadline = time.monotonic() + timeout
        paths, wf, job, seq = self._paths, self.workflow, self.job, self.sequence
        watched = (paths.stream_checkpoint(wf, job, seq), paths.job_context(wf, job))
        with self._watcher.watching(*watched):
            while True:
                generation = self._watcher.generation(*watched)
                round_ = barrier_round(paths, wf, job, seq, str(self))
                found, state = run_plan(self._zk, round_, watch=self._watcher.fire)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise barrier_timeout(self, timeout, state)
                self._watcher.wait(generation, min(left, SAFETY_WAKE), *watched)


def barrier_timeout(barrier: object, timeout: float, state: TaskState | None) -> PollTimeout:
    """The error of a barrier wait that ran out of time (``state``: its job's, last seen)."""
    return PollTimeout(
        f"{barrier} did not complete within {timeout:g}s",
        state.value if state is not None else None,
    )


def barrier_done(paths: Paths, wf: str, job: str, seq: int) -> Plan[bool]:
    """Whether barrier ``seq``'s checkpoint is published (or was, and has been pruned)."""
    if (yield [Exists(paths.stream_checkpoint(wf, job, seq))])[0]:
        return True
    return (yield from _pruned(paths, wf, job, seq))


def _pruned(paths: Paths, wf: str, job: str, seq: int) -> Plan[bool]:
    """Whether its checkpoint was published and then pruned by retention: the publish
    deletes the log entries up to it in the same multi, so an entry that is gone while
    the log is there was checkpointed; a checkpoint that is gone too was pruned."""
    entries = [entry_path(paths, wf, job, seq, kind) for kind in (BARRIER, END)]
    log, checkpoint = paths.stream_log(wf, job), paths.stream_checkpoint(wf, job, seq)
    found = yield [Exists(p) for p in (*entries, log, checkpoint)]
    return not any(found[:2]) and found[2] and not found[3]


def barrier_round(
    paths: Paths, wf: str, job: str, seq: int, what: str
) -> Plan[tuple[dict[int, Any] | None, TaskState | None]]:
    """One look at barrier ``seq`` (``what`` names it), arming the runner's watch on its
    checkpoint and its job's context: (the checkpoint, the job's state); the checkpoint is
    None while it is not published. Raises :class:`NotFound` when it was published and
    pruned since, :class:`BarrierCancelled` when the job is gone or ended without it."""
    checkpoint = paths.stream_checkpoint(wf, job, seq)
    if (yield [Exists(checkpoint, watch=True)])[0]:
        found = yield from checkpoint_plan(paths, wf, job, seq)
        if found is not None:
            return found, None
    if (yield from _pruned(paths, wf, job, seq)):
        raise NotFound(
            f"{what}: its checkpoint was published and then pruned (a stream "
            "keeps its newest stream_checkpoints_keep checkpoints, cluster setting)"
        )
    (data,) = yield [Get(paths.job_context(wf, job), watch=True)]
    if data is None:
        raise BarrierCancelled(f"{what}: the job was deleted")
    state = _state_of(data)
    if state in _CANCELLING or state is TaskState.COMPLETED:
        raise BarrierCancelled(f"{what}: the job is {state.value if state else '?'}")
    return None, state


def _state_of(data: bytes) -> TaskState | None:
    """A job's state from its CONTEXT's data."""
    state = JobContext.header_from_dict(decode(data) or {})["state"]
    return None if state is None else TaskState(state)


def stream_slots(zk: KazooClient, paths: Paths, wf: str, job: str) -> int:
    """The slot count of a streaming job (a job's config never changes: callers cache it)."""
    return run_plan(zk, stream_slots_plan(paths, wf, job))


def stream_slots_plan(paths: Paths, wf: str, job: str) -> Plan[int]:
    """:func:`stream_slots` as a plan (see :mod:`helixpy.store.plan`)."""
    try:
        cfg = yield from records.job_config_plan(paths, wf, job)
    except NotFound:
        raise NotFound(f"job {wf}/{job} does not exist in cluster {paths.cluster}") from None
    if not cfg.stream:
        raise InvalidConfig("job.stream", f"job {wf}/{job} is not a streaming job")
    return cfg.num_tasks


def _closed_reason(paths: Paths, wf: str, job: str) -> Plan[str]:
    """Why a stream takes no more entries (its STATE moved past version 0)."""
    data = yield from plan.get(paths.job_context(wf, job))
    if data is None:
        return "was deleted"
    state = _state_of(data)
    if state is None or state is TaskState.COMPLETED or not state.is_final:
        return "has ended"
    return f"is {state.value}"


def append(paths: Paths, wf: str, job: str, kind: str, body: dict[str, Any]) -> Plan[int]:
    """Append an entry of ``kind`` in a multi checking that the stream is open (STATE at
    version 0); the end also closes it. Retried after a lost connection, the append finds
    its first try (by a random id) instead of adding the entry twice."""
    body = {**body, "id": uuid.uuid4().hex}
    state = paths.stream_state(wf, job)
    prefix = entry_prefix(paths, wf, job, kind)
    data = encode(body, path=prefix)
    guard = (
        SetData(state, encode({"closed": "ended"}, path=state), version=0)
        if kind == END
        else Check(state, 0)
    )
    for _ in range(3):
        try:
            (results,) = yield [Multi((guard, Create(prefix, data, sequence=True)))]
        except ConnectionLoss:
            yield [Sync(paths.stream_log(wf, job))]
            found = yield from _find(paths, wf, job, body["id"])
            if found is not None:
                return found
            continue
        if isinstance(results[0], BadVersionError):
            reason = yield from _closed_reason(paths, wf, job)
            raise InvalidConfig("stream", f"the stream of {wf}/{job} {reason}")
        if isinstance(results[0], NoNodeError):
            yield from stream_slots_plan(paths, wf, job)  # names it: missing, or not a stream
            raise NotFound(f"job {wf}/{job} does not exist in cluster {paths.cluster}")
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            # The op that failed, not the others of the multi it rolled back (a write
            # without the cluster's identity fails its create with NoAuth, which the
            # driver turns into AccessDenied; the check before it only says RolledBack).
            raise next((e for e in errors if not isinstance(e, RolledBackError)), errors[0])
        return parse_entry(str(results[1]).rsplit("/", 1)[1])[0]
    raise ConnectionLoss(f"could not append to {wf}/{job}")


def _find(paths: Paths, wf: str, job: str, entry_id: str) -> Plan[int | None]:
    entries = (yield from entries_plan(paths, wf, job))[-_RETRY_LOOKBACK:]
    for seq, kind in reversed(entries):
        if (yield from entry_plan(paths, wf, job, seq, kind)).get("id") == entry_id:
            return seq
    return None


def check_splits(splits: object) -> None:
    """:class:`InvalidConfig` unless ``splits`` is a non-empty list or tuple (a string,
    bytes or a mapping is one value, not a batch of splits)."""
    if not isinstance(splits, list | tuple) or not splits:
        raise InvalidConfig(
            "splits",
            f"must be a non-empty list of JSON-serialisable splits (got {type(splits).__name__})",
        )


def add_splits(
    paths: Paths, wf: str, job: str, splits: Sequence[Any], key: Callable[[Any], Any] | None
) -> Plan[int]:
    """Append a batch. With ``key``, each split carries a stable hash of its key (not
    Python's salted ``hash()``: the same key reaches the same slot from any process);
    without, the slots share the batch round-robin."""
    check_splits(splits)
    body: dict[str, Any] = {"splits": list(splits)}
    if key is not None:
        body["keys"] = [zlib.crc32(repr(key(s)).encode()) for s in splits]
    try:
        return (yield from append(paths, wf, job, SPLITS, body))
    except TypeError as exc:  # raised by the encode, before anything is sent
        raise InvalidConfig("splits", f"must be JSON-serialisable: {exc}") from None


def request_barrier(paths: Paths, wf: str, job: str) -> Plan[int]:
    """The sequence of a new barrier, or of the last entry when that is a barrier: no
    split came after it, so it covers everything this request must (published already or
    not). Entries up to a published barrier are compacted away by the slots."""
    entries = yield from entries_plan(paths, wf, job)
    if entries and entries[-1][1] == BARRIER:
        state = yield from plan.get(paths.stream_state(wf, job))
        if not state:  # (the stream is still open: an ended one refuses below)
            return entries[-1][0]
    return (yield from append(paths, wf, job, BARRIER, {}))


def end_stream(paths: Paths, wf: str, job: str) -> Plan[int]:
    """Append the end (a final barrier) and close the stream, in one multi."""
    return (yield from append(paths, wf, job, END, {}))


def split_results(
    paths: Paths, wf: str, job: str, since_barrier: int | None
) -> Plan[list[SplitResult]]:
    """Results recorded by every kept checkpoint after ``since_barrier``, in split order
    (a stream keeps its newest ``stream_checkpoints_keep`` checkpoints with their acks)."""
    check = yield from records.job_config_plan(paths, wf, job)
    if not check.stream:
        raise InvalidConfig("job.stream", f"job {wf}/{job} is not a streaming job")
    names = yield from plan.children(paths.stream_checkpoints(wf, job))
    if names is None:
        raise NoNodeError(paths.stream_checkpoints(wf, job))
    barriers = sorted(int(n) for n in names if since_barrier is None or int(n) > since_barrier)
    slots = range(check.num_tasks)
    ack_paths = [paths.stream_ack(wf, job, b, slot) for b in barriers for slot in slots]
    found = yield from plan.get_many(ack_paths)
    acks = [ack_from(p, d) for p, d in zip(ack_paths, found, strict=True)]
    out: list[SplitResult] = []
    for i, barrier in enumerate(barriers):
        mine = acks[i * check.num_tasks : (i + 1) * check.num_tasks]
        if any(ack is None for ack in mine):
            continue  # pruned while this read: all of that checkpoint or none of it
        for ack in mine:
            for batch, index, result in (ack or {}).get("results") or []:
                out.append(SplitResult(int(batch), int(index), result, barrier))
    out.sort(key=lambda r: (r.batch, r.index))
    return out


__all__ = ["Barrier", "SplitResult"]
