"""The merging state reporter: one fenced write carries every transition since the last.

The participant is the only writer of its ``STATE/<incarnation>`` node, so the reporter keeps
the whole map in memory and writes it whole. Transitions that arrive while a write is in
flight merge into the next one. Removals alone (entries the controller has folded in) are not
urgent: they wait briefly for a real transition to ride along, which halves the writes of a
busy participant.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from kazoo.client import KazooClient

from helixpy.errors import Fenced
from helixpy.store.codec import encode
from helixpy.store.fencing import FencedWriter
from helixpy.store.ops import SetData

log = logging.getLogger(__name__)

#: How long a removal-only change waits for company before it is written anyway.
PRUNE_DELAY = 0.5


class StateReporter:
    def __init__(self, zk: KazooClient, path: str, writer: FencedWriter) -> None:
        self.zk = zk
        self.path = path
        self.writer = writer
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._urgent = False
        self._dirty = False
        self._closed = False
        self._written = 0  # generation written
        self._generation = 0
        self.fenced = False
        self.writes = 0
        self._thread = threading.Thread(target=self._loop, name=f"reporter {path}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, key: str, entry: dict[str, Any]) -> None:
        with self._cond:
            self._entries[key] = entry
            self._dirty = self._urgent = True
            self._generation += 1
            self._cond.notify_all()

    def remove(self, keys: list[str]) -> None:
        with self._cond:
            changed = False
            for key in keys:
                changed |= self._entries.pop(key, None) is not None
            if changed:
                self._dirty = True
                self._generation += 1
                self._cond.notify_all()

    def keys(self) -> set[str]:
        with self._lock:
            return set(self._entries)

    def flush(self, timeout: float) -> bool:
        """Wait until everything reported so far is written; False on timeout or fence."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._urgent = True
            self._cond.notify_all()
            target = self._generation
            while self._written < target and not self.fenced and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return self._written >= target

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and not self._dirty:
                    self._cond.wait(1.0)
                if self._closed:
                    return
                if not self._urgent:
                    self._cond.wait(PRUNE_DELAY)
                    if self._closed:
                        return
                body = dict(self._entries)
                generation = self._generation
                self._dirty = self._urgent = False
            try:
                self.writer.commit([SetData(self.path, encode(body, path=self.path))])
                self.writes += 1
            except Fenced:
                log.warning("state reports fenced at %s: a newer incarnation exists", self.path)
                with self._cond:
                    self.fenced = True
                    self._cond.notify_all()
                return
            except Exception:
                log.exception("state report to %s failed; retrying", self.path)
                with self._cond:
                    self._dirty = self._urgent = True
                    self._cond.wait(0.2)
                continue
            with self._cond:
                self._written = max(self._written, generation)
                self._cond.notify_all()
