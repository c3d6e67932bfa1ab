"""Coalesced events for the pipeline thread.

ZooKeeper watch callbacks and gRPC handlers only *mark* work here and wake the pipeline; they
never block and never touch ZooKeeper themselves (kazoo runs callbacks on its one event
thread, and a callback that blocks stalls every other watch of the session). The pipeline
drains everything pending in one go, so a burst of events costs one pass. A pass that fails
(a ZooKeeper connection loss mid-pass) puts back what it drained: a watch is re-armed only by
the read that failed, so forgetting a dirty instance would leave its reports unread forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

#: marker in ``Pending.workflows``: re-check every resident workflow's CONFIG
ALL_WORKFLOWS = "*"


@dataclass
class Command:
    """A driver mutation for the pipeline; ``future`` gets the reply (code, message, ...)."""

    kind: str
    request_id: str
    payload: Any
    future: Future[dict[str, str]] = field(default_factory=Future)


@dataclass
class Pending:
    """What one pass drained: dirty instances, flags, and commands to answer."""

    instances: set[str]
    membership: bool
    #: paths of workflow CONFIGs whose watch fired (deleted behind our back, or changed)
    workflows: set[str]
    #: re-read every live instance's reports (after a reconnect: belt and braces)
    all_instances: bool
    commands: list[Command]


class Signals:
    """Pending work, thread-safe; ``wait`` blocks the pipeline until some arrives."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._instances: set[str] = set()
        self._membership = True
        self._workflows: set[str] = set()
        self._all_instances = False
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

    def mark_workflow(self, event: Any) -> None:
        """A workflow CONFIG's watch fired (``event.path``): re-check that it still exists.

        A session event (the session expired: kazoo drops every watch and calls it with no
        path) marks ``ALL_WORKFLOWS``: every resident CONFIG is re-checked and re-armed."""
        path = getattr(event, "path", None)
        self.mark_workflow_path(path if path else ALL_WORKFLOWS)

    def mark_workflow_path(self, path: str) -> None:
        with self._lock:
            self._workflows.add(path)
        self._wake.set()

    def mark_all_instances(self) -> None:
        """Re-read every live instance's reports on the next pass (the session reconnected)."""
        with self._lock:
            self._all_instances = True
            self._membership = True
        self._wake.set()

    def submit(self, command: Command) -> None:
        with self._lock:
            self._commands.append(command)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def wait(self, timeout: float | None) -> None:
        self._wake.wait(timeout)

    def drain(self) -> Pending:
        """Take everything pending."""
        with self._lock:
            self._wake.clear()
            out = Pending(
                self._instances,
                self._membership,
                self._workflows,
                self._all_instances,
                self._commands,
            )
            self._instances, self._commands, self._workflows = set(), [], set()
            self._membership = self._all_instances = False
            return out

    def restore(self, pending: Pending) -> None:
        """Put back what a failed pass drained; its unanswered commands go first again."""
        with self._lock:
            self._instances |= pending.instances
            self._membership |= pending.membership
            self._workflows |= pending.workflows
            self._all_instances |= pending.all_instances
            unanswered = [c for c in pending.commands if not c.future.done()]
            self._commands = unanswered + self._commands
        self._wake.set()

    def reset(self) -> list[Command]:
        """Forget pending work (stepping down); returns commands left unanswered."""
        with self._lock:
            cmds = self._commands
            self._instances, self._membership, self._commands = set(), True, []
            self._workflows = set()
            self._all_instances = False
            self._callbacks.clear()
            return cmds
