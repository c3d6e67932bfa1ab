"""The merging state reporter: one fenced write carries every transition since the last.

The participant is the only writer of its ``STATE/<incarnation>`` node, so the reporter keeps
the whole map in memory and writes it whole. Transitions that arrive while a write is in
flight merge into the next one. Removals alone (entries the controller has folded in) are not
urgent: they wait briefly for a real transition to ride along, which halves the writes of a
busy participant.

A report may carry an :class:`Attachment`: writes that must land with it (a completed
attempt's result head). They go in the same multi, in front of the state node, so a reader
who sees the COMPLETED report finds them.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from kazoo.client import KazooClient

from helixpy.errors import Fenced
from helixpy.store.codec import encode
from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Op, SetData

log = logging.getLogger(__name__)

#: How long a removal-only change waits for company before it is written anyway.
PRUNE_DELAY = 0.5


class Attachment(Protocol):
    """Writes that go in the multi of a report (before the state node), until one lands."""

    #: a name for the attachment (unique among those pending)
    @property
    def path(self) -> str: ...

    @property
    def ops(self) -> list[Op]: ...

    def written(self) -> None:
        """The ops landed."""

    def recover(self, zk: KazooClient, failed: Op, error: BaseException) -> bool:
        """The multi failed on ``failed`` (one of :attr:`ops`) with ``error``: bring the
        ops up to date and return True to write again, or False to drop them."""


class StateReporter:
    def __init__(self, zk: KazooClient, path: str, writer: FencedWriter) -> None:
        self.zk = zk
        self.path = path
        self.writer = writer
        self._entries: dict[str, dict[str, Any]] = {}
        self._attached: dict[str, Attachment] = {}
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

    def report(self, key: str, entry: dict[str, Any], attach: Attachment | None = None) -> None:
        with self._cond:
            self._entries[key] = entry
            if attach is not None:
                self._attached[attach.path] = attach
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
                attached = list(self._attached.values())
                generation = self._generation
                self._dirty = self._urgent = False
            ops = [op for a in attached for op in a.ops]
            try:
                self.writer.commit([*ops, SetData(self.path, encode(body, path=self.path))])
                self.writes += 1
            except Fenced:
                log.warning("state reports fenced at %s: a newer incarnation exists", self.path)
                with self._cond:
                    self.fenced = True
                    self._cond.notify_all()
                return
            except MultiFailed as exc:
                owner = next((a for a in attached if exc.op in a.ops), None)
                if owner is None:
                    log.error("state report to %s failed: %s; retrying", self.path, exc)
                    with self._cond:
                        self._cond.wait(0.2)
                else:
                    try:
                        keep = owner.recover(self.zk, exc.op, exc.error)
                    except Exception:
                        log.exception("%s: cannot recover a failed write; retrying", owner.path)
                        keep = True
                    if not keep:
                        with self._cond:
                            self._attached.pop(owner.path, None)
                with self._cond:
                    self._dirty = self._urgent = True
                continue
            except Exception:
                log.exception("state report to %s failed; retrying", self.path)
                with self._cond:
                    self._dirty = self._urgent = True
                    self._cond.wait(0.2)
                continue
            with self._cond:
                for a in attached:
                    if self._attached.get(a.path) is a:
                        del self._attached[a.path]
                self._written = max(self._written, generation)
                self._cond.notify_all()
            for a in attached:
                a.written()
