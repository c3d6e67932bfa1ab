"""Per-task timeouts: one thread and a heap of deadlines, not a timer thread per attempt."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable


class Deadlines:
    """Calls ``fire(item)`` once ``item``'s deadline (monotonic seconds) has passed.

    ``fire`` runs on the deadline thread and must be quick (it only cancels attempts).
    Items need no removal: ``fire`` is expected to ignore ones that already finished.
    """

    def __init__(self, fire: Callable[[object], None], name: str = "deadlines") -> None:
        self._fire = fire
        self._heap: list[tuple[float, int, object]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def add(self, at: float, item: object) -> None:
        with self._cond:
            heapq.heappush(self._heap, (at, next(self._seq), item))
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if self._heap and self._heap[0][0] <= time.monotonic():
                        break
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, item = heapq.heappop(self._heap)
            self._fire(item)
