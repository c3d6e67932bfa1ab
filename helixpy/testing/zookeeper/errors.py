"""Exceptions raised by the ZooKeeper test harness."""

from __future__ import annotations


class ZooKeeperNotFound(RuntimeError):
    """No ZooKeeper jars could be found to build a Java classpath from."""


class ZooKeeperStartError(RuntimeError):
    """A ZooKeeper server process exited or did not start serving in time."""


class ZooKeeperNotServing(RuntimeError):
    """A server answered a four-letter word but is not serving clients (e.g. mid-election)."""
