"""Group commit: a burst's starts written many to a fenced multi, not one multi each.

Each start's ops stay together in one multi (its CONFIG and stored reply with the rest),
so a start is all or nothing, and multis go in the burst's order. A member is answered only
once its multi landed: every accepted start is durable before its reply. If a group's multi
fails on an op of one member (not on the fence), nothing of it was applied (a multi is
atomic), so each member is then written on its own and only the bad one fails.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from helixpy.store.codec import MAX_MULTI
from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Op, op_size


class _Sent:
    """One group's multi in flight, shared by its members."""

    def __init__(self, writer: FencedWriter, members: list[list[Op]]) -> None:
        self._writer = writer
        self._members = members
        ops = [op for member in members for op in member]
        self._wait = writer.commit_async(ops)
        self._outcome: BaseException | bool | None = None  # None: not waited yet
        self._fallback = self._wait is None  # more than one multi after all: one by one

    def wait_member(self, index: int) -> None:
        if self._outcome is None and not self._fallback:
            assert self._wait is not None
            try:
                self._wait()
                self._outcome = True
            except MultiFailed as exc:
                self._fallback = len(self._members) > 1
                if not self._fallback:
                    self._outcome = exc
            except BaseException as exc:  # fenced, connection lost: every member hears it
                self._outcome = exc
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        if self._fallback:
            self._writer.commit(self._members[index])


class _Handle:
    """A group not sent yet, then sent: its members' waits are bound to it before the send."""

    def __init__(self) -> None:
        self.sent: _Sent | None = None

    def wait_member(self, index: int) -> None:
        if self.sent is None:
            raise RuntimeError("group commit: a start was waited on before its group was sent")
        self.sent.wait_member(index)


class GroupCommit:
    """Collects the ops of a burst's starts; ``add`` returns each one's wait."""

    def __init__(self, writer: FencedWriter, limit: int = MAX_MULTI) -> None:
        self._writer = writer
        self._limit = limit
        self._base = sum(op_size(c) for c in writer.checks)
        self._members: list[list[Op]] = []
        self._size = self._base
        self._handle = _Handle()

    def add(self, ops: Sequence[Op]) -> Callable[[], None] | None:
        """Queue one start's ops; None if they alone exceed a multi (commit them yourself,
        after :meth:`flush`, so the burst's order holds)."""
        size = sum(op_size(op) for op in ops)
        if self._base + size > self._limit:
            return None
        if self._size + size > self._limit:
            self.flush()
        self._members.append(list(ops))
        self._size += size
        index, handle = len(self._members) - 1, self._handle
        return lambda: handle.wait_member(index)

    def flush(self) -> None:
        """Send what is collected as one multi (its members wait on it)."""
        if self._members:
            self._handle.sent = _Sent(self._writer, self._members)
            self._members, self._size, self._handle = [], self._base, _Handle()
