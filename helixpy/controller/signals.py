"""Coalesced events for the pipeline thread.

ZooKeeper watch callbacks and gRPC handlers only *mark* work here and wake the pipeline; they
never block and never touch ZooKeeper themselves (kazoo runs callbacks on its one event
thread, and a callback that blocks stalls every other watch of the session). The pipeline
drains everything pending in one go, so a burst of events costs one pass.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Command:
    """A driver mutation for the pipeline; ``future`` gets the reply (code, message, ...)."""

    kind: str
    request_id: str
    payload: Any
    future: Future[dict[str, str]] = field(default_factory=Future)


class Signals:
    """Pending work, thread-safe; ``wait`` blocks the pipeline until some arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._instances: set[str] = set()
        self._membership = True
        self._workflows = True
        self._commands: list[Command] = []
        self._callbacks: dict[str, Callable[[Any], None]] = {}

    def instance_watcher(self, inst: str) -> Callable[[Any], None]:
        """One callback object per instance, so re-armed watches deduplicate in kazoo."""
        with self._lock:
            cb = self._callbacks.get(inst)
            if cb is None:

                def cb(_event: Any, inst: str = inst) -> None:
                    self.mark_instance(inst)

                self._callbacks[inst] = cb
            return cb

    def mark_instance(self, inst: str) -> None:
        with self._lock:
            self._instances.add(inst)
        self._wake.set()

    def mark_membership(self, _event: Any = None) -> None:
        with self._lock:
            self._membership = True
        self._wake.set()

    def mark_workflows(self, _event: Any = None) -> None:
        """The set of workflow directories changed (ours, or a force delete)."""
        with self._lock:
            self._workflows = True
        self._wake.set()

    def take_workflows(self) -> bool:
        with self._lock:
            flagged, self._workflows = self._workflows, False
            return flagged

    def submit(self, command: Command) -> None:
        with self._lock:
            self._commands.append(command)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def wait(self, timeout: float | None) -> None:
        self._wake.wait(timeout)

    def drain(self) -> tuple[set[str], bool, list[Command]]:
        """Take everything pending: (dirty instances, membership changed, commands)."""
        with self._lock:
            self._wake.clear()
            out = (self._instances, self._membership, self._commands)
            self._instances, self._membership, self._commands = set(), False, []
            return out

    def reset(self) -> list[Command]:
        """Forget pending work (stepping down); returns commands left unanswered."""
        with self._lock:
            cmds = self._commands
            self._instances, self._membership, self._commands = set(), True, []
            self._workflows = True
            self._callbacks.clear()
            return cmds
