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
from helixpy.store import records
from helixpy.store.codec import decode, encode
from helixpy.store.paths import Paths
from helixpy.store.streams import (
    BARRIER,
    END,
    SPLITS,
    entry_path,
    entry_prefix,
    list_entries,
    parse_entry,
    read_ack,
    read_checkpoint,
    read_entry,
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
        return (
            self._zk.exists(self._paths.stream_checkpoint(self.workflow, self.job, self.sequence))
            is not None
            or self._pruned()
        )

    def _pruned(self) -> bool:
        """Whether its checkpoint was published and then pruned by retention: the publish
        deletes the log entries up to it in the same multi, so an entry that is gone while
        the log is there was checkpointed; a checkpoint that is gone too was pruned."""
        entries = [
            entry_path(self._paths, self.workflow, self.job, self.sequence, kind)
            for kind in (BARRIER, END)
        ]
        if any(self._zk.exists(path) is not None for path in entries):
            return False
        checkpoint = self._paths.stream_checkpoint(self.workflow, self.job, self.sequence)
        return (
            self._zk.exists(self._paths.stream_log(self.workflow, self.job)) is not None
            and self._zk.exists(checkpoint) is None
        )

    def wait(self, timeout: float = 300.0) -> dict[int, dict[str, Any]]:
        """The checkpoint (slot -> contribution) once every slot has contributed.

        Raises :class:`PollTimeout` after ``timeout`` seconds, :class:`BarrierCancelled`
        when the job stops, fails or is deleted first, :class:`NotFound` when the
        checkpoint was published but has been pruned since (a stream keeps its newest
        ``stream_checkpoints_keep`` checkpoints, cluster setting, default 100).
        """
        deadline = time.monotonic() + timeout
        checkpoint = self._paths.stream_checkpoint(self.workflow, self.job, self.sequence)
        context = self._paths.job_context(self.workflow, self.job)
        seen_version: int | None = None
        state: TaskState | None = None
        with self._watcher.watching(checkpoint, context):
            while True:
                generation = self._watcher.generation(checkpoint, context)
                if self._watcher.arm(checkpoint):
                    found = read_checkpoint(
                        self._zk, self._paths, self.workflow, self.job, self.sequence
                    )
                    if found is not None:
                        return found
                if self._pruned():
                    raise NotFound(
                        f"{self}: its checkpoint was published and then pruned (a stream "
                        "keeps its newest stream_checkpoints_keep checkpoints, cluster setting)"
                    )
                stat = self._zk.exists(context, watch=self._watcher.fire)
                if stat is None:
                    raise BarrierCancelled(f"{self}: the job was deleted")
                if stat.version != seen_version:  # re-read the job's state only when it moved
                    seen_version = stat.version
                    state = _job_state(self._zk, context)
                    if state in _CANCELLING or state is TaskState.COMPLETED:
                        shown = state.value if state else "?"
                        raise BarrierCancelled(f"{self}: the job is {shown}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PollTimeout(
                        f"{self} did not complete within {timeout:g}s",
                        state.value if state is not None else None,
                    )
                self._watcher.wait(generation, min(left, SAFETY_WAKE), checkpoint, context)


def _job_state(zk: KazooClient, context_path: str) -> TaskState | None:
    try:
        data, _ = zk.get(context_path)
    except NoNodeError:
        return None
    return TaskState(JobContext.header_from_dict(decode(data) or {})["state"])


def stream_slots(zk: KazooClient, paths: Paths, wf: str, job: str) -> int:
    """The slot count of a streaming job (a job's config never changes: callers cache it)."""
    try:
        cfg = records.read_job_config(zk, paths, wf, job)
    except NotFound:
        raise NotFound(f"job {wf}/{job} does not exist in cluster {paths.cluster}") from None
    if not cfg.stream:
        raise InvalidConfig("job.stream", f"job {wf}/{job} is not a streaming job")
    return cfg.num_tasks


def closed_reason(zk: KazooClient, paths: Paths, wf: str, job: str) -> str:
    """Why a stream takes no more entries (its STATE moved past version 0)."""
    try:
        state = _job_state(zk, paths.job_context(wf, job))
    except NoNodeError:
        return "was deleted"
    if state is None or state is TaskState.COMPLETED or not state.is_final:
        return "has ended"
    return f"is {state.value}"


def append(
    zk: KazooClient,
    paths: Paths,
    wf: str,
    job: str,
    kind: str,
    body: dict[str, Any],
) -> int:
    """Append an entry of ``kind`` in a multi checking that the stream is open (STATE at
    version 0); the end also closes it. Retried after a lost connection, the append finds
    its first try (by a random id) instead of adding the entry twice."""
    body = {**body, "id": uuid.uuid4().hex}
    state = paths.stream_state(wf, job)
    prefix = entry_prefix(paths, wf, job, kind)
    data = encode(body, path=prefix)
    for _ in range(3):
        tx = zk.transaction()
        if kind == END:
            tx.set_data(state, encode({"closed": "ended"}, path=state), version=0)
        else:
            tx.check(state, 0)
        tx.create(prefix, data, sequence=True)
        try:
            results = tx.commit()
        except ConnectionLoss:
            zk.sync(paths.stream_log(wf, job))
            found = _find(zk, paths, wf, job, body["id"])
            if found is not None:
                return found
            continue
        if isinstance(results[0], BadVersionError):
            raise InvalidConfig(
                "stream", f"the stream of {wf}/{job} {closed_reason(zk, paths, wf, job)}"
            )
        if isinstance(results[0], NoNodeError):
            stream_slots(zk, paths, wf, job)  # names the problem: missing, or not a stream
            raise NotFound(f"job {wf}/{job} does not exist in cluster {paths.cluster}")
        errors = [r for r in results if isinstance(r, Exception)]
        if errors:
            # The op that failed, not the others of the multi it rolled back (a write
            # without the cluster's identity fails its create with NoAuth, which the
            # driver turns into AccessDenied; the check before it only says RolledBack).
            raise next((e for e in errors if not isinstance(e, RolledBackError)), errors[0])
        return parse_entry(str(results[1]).rsplit("/", 1)[1])[0]
    raise ConnectionLoss(f"could not append to {wf}/{job}")


def _find(zk: KazooClient, paths: Paths, wf: str, job: str, entry_id: str) -> int | None:
    for seq, kind in reversed(list_entries(zk, paths, wf, job)[-_RETRY_LOOKBACK:]):
        if read_entry(zk, paths, wf, job, seq, kind).get("id") == entry_id:
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
    zk: KazooClient,
    paths: Paths,
    wf: str,
    job: str,
    splits: Sequence[Any],
    key: Callable[[Any], Any] | None,
) -> int:
    """Append a batch. With ``key``, each split carries a stable hash of its key (not
    Python's salted ``hash()``: the same key reaches the same slot from any process);
    without, the slots share the batch round-robin."""
    check_splits(splits)
    body: dict[str, Any] = {"splits": list(splits)}
    if key is not None:
        body["keys"] = [zlib.crc32(repr(key(s)).encode()) for s in splits]
    try:
        return append(zk, paths, wf, job, SPLITS, body)
    except TypeError as exc:
        raise InvalidConfig("splits", f"must be JSON-serialisable: {exc}") from None


