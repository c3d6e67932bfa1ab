"""Connecting to ZooKeeper: one place for the client's retry policy and timeouts."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from kazoo.client import KazooClient
from kazoo.protocol.paths import _prefix_root
from kazoo.retry import KazooRetry
from kazoo.security import make_acl, make_digest_acl

from helixpy.errors import ClusterUnavailable, InvalidConfig
from helixpy.store.handler import PollHandler


class CountingClient(KazooClient):  # type: ignore[misc] # kazoo ships no types
    """A :class:`KazooClient` that counts the requests it sends, by kind (``GetData``,
    ``Create``, ``Transaction`` ...): what a daemon's metrics call ZooKeeper operations.

    Counted where kazoo queues a request (its ``_call``), so retries count each time and
    the client's own pings do not.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._counts: Counter[str] = Counter()
        self._count_lock = threading.Lock()

    def _call(self, request: Any, async_object: Any) -> Any:
        with self._count_lock:
            self._counts[type(request).__name__] += 1
        return super()._call(request, async_object)

    def request_counts(self) -> Mapping[str, int]:
        with self._count_lock:
            return dict(self._counts)


def forget_data_watch(zk: KazooClient, path: str, watcher: Callable[[Any], None]) -> None:
    """Drop ``watcher`` from the client's watch table for ``path`` (an exists or data watch
    that is no longer wanted).

    kazoo keeps a watcher until its watch fires, and offers no way to remove one
    (ZooKeeper's removeWatches is not in its protocol): a watch armed on every started
    workflow's CONFIG would otherwise stay in this process until the workflow is purged,
    memory that follows history. The server's side of the watch stays until the node
    changes or the session ends; if it fires, the client finds no watcher and drops it.
    """
    table = zk._data_watchers  # kazoo's table: full path -> set of watchers
    full = _prefix_root(zk.chroot, path)
    watchers = table.get(full)
    if watchers is not None:
        watchers.discard(watcher)
        if not watchers:
            table.pop(full, None)


def request_counts(zk: KazooClient | None) -> Mapping[str, int]:
    """What ``zk`` has sent so far, by kind (empty for a client that does not count)."""
    return zk.request_counts() if isinstance(zk, CountingClient) else {}


def reconnect_policy() -> KazooRetry:
    """The bounded fast reconnect policy of the design: 0.1 s growing 1.5x to 1 s, forever."""
    return KazooRetry(max_tries=-1, delay=0.1, backoff=1.5, max_delay=1.0)


def zk_auth_settings(auth: str | None) -> tuple[list[tuple[str, str]], list[Any] | None]:
    """``(auth_data, default_acl)`` for ``--zk-auth digest:user:password``.

    Every znode the client then creates (with no explicit ACL, which is how helixpy creates
    all of them: see :mod:`helixpy.store.acl`) grants the cluster's identity every right
    and everyone else only READ: other clients can look, but not change or delete.
    """
    if auth is None:
        return [], None
    scheme, _, credentials = auth.partition(":")
    user, _, password = credentials.partition(":")
    if scheme != "digest" or not user or not password:
        raise InvalidConfig("zk_auth", "must be digest:<user>:<password>")
    acl = [make_digest_acl(user, password, all=True), make_acl("world", "anyone", read=True)]
    return [("digest", credentials)], acl


def connect(
    hosts: str,
    *,
    session_timeout: float = 10.0,
    connect_timeout: float = 15.0,
    read_only: bool = False,
    auth: str | None = None,
) -> KazooClient:
    """A started client; :class:`ClusterUnavailable` when ZooKeeper is not reached in time.

    ``auth`` (``digest:user:password``) authenticates the session and makes every znode it
    creates writable by that identity only.
    """
    auth_data, default_acl = zk_auth_settings(auth)
    zk = CountingClient(
        hosts=hosts,
        timeout=session_timeout,
        connection_retry=reconnect_policy(),
        command_retry=KazooRetry(max_tries=5, delay=0.05, backoff=2, max_delay=1.0),
        read_only=read_only,
        auth_data=auth_data or None,
        default_acl=default_acl,
        handler=PollHandler(),  # one poll(2) per socket wait, not an epoll set-up each
    )
    try:
        zk.start(timeout=connect_timeout)
    except Exception as exc:
        zk.close()
        raise ClusterUnavailable(f"cannot reach ZooKeeper at {hosts}: {exc}") from exc
    return zk


def ensure_paths(zk: KazooClient, *paths: str) -> None:
    """Create persistent bootstrap nodes (cluster skeleton) if missing; idempotent."""
    for path in paths:
        zk.ensure_path(path)
