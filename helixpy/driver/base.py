"""The plumbing every TaskDriver method shares: its connection, mutations and reads.

Mutations go over gRPC to the leader controller, found through its LEADER znode; all the
retries of one mutation carry the same request id, so a retry after a leader change applies
it once. Reads go straight to ZooKeeper after a ``sync``, so a client reads its own writes.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoAuthError, NoNodeError

from helixpy.driver.leader import SAFETY_WAKE as _SAFETY_WAKE
from helixpy.driver.leader import TRANSIENT_ZK as _TRANSIENT_ZK
from helixpy.driver.leader import LeaderClient, Watcher
from helixpy.driver.polling import is_seconds
from helixpy.errors import (
    AccessDenied,
    AlreadyExists,
    ClusterUnavailable,
    HelixpyError,
    InvalidConfig,
    NotFound,
    StoreError,
)
from helixpy.model.names import check_name
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.security import ClientTls
from helixpy.store.client import connect
from helixpy.store.paths import Paths

_T = TypeVar("_T")
_P = ParamSpec("_P")


class NoNode(NotFound):
    """A znode a driver read needed is missing (kazoo's NoNodeError, named): callers that
    can say better what is missing (the streaming methods) catch it."""


def reply_error(method: str, reply: Any) -> HelixpyError | None:
    """The error a controller's reply stands for (None: OK)."""
    if reply.code == pb.OK:
        return None
    if reply.code == pb.INVALID_CONFIG:
        return InvalidConfig(reply.field or "request", reply.rule or reply.message)
    if reply.code == pb.NOT_FOUND:
        return NotFound(reply.message)
    if reply.code == pb.ALREADY_EXISTS:
        return AlreadyExists(reply.message)
    return HelixpyError(f"{method} failed (reply code {reply.code}): {reply.message}")


class DriverBase:
    """The connection of a driver to one cluster; see :class:`helixpy.driver.TaskDriver`."""

    def __init__(
        self,
        zk: str,
        cluster: str,
        *,
        timeout: float = 10.0,
        zk_auth: str | None = None,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> None:
        self._paths = Paths(cluster)
        self._timeout = check_driver_timeout(timeout)
        self._closed = threading.Event()
        try:
            self._zk = connect(zk, connect_timeout=self._timeout, auth=zk_auth)
        except ClusterUnavailable as exc:
            raise ClusterUnavailable(f"cluster {cluster}: {exc}") from exc
        self._watcher = Watcher(self._zk)
        self._zk.add_listener(self._watcher.fire)
        self._leader = LeaderClient(
            self._zk, self._paths, self._watcher, self._timeout, tls=tls, token=token
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the gRPC channels and the ZooKeeper session; idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._leader.close()
        self._zk.remove_listener(self._watcher.fire)
        self._zk.stop()
        self._zk.close()

    def _mutate(self, method: str, request: Any) -> None:
        error = reply_error(method, self._leader.call(method, request))
        if error is not None:
            raise error

    def _read(
        self,
        path: str,
        what: str,
        read: Callable[Concatenate[KazooClient, Paths, _P], _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``read(zk, paths, *args)`` after syncing ``path``, retried across reconnects.

        ``what`` names the thing for a :class:`NotFound` ("" lets the store's error pass).
        """
        self._check_open()
        deadline = time.monotonic() + self._timeout
        backoff = 0.05
        while True:
            if not self._watcher.wait_connected(deadline - time.monotonic()):
                raise self._unavailable("ZooKeeper is not reachable")
            try:
                if path:
                    self._sync(path)
                return read(self._zk, self._paths, *args, **kwargs)
            except NotFound:
                if not what:
                    raise
                raise NotFound(f"{what} does not exist in cluster {self._paths.cluster}") from None
            except NoAuthError as exc:
                raise AccessDenied(
                    f"cluster {self._paths.cluster}: ZooKeeper refused the write (connect "
                    "with the cluster's identity: --zk-auth / TaskDriver(zk_auth=...))"
                ) from exc
            except _TRANSIENT_ZK as exc:
                if time.monotonic() + backoff >= deadline:
                    raise self._unavailable(f"ZooKeeper failed ({exc!r})") from exc
            except NoNodeError as exc:
                thing = what or path or "a znode it needs"
                raise NoNode(f"{thing} does not exist in cluster {self._paths.cluster}") from exc
            except KazooException as exc:
                raise StoreError(
                    f"cluster {self._paths.cluster}: ZooKeeper failed on "
                    f"{what or path or 'a request'}: {type(exc).__name__}"
                    f"{f' ({exc})' if str(exc) else ''}"
                ) from exc
            # kazoo fails the pending requests before it tells listeners the connection is
            # gone, so back off briefly instead of trusting wait_connected at once.
            self._closed.wait(backoff)
            backoff = min(backoff * 2, _SAFETY_WAKE)

    def _sync(self, path: str) -> None:
        # sync brings our ZooKeeper server up to date with the ZooKeeper leader, so what the
        # controller committed before answering us is visible to the reads that follow.
        with contextlib.suppress(NoNodeError):
            self._zk.sync(path)

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise HelixpyError("the TaskDriver is closed")

    def _unavailable(self, why: str) -> ClusterUnavailable:
        return ClusterUnavailable(f"cluster {self._paths.cluster}: {why} within {self._timeout:g}s")


def check_driver_timeout(timeout: object) -> float:
    """A driver's ``timeout`` (connect, each mutation, each read): finite seconds > 0."""
    if not is_seconds(timeout) or not 0 < timeout < math.inf:
        raise InvalidConfig("timeout", f"must be a finite number of seconds > 0: {timeout!r}")
    return float(timeout)


def check_bool(field: str, value: object) -> bool:
    """``value`` if it is a bool, else :class:`InvalidConfig` naming ``field``."""
    if not isinstance(value, bool):
        raise InvalidConfig(field, f"must be True or False (got {value!r})")
    return value


def check_type(field: str, value: object, kind: type[_T]) -> _T:
    """``value`` if it is a ``kind``, else :class:`InvalidConfig` naming ``field``."""
    if not isinstance(value, kind):
        raise InvalidConfig(field, f"must be a {kind.__name__} (got {type(value).__name__})")
    return value


def workflow_name(name: str) -> str:
    """``name`` checked as a workflow's name."""
    return check_name("workflow.name", name)


def job_name(name: str) -> str:
    """``name`` checked as a job's (short) name."""
    return check_name("job.name", name)


def request_id() -> str:
    """A new request id: every retry of one mutation carries the same one."""
    return uuid.uuid4().hex


def task_name(task_id: str | int) -> str:
    """A task id, checked; a job of ``num_tasks`` copies names its tasks by partition, so
    the number is accepted too."""
    return str(task_id) if isinstance(task_id, int) else check_name("task.id", task_id)


def check_content(content: object) -> dict[str, str]:
    """A user content map: string keys to string values (as tasks write them)."""
    if not isinstance(content, Mapping):
        raise InvalidConfig(
            "content", f"must be a mapping of str to str (got {type(content).__name__})"
        )
    for key, value in content.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidConfig(f"content.{key}", "keys and values must be strings")
    return dict(content)
