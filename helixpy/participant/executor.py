"""The participant's executor: bounded queues that cannot deadlock (NebulaStream's design).

Two bounded queues feed one pool of worker threads:

- the **admission queue** takes work from *source* threads (:meth:`Executor.submit`): new
  assignments, splits, barrier requests. A source blocks while it is full, so backpressure
  reaches the source instead of memory;
- the **internal queue** takes work that *workers* emit (:meth:`Executor.emit`): follow-ups a
  task fans out, pending stops and barriers. A worker never blocks on it: when it is full the
  worker runs the emitted item itself, inline, from a small per-worker stack drained in a
  loop (depth-first, never by recursion, so Python's stack does not grow with the depth of
  emission). Beyond ``max_inline_depth`` levels (or items held inline) ``emit`` raises
  :class:`~helixpy.errors.TooMuchWork` to the emitting task.

Workers take internal work first and admission work only when the internal queue is empty:
finishing work already started frees memory before new work is admitted.

An item belongs to a job (for watermarks) and, optionally, to a :class:`WorkGroup` (one
task attempt: its root item and everything emitted from it). A group is done when all its
items have run, so an attempt completes only after its follow-ups ran. An item that raises
fails its group; the group's remaining items are skipped, as are those of a cancelled group.

A **barrier item** (a pending stop or barrier) carries the next sequence number of its job
and runs once every item of that job with a lower number has finished: a watermark. Items
submitted after it do not delay it, and while it waits it is parked, holding no worker.

Bounds are hard: the queues never exceed their capacities; parked barrier items count
against the internal capacity (one beyond it fails with ``TooMuchWork``).
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from helixpy.errors import HelixpyError, InvalidConfig, TooMuchWork
from helixpy.participant.work import ExecutorMetrics, Item, WorkGroup

__all__ = ["Executor", "ExecutorMetrics", "Item", "WorkGroup"]

log = logging.getLogger(__name__)

#: Upper bound of any single wait; notifications end waits sooner (a guard, not a poll).
_WAIT_SLICE = 0.5
#: How often a blocked ``submit`` looks at a caller's ``stop_event`` (it cannot notify us).
_STOP_EVENT_SLICE = 0.05


class _Worker(threading.local):
    """Per-thread state: whether this is a worker, what it runs, its inline stack."""

    def __init__(self) -> None:
        self.is_worker = False
        self.current: Item | None = None
        self.stack: list[Item] = []
        self.trampolining = False


class Executor:
    """A pool of ``workers`` threads fed by bounded admission and internal queues."""

    def __init__(
        self,
        workers: int,
        admission_capacity: int = 1000,
        internal_capacity: int = 10000,
        max_inline_depth: int = 64,
        *,
        name: str = "executor",
    ) -> None:
        for field_name, value in (
            ("workers", workers),
            ("admission_capacity", admission_capacity),
            ("internal_capacity", internal_capacity),
            ("max_inline_depth", max_inline_depth),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidConfig(f"executor.{field_name}", "must be an integer >= 1")
        self.workers = workers
        self.admission_capacity = admission_capacity
        self.internal_capacity = internal_capacity
        self.max_inline_depth = max_inline_depth
        self._name = name
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # something to run, or stopping
        self._space = threading.Condition(self._lock)  # admission has room, or stopping
        self._admission: deque[Item] = deque()
        self._internal: deque[Item] = deque()
        self._ready: deque[Item] = deque()  # barrier items whose watermark was reached
        self._parked: dict[str, list[tuple[int, int, Item]]] = {}  # job -> heap
        self._parked_count = 0
        self._next_seq: Counter[str] = Counter()
        self._outstanding: dict[str, Counter[int]] = {}  # job -> seq -> unfinished items
        # job -> its outstanding sequence numbers in increasing order (finished ones leave
        # lazily from the left): new numbers are always the job's largest, so a deque does
        # what a heap would, in O(1)
        self._seqs: dict[str, deque[int]] = {}
        self._local = _Worker()
        self._threads: list[threading.Thread] = []
        self._stopping = False
        # Waiters counted here so the hot path skips notify() when nobody waits.
        self._idle_workers = 0
        self._space_waiters = 0
        self._low_water = admission_capacity // 2
        self._tiebreak = 0
        # counters (under the lock)
        self._processed = self._failed = self._skipped = self._inline_runs = 0
        self._blocked = 0.0
        self._admission_hw = self._internal_hw = self._inline_hw = 0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker threads (daemons: a stuck task never blocks process exit)."""
        for i in range(self.workers):
            t = threading.Thread(target=self._worker_loop, name=f"{self._name}-{i}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float) -> bool:
        """Accept nothing more, run what was accepted, and let the workers exit.

        Returns whether every worker exited within ``timeout`` seconds (a task that does
        not return keeps its worker; the thread is a daemon and dies with the process).
        """
        with self._lock:
            self._stopping = True
            self._work.notify_all()
            self._space.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    # --- sources --------------------------------------------------------------------------

    def submit(
        self,
        item: Item,
        *,
        timeout: float | None = None,
        stop_event: threading.Event | None = None,
    ) -> bool:
        """Admit ``item``, blocking while the admission queue is full.

        Returns False, admitting nothing, when ``timeout`` passes, ``stop_event`` is set or
        the executor stops first. For source threads only: a worker must :meth:`emit`.
        """
        if self._local.is_worker:
            raise HelixpyError("a worker must emit(), not submit(): submit may block")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            blocked_since: float | None = None
            try:
                while len(self._admission) >= self.admission_capacity:
                    if self._stopping or (stop_event is not None and stop_event.is_set()):
                        return False
                    if blocked_since is None:
                        blocked_since = time.monotonic()
                    wait = _WAIT_SLICE if stop_event is None else _STOP_EVENT_SLICE
                    if deadline is not None:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            return False
                        wait = min(wait, left)
                    self._space_waiters += 1
                    try:
                        self._space.wait(wait)
                    finally:
                        self._space_waiters -= 1
                if self._stopping or (stop_event is not None and stop_event.is_set()):
                    return False
                self._accept(item, seq=self._new_seq(item.job))
                self._admission.append(item)
                self._admission_hw = max(self._admission_hw, len(self._admission))
                self._wake_worker()
                return True
            finally:
                if blocked_since is not None:
                    self._blocked += time.monotonic() - blocked_since

    # --- workers --------------------------------------------------------------------------

    def emit(self, item: Item) -> None:
        """Queue follow-up work from the item running on this worker; never blocks.

        The item joins the emitter's job, group and sequence number (it is part of the
        emitter's work for watermarks). When the internal queue is full it runs on this
        worker, inline, after the emitter returns to :meth:`emit`; past ``max_inline_depth``
        levels or items held inline, :class:`TooMuchWork` is raised here.
        """
        local = self._local
        parent = local.current
        if not local.is_worker or parent is None:
            raise HelixpyError("emit() is for work running on the executor; sources submit()")
        item.job = parent.job
        if item.group is None:
            item.group = parent.group
        with self._lock:
            if not item.barrier and len(self._internal) + self._parked_count < (
                self.internal_capacity
            ):
                self._accept(item, seq=parent.seq)
                self._internal.append(item)
                self._internal_hw = max(self._internal_hw, len(self._internal))
                self._wake_worker()
                return
            if item.barrier:
                # A barrier emitted by a worker is parked (or ready) at once: it takes the
                # job's next sequence number, after everything accepted so far.
                if self._parked_count + len(self._internal) >= self.internal_capacity:
                    raise TooMuchWork(
                        f"the internal queue and parked barriers are full "
                        f"({self.internal_capacity})"
                    )
                self._accept(item, seq=self._new_seq(item.job))
                self._park_or_ready(item)
                return
            depth = parent.depth + 1
            if depth > self.max_inline_depth or len(local.stack) >= self.max_inline_depth:
                raise TooMuchWork(
                    f"the internal queue is full ({self.internal_capacity}) and inline work "
                    f"on this worker reached max_inline_depth={self.max_inline_depth}"
                )
            self._accept(item, seq=parent.seq)
            item.depth = depth
            self._inline_runs += 1
            self._inline_hw = max(self._inline_hw, depth, len(local.stack) + 1)
        local.stack.append(item)
        if local.trampolining:
            return  # the emit() below us on this thread runs it
        local.trampolining = True
        try:
            while local.stack:
                self._run(local.stack.pop())  # last in, first out: depth-first
        finally:
            local.trampolining = False
            local.current = parent

    def metrics(self) -> ExecutorMetrics:
        with self._lock:
            return ExecutorMetrics(
                admission_depth=len(self._admission),
                internal_depth=len(self._internal),
                parked=self._parked_count,
                processed=self._processed,
                failed=self._failed,
                skipped=self._skipped,
                inline_runs=self._inline_runs,
                blocked_submit_seconds=self._blocked,
                admission_high_water=self._admission_hw,
                internal_high_water=self._internal_hw,
                inline_high_water=self._inline_hw,
            )

    # --- internals ------------------------------------------------------------------------

    def _wake_worker(self) -> None:
        if self._idle_workers:
            self._work.notify()

    def _new_seq(self, job: str) -> int:
        seq = self._next_seq[job]
        self._next_seq[job] = seq + 1
        return seq

    def _accept(self, item: Item, seq: int) -> None:
        """Count ``item`` as outstanding in its job and group (under the lock)."""
        item.seq = seq
        counts = self._outstanding.setdefault(item.job, Counter())
        if seq not in counts:
            self._seqs.setdefault(item.job, deque()).append(seq)
        counts[seq] += 1
        if item.group is not None:
            item.group._outstanding += 1

    def _low_watermark(self, job: str) -> int | None:
        """The lowest sequence number of the job with unfinished items (under the lock)."""
        seqs = self._seqs.get(job)
        counts: Counter[int] = self._outstanding.get(job, Counter())
        while seqs and seqs[0] not in counts:
            seqs.popleft()  # finished: removed lazily
        return seqs[0] if seqs else None

    def _park_or_ready(self, item: Item) -> None:
        low = self._low_watermark(item.job)
        if low is None or low >= item.seq:
            self._ready.append(item)
            self._wake_worker()
            return
        self._park(item)

    def _park(self, item: Item) -> None:
        self._tiebreak += 1
        heapq.heappush(self._parked.setdefault(item.job, []), (item.seq, self._tiebreak, item))
        self._parked_count += 1

    def _release_parked(self, job: str) -> None:
        """Move the job's barrier items whose watermark was reached to ready (locked)."""
        heap = self._parked.get(job)
        if not heap:
            return
        low = self._low_watermark(job)
        while heap and (low is None or low >= heap[0][0]):
            self._ready.append(heapq.heappop(heap)[2])
            self._parked_count -= 1
            self._wake_worker()
        if not heap:
            del self._parked[job]

    def _take(self, finished: Item | None = None, failed: bool = False) -> Item | WorkGroup | None:
        """The next item for a worker, or None when stopping with nothing left.

        ``finished`` (the worker's previous item, run by :meth:`_execute`) is accounted for
        in the same critical section, halving the lock traffic of the hot path; when it was
        the last of its group, the group is returned instead, for the worker to complete
        before it waits for more work.
        """
        with self._lock:
            if finished is not None and self._finish_locked(finished, failed=failed):
                assert finished.group is not None
                return finished.group
            while True:
                if self._ready:
                    return self._ready.popleft()
                if self._internal:
                    item = self._internal.popleft()
                elif self._admission:
                    item = self._admission.popleft()
                    if self._space_waiters and len(self._admission) <= self._low_water:
                        # Blocked sources wake together once the queue is half empty, not
                        # one per item: fewer context switches under sustained pressure.
                        self._space.notify_all()
                elif self._stopping and not self._parked_count and not self._busy_items():
                    self._work.notify_all()  # wake the others to exit too
                    return None
                else:
                    self._idle_workers += 1
                    try:
                        self._work.wait(_WAIT_SLICE)
                    finally:
                        self._idle_workers -= 1
                    continue
                if item.barrier:
                    # Parked until its watermark: barrier items never hold a worker.
                    low = self._low_watermark(item.job)
                    if low is not None and low < item.seq:
                        if self._parked_count + len(self._internal) < self.internal_capacity:
                            self._park(item)
                            continue
                        # No room to wait: it fails (in its group) like any item that raises.
                        item.fn = _raiser(
                            TooMuchWork(f"{self._parked_count} barrier items already wait")
                        )
                        item.barrier = False
                return item

    def _busy_items(self) -> bool:
        return bool(self._outstanding)

    def _worker_loop(self) -> None:
        self._local.is_worker = True
        finished: Item | None = None
        failed = False
        while True:
            got = self._take(finished, failed)
            finished = None
            if isinstance(got, WorkGroup):
                self._group_done(got)
                continue
            if got is None:
                return
            failed = self._execute(got)
            finished = got

    def _run(self, item: Item) -> None:
        """Run one item inline on this worker and account for it at once."""
        failed = self._execute(item)
        with self._lock:
            last = self._finish_locked(item, failed=failed)
        if last:
            assert item.group is not None
            self._group_done(item.group)

    def _execute(self, item: Item) -> bool:
        """Run ``item`` (or skip it: its group failed or was cancelled); whether it raised.
        Accounting is the caller's."""
        group = item.group
        if group is not None and (group.failed or group.cancelled.is_set()):
            with self._lock:
                group.skipped += 1
            item.skipped = True
            return False
        local = self._local
        previous = local.current
        local.current = item
        error: BaseException | None = None
        try:
            item.fn()
        except BaseException as exc:  # a task calling sys.exit() fails too; the worker lives
            error = exc
            if group is None:
                log.exception("%s: an item of job %s raised", self._name, item.job)
            elif group.error is None:
                group.error = exc
        finally:
            local.current = previous
        return error is not None

    def _finish_locked(self, item: Item, *, failed: bool = False) -> bool:
        """Account for a finished (or skipped) item; whether it was the last of its group."""
        counts = self._outstanding[item.job]
        counts[item.seq] -= 1
        if counts[item.seq] == 0:
            del counts[item.seq]
            seqs = self._seqs[item.job]
            if len(seqs) > 2 * len(counts) + 16:
                # Finished entries behind a long-running low one: compact, so memory
                # follows the outstanding items, not the history.
                self._seqs[item.job] = deque(sorted(counts))
        if item.skipped:
            self._skipped += 1
        else:
            self._processed += 1
            if failed:
                self._failed += 1
        self._release_parked(item.job)
        if not counts and item.job not in self._parked:
            # Forget idle jobs so memory does not grow with the number of jobs ever seen.
            # Numbering restarts: a watermark only compares items outstanding together.
            del self._outstanding[item.job]
            del self._seqs[item.job]
            self._next_seq.pop(item.job, None)
        if self._stopping:
            self._work.notify_all()
        group = item.group
        if group is None:
            return False
        group._outstanding -= 1
        return group._outstanding == 0

    def _group_done(self, group: WorkGroup) -> None:
        group.done.set()
        if group._on_done is not None:
            try:
                group._on_done(group.error)
            except Exception:
                log.exception("%s: a group's completion callback raised", self._name)


def _raiser(exc: BaseException) -> Callable[[], object]:
    def fail() -> object:
        raise exc

    return fail
