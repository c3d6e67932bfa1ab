"""kazoo's threading handler with a cheaper ``select``: one ``poll(2)`` per wait.

kazoo's connection thread waits on its socket through ``handler.select`` before every read
and write. ``SequentialThreadingHandler.select`` builds a ``selectors.DefaultSelector`` per
call (on Linux an epoll instance: ``epoll_create``, an ``epoll_ctl`` per descriptor,
``epoll_wait``, ``close``) and tears it down again. Profiled under a burst of small
workflows, that was 30-40% of the CPU a participant and a driver spend holding the GIL.
A ``select.poll`` object is plain memory until ``poll()``, one system call, and it has no
descriptor-number limit either (the reason kazoo left ``select.select``).

The answer has ``select.select``'s shape, as kazoo expects: the objects ready for reading,
for writing, and an empty exceptional list. Like ``selectors``, an error or hang-up makes a
descriptor ready for whatever it was asked about, so the caller's read or write sees it.
"""

from __future__ import annotations

import select
from collections.abc import Sequence
from typing import Any

from kazoo.handlers.threading import SequentialThreadingHandler
from kazoo.handlers.utils import fileobj_to_fd

_READ = select.POLLIN | select.POLLPRI
_WRITE = select.POLLOUT


def poll_select(
    rlist: Sequence[Any],
    wlist: Sequence[Any],
    xlist: Sequence[Any],
    timeout: float | None = None,
) -> tuple[list[Any], list[Any], list[Any]]:
    """``select.select`` semantics on one ``poll(2)`` (``xlist`` is accepted and unused,
    as in kazoo's own implementation)."""
    if timeout is not None:
        if not isinstance(timeout, int | float):
            raise TypeError("timeout must be a number")
        if timeout < 0:
            raise ValueError("timeout must be non-negative")
    masks: dict[int, int] = {}
    readers: dict[int, list[Any]] = {}
    writers: dict[int, list[Any]] = {}
    for objs, mask, by_fd in ((rlist, _READ, readers), (wlist, _WRITE, writers)):
        for obj in objs:
            fd = fileobj_to_fd(obj)
            masks[fd] = masks.get(fd, 0) | mask
            by_fd.setdefault(fd, []).append(obj)
    poller = select.poll()
    for fd, mask in masks.items():
        poller.register(fd, mask)
    ready = poller.poll(None if timeout is None else timeout * 1000.0)
    readable: list[Any] = []
    writable: list[Any] = []
    for fd, events in ready:
        if events & select.POLLNVAL:
            raise ValueError(f"invalid file descriptor {fd}")
        # error / hang-up (or the asked-for event) wakes the side that asked, as selectors do
        if events & ~select.POLLOUT:
            readable += readers.get(fd, ())
        if events & ~(select.POLLIN | select.POLLPRI):
            writable += writers.get(fd, ())
    return readable, writable, []


class PollHandler(SequentialThreadingHandler):  # type: ignore[misc]
    """``SequentialThreadingHandler`` whose ``select`` is :func:`poll_select`."""

    name = "helixpy-poll"

    def select(self, *args: Any, **kwargs: Any) -> tuple[list[Any], list[Any], list[Any]]:
        return poll_select(*args, **kwargs)
