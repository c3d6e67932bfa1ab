"""What the executor runs: items, the groups they belong to, and its metrics snapshot."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


class WorkGroup:
    """The work of one attempt: done when every item in it has run (or was skipped).

    ``on_done(error)`` runs once, on the worker thread that finished the last item, with the
    first exception an item raised (None when none did).
    """

    def __init__(self, on_done: Callable[[BaseException | None], None] | None = None) -> None:
        self._on_done = on_done
        self._outstanding = 0
        #: items skipped because the group failed or was cancelled first
        self.skipped = 0
        self.error: BaseException | None = None
        self.cancelled = threading.Event()
        self.done = threading.Event()

    def cancel(self) -> None:
        """Skip the group's items that have not started (running ones finish normally)."""
        self.cancelled.set()

    @property
    def failed(self) -> bool:
        return self.error is not None


class Item:
    """A callable and the job it belongs to; optionally a group, or a barrier."""

    __slots__ = ("barrier", "depth", "fn", "group", "job", "seq", "skipped")

    def __init__(
        self,
        fn: Callable[[], object],
        job: str,
        *,
        group: WorkGroup | None = None,
        barrier: bool = False,
    ) -> None:
        self.fn = fn
        self.job = job
        self.group = group
        self.barrier = barrier
        self.seq = -1  # set when accepted
        self.depth = 0  # inline nesting level (0: taken from a queue)
        self.skipped = False  # not run: its group had failed or was cancelled


@dataclass(frozen=True)
class ExecutorMetrics:
    """A snapshot of the executor's queues and counters."""

    admission_depth: int
    internal_depth: int
    parked: int
    processed: int
    failed: int
    skipped: int
    inline_runs: int
    blocked_submit_seconds: float
    #: the largest sizes ever seen (they never exceed the capacities)
    admission_high_water: int
    internal_high_water: int
    inline_high_water: int