def request_barrier(zk: KazooClient, paths: Paths, wf: str, job: str) -> int:
    """The sequence of a new barrier, or of the last entry when that is a barrier: no
    split came after it, so it covers everything this request must (published already or
    not). Entries up to a published barrier are compacted away by the slots."""
    entries = list_entries(zk, paths, wf, job)
    if entries and entries[-1][1] == BARRIER:
        state, _ = zk.get(paths.stream_state(wf, job))
        if not state:  # (the stream is still open: an ended one refuses below)
            return entries[-1][0]
    return append(zk, paths, wf, job, BARRIER, {})


def end_stream(zk: KazooClient, paths: Paths, wf: str, job: str) -> int:
    """Append the end (a final barrier) and close the stream, in one multi."""
    return append(zk, paths, wf, job, END, {})


def split_results(
    zk: KazooClient, paths: Paths, wf: str, job: str, since_barrier: int | None
) -> list[SplitResult]:
    """Results recorded by every kept checkpoint after ``since_barrier``, in split order
    (a stream keeps its newest ``stream_checkpoints_keep`` checkpoints with their acks)."""
    check = records.read_job_config(zk, paths, wf, job)
    if not check.stream:
        raise InvalidConfig("job.stream", f"job {wf}/{job} is not a streaming job")
    out: list[SplitResult] = []
    for name in sorted(zk.get_children(paths.stream_checkpoints(wf, job))):
        barrier = int(name)
        if since_barrier is not None and barrier <= since_barrier:
            continue
        acks = [read_ack(zk, paths, wf, job, barrier, slot) for slot in range(check.num_tasks)]
        if any(ack is None for ack in acks):
            continue  # pruned while this read: all of that checkpoint or none of it
        for ack in acks:
            for batch, index, result in (ack or {}).get("results") or []:
                out.append(SplitResult(int(batch), int(index), result, barrier))
    out.sort(key=lambda r: (r.batch, r.index))
    return out


__all__ = ["Barrier", "SplitResult"]
