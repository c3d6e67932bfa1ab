"""Reads sent ahead for a burst of workflow starts: one round trip for all, not three each.

A start reads its request node (a retry gets the stored reply), then checks that the
workflow's CONFIG and directory do not exist; done one command at a time, 1,000 starts
drained in one pass cost 3,000 sequential round trips before their first write. The
pipeline sends those reads together when it is safe: every command of the batch is a start
of a distinct workflow under a distinct request id, so no command writes what another
reads, and nothing else writes them during the pass (the pipeline thread is the only
writer). Each answer is used once and the rest forgotten when the batch ends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.controller.signals import Command
from helixpy.model import JobQueue, Workflow
from helixpy.store.paths import Paths


class Prefetch:
    def __init__(self, zk: KazooClient, paths: Paths) -> None:
        self._zk = zk
        self._paths = paths
        self._gets: dict[str, Any] = {}
        self._exists: dict[str, Any] = {}

    def send(self, commands: list[Command], skip: Callable[[Command], bool] | None = None) -> bool:
        """Send the reads of ``commands`` if they are independent starts (True): also for one
        start alone, whose four reads then cost one round trip, not four."""
        self.clear()
        names = {c.payload.name for c in commands if _is_start(c)}
        ids = {c.request_id for c in commands}
        if not (commands and len(names) == len(ids) == len(commands)):
            return False
        if any("/" in n for n in names) or any(not i or "/" in i for i in ids):
            return False  # not a plain znode name: the one-at-a-time path reports it
        for c in commands:
            if skip is not None and skip(c):
                continue  # its caller writes it without reading first
            name = c.payload.name
            self._gets[self._paths.request(c.request_id)] = self._zk.get_async(
                self._paths.request(c.request_id)
            )
            for path in (
                self._paths.workflow_config(name),
                self._paths.workflow(name),
                self._paths.active_entry(name),
            ):
                self._exists[path] = self._zk.exists_async(path)
        return True

    def get(self, path: str) -> bytes | None:
        """The data at ``path`` (None: no node), from the read sent ahead if there was one."""
        ahead = self._gets.pop(path, None)
        try:
            data, _ = ahead.get() if ahead is not None else self._zk.get(path)
        except NoNodeError:
            return None
        return bytes(data)

    def exists(self, path: str) -> bool:
        ahead = self._exists.pop(path, None)
        stat = ahead.get() if ahead is not None else self._zk.exists(path)
        return stat is not None

    def clear(self) -> None:
        """Forget unused answers (a later pass must read afresh)."""
        self._gets.clear()
        self._exists.clear()


def _is_start(command: Command) -> bool:
    return command.kind == "start" and isinstance(command.payload, Workflow | JobQueue)
