"""A counter of running tasks per job, for sample tasks that record their concurrency."""

from __future__ import annotations

import threading
from collections import Counter


class Gauge:
    """Counts running tasks per (workflow, job) in this process; thread-safe, so thread
    tasks, an event loop and its ``to_thread`` workers may share one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: Counter[tuple[str, str]] = Counter()

    def enter(self, key: tuple[str, str]) -> int:
        """One more running for ``key``; how many run now."""
        with self._lock:
            self._running[key] += 1
            return self._running[key]

    def leave(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._running[key] -= 1
