"""Per-task timeouts: one thread and a heap of deadlines, not a timer thread per attempt."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Deadlines:
    """Calls ``fire(item)`` once ``item``'s deadline (monotonic seconds) has passed.

    ``add`` returns a token; ``discard(token)`` forgets a deadline that no longer matters (the
    attempt finished), so a busy participant does not hold an hour of finished attempts
    until their default 3600 s deadlines pass. Discarded entries are skipped when popped and
    the heap is compacted once they outnumber live ones. ``fire`` runs on the deadline
    thread and must be quick (it only cancels attempts).
    """

    def __init__(self, fire: Callable[[object], None], name: str = "deadlines") -> None:
        self._fire = fire
        self._heap: list[tuple[float, int]] = []
        self._live: dict[int, object] = {}
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, at: float, item: object) -> int:
        with self._cond:
            token = next(self._seq)
            self._live[token] = item
            heapq.heappush(self._heap, (at, token))
            self._cond.notify()
            return token

    def discard(self, token: int) -> None:
        with self._cond:
            self._live.pop(token, None)
            if len(self._heap) > 64 and len(self._heap) > 2 * len(self._live):
                self._heap = [(at, t) for at, t in self._heap if t in self._live]
                heapq.heapify(self._heap)

    def __len__(self) -> int:
        with self._cond:
            return len(self._live)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    while self._heap and self._heap[0][1] not in self._live:
                        heapq.heappop(self._heap)
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, token = heapq.heappop(self._heap)
                item = self._live.pop(token)
            self._fire(item)
