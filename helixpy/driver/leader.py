"""The driver's connection to the leader controller, and the watcher its waits share.

``LeaderClient`` finds the leader through its LEADER znode and follows it across leader
changes, resending a mutation with the same request id until it is answered. ``Watcher`` is
the one kazoo watcher every wait of a driver re-arms.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import grpc
from kazoo.client import KazooClient
from kazoo.exceptions import ConnectionLoss, NoNodeError, OperationTimeoutError, SessionExpiredError

from helixpy.errors import AccessDenied, ClusterUnavailable, HelixpyError
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.security import ClientTls, token_metadata
from helixpy.store.client import forget_data_watch
from helixpy.store.paths import Paths

#: Longest single RPC: above the controller's 30 s apply timeout, so that it answers first.
RPC_DEADLINE = 35.0
#: Longest wait without re-reading: a watch can be lost while the session reconnects.
SAFETY_WAKE = 1.0
_RETRYABLE_RPC = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
#: What a reconnecting kazoo client raises; it goes away once the client is back.
TRANSIENT_ZK = (ConnectionLoss, OperationTimeoutError, SessionExpiredError)
# gRPC's default reconnect backoff grows to two minutes; a controller restarted on the same
# endpoint must be reachable again well within the driver's timeout.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


# --- the pure pieces of a call to the leader (shared with helixpy.driver.aio) -------------


def parse_leader(path: str, data: bytes) -> tuple[str | None, str]:
    """(endpoint, "") named by the LEADER payload ``data`` read at ``path``, else (None, why)."""
    try:
        endpoint = json.loads(data)["endpoint"]
    except (ValueError, TypeError, KeyError):
        endpoint = None
    if not isinstance(endpoint, str) or not endpoint:
        return None, f"{path} names no endpoint"
    return endpoint, ""


def channel_settings(tls: ClientTls | None) -> tuple[grpc.ChannelCredentials | None, list[Any]]:
    """(credentials, options) of a channel to a controller: no credentials means plaintext."""
    if tls is None:
        return None, list(_CHANNEL_OPTIONS)
    return tls.credentials(), [*_CHANNEL_OPTIONS, *tls.options()]


def rpc_failure(
    cluster: str, method: str, endpoint: str, exc: grpc.RpcError
) -> tuple[str, HelixpyError | None, bool]:
    """What a failed RPC means: (problem, error to raise at once or None when the call is
    retried, whether the problem is worth naming as the cause of a final time-out)."""
    code, details = exc.code(), exc.details()
    problem = f"{method} at {endpoint}: {code.name}: {details}"
    if code in _REFUSED:
        return problem, AccessDenied(f"cluster {cluster}: {problem}"), False
    if code not in _RETRYABLE_RPC:
        return problem, HelixpyError(f"cluster {cluster}: {problem}"), False
    # The last try is often cut by the deadline while its channel is still connecting
    # (DEADLINE_EXCEEDED), which hides the reason an earlier try reported.
    return problem, None, code is not grpc.StatusCode.DEADLINE_EXCEEDED


def no_leader(cluster: str, timeout: float, problem: str, cause: str) -> ClusterUnavailable:
    """The error of a call that found no answering leader within ``timeout`` seconds."""
    if cause and cause != problem:
        problem = f"{problem}; before that {cause}"
    return ClusterUnavailable(
        f"cluster {cluster}: no leader controller answered within {timeout:g}s ({problem})"
    )


#: What a wait blocks on: ``(session events, path events)``, taken by
#: :meth:`Watcher.generation` before arming and reading.
Generation = tuple[int, tuple[int, ...]]


class Watcher:
    """One kazoo watcher for every node the driver waits on, plus the session state.

    kazoo keeps watchers in a set, so re-arming with this one bound method never piles up
    callbacks however often a waiter wakes. A waiter takes a :data:`Generation` for the
    paths it waits on before it reads, and blocks until an event on one of them (or a
    session event) moves it; a spurious wake-up only costs a re-read.

    Events are counted per path for the paths inside a :meth:`watching` block (or
    :meth:`keep`), so one poll is not woken, and does not re-read, for every other poll's
    event: with N polls in flight that was N reads per event. A generation of a path
    outside such a block moves with any event (correct, only less selective).
    """

    def __init__(self, zk: KazooClient) -> None:
        self._zk = zk
        self._cond = threading.Condition()
        self._session = 0  # session-state changes: every waiter re-reads
        self._any = 0  # every event
        self._events: Counter[str] = Counter()  # events per path in use
        #: how many waits use each path's watch (the last one to end drops it)
        self._users: Counter[str] = Counter()

    def fire(self, event: object = None) -> None:
        # Runs on kazoo's threads (watches and session listener): never block here.
        path = getattr(event, "path", None)
        with self._cond:
            self._any += 1
            if not isinstance(path, str):
                self._session += 1  # a session state (the listener), not a node's event
            elif path in self._users:
                self._events[path] += 1
            self._cond.notify_all()

    def generation(self, *paths: str) -> Generation:
        """The state a wait on ``paths`` starts from (no paths: any event ends it)."""
        with self._cond:
            return self._generation(paths)

    def _generation(self, paths: tuple[str, ...]) -> Generation:
        if paths and all(p in self._users for p in paths):
            return self._session, tuple(self._events[p] for p in paths)
        return self._session, (-1 - self._any,)  # negative: "any event", never a count

    def sessions(self) -> int:
        """How many session-state changes (the listener's events) this watcher has seen:
        a wait whose watches may have been lost in one reads everything again."""
        with self._cond:
            return self._session

    def arm(self, path: str) -> bool:
        """Watch ``path`` for creation, change or deletion; return whether it exists."""
        return self._zk.exists(path, watch=self.fire) is not None

    @contextlib.contextmanager
    def watching(self, *paths: str) -> Iterator[None]:
        """Around a wait that arms ``paths``: their events are counted apart, and when the
        last such wait ends, the client forgets the watch (a driver polling every workflow
        it starts would otherwise keep one per workflow until each is purged)."""
        with self._cond:
            self._users.update(paths)
        try:
            yield
        finally:
            with self._cond:
                for path in paths:
                    self._users[path] -= 1
                    if self._users[path] <= 0:
                        del self._users[path]
                        self._events.pop(path, None)
                        forget_data_watch(self._zk, path, self.fire)

    def keep(self, path: str) -> None:
        """Count ``path``'s events apart for this watcher's life (the LEADER node)."""
        with self._cond:
            self._users[path] += 1

    def wait(self, generation: Generation, timeout: float, *paths: str) -> None:
        """Block until an event moves ``generation`` (taken for the same ``paths``), or
        ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(lambda: self._generation(paths) != generation, max(timeout, 0.0))

    def wait_connected(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: bool(self._zk.connected), max(timeout, 0.0))


class LeaderClient:
    """Sends mutations to the leader controller, following it across leader changes."""

    def __init__(
        self,
        zk: KazooClient,
        paths: Paths,
        watcher: Watcher,
        timeout: float,
        *,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> None:
        self._tls = tls
        self._metadata = token_metadata(token)
        self._zk = zk
        self._paths = paths
        self._watcher = watcher
        watcher.keep(paths.leader)  # LEADER's own events, not every poll's, re-read it
        self._timeout = timeout
        self._lock = threading.Lock()
        self._stubs: dict[str, tuple[grpc.Channel, Any]] = {}  # by endpoint
        #: (LEADER's watcher generation, endpoint) of the last LEADER read: while neither
        #: LEADER's exists-watch nor a session event has fired since, it is still current,
        #: so a mutation costs no ZooKeeper round trip
        self._known: tuple[Generation, str] | None = None

    def call(self, method: str, request: Any) -> Any:
        """``method(request)`` on the leader, retried until it answers or the timeout passes.

        Retries resend the same request, so the same request id: the controller stores each
        applied mutation's reply under that id and answers a repeat with it.
        """
        deadline = time.monotonic() + self._timeout
        backoff = 0.05
        # Why an earlier try failed: the last try is often cut by the deadline while its
        # channel is still connecting (DEADLINE_EXCEEDED), which hides the reason (a failed
        # TLS handshake, a refused connection) that the earlier tries reported.
        cause = ""
        while True:
            generation = self._watcher.generation(self._paths.leader)
            known = self._known
            endpoint: str | None
            if known is not None and known[0] == generation:
                endpoint, problem = known[1], ""
            else:
                endpoint, problem = self._resolve(deadline)
                if endpoint is not None:
                    self._known = (generation, endpoint)
            if endpoint is not None:
                rpc = getattr(self._stub(endpoint), method)
                rpc_timeout = min(deadline - time.monotonic(), RPC_DEADLINE)
                try:
                    return rpc(request, timeout=max(rpc_timeout, 0.001), metadata=self._metadata)
                except grpc.RpcError as exc:
                    self._known = None  # read LEADER again before the retry
                    problem, error, is_cause = rpc_failure(
                        self._paths.cluster, method, endpoint, exc
                    )
                    if error is not None:
                        raise error from exc
                    if is_cause:
                        cause = problem
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise no_leader(self._paths.cluster, self._timeout, problem, cause)
            # Wake on a LEADER change, or after a short backoff: a deposed controller answers
            # UNAVAILABLE while LEADER may still name it until its session expires.
            self._watcher.wait(generation, min(remaining, backoff), self._paths.leader)
            backoff = min(backoff * 2, SAFETY_WAKE)

    def _resolve(self, deadline: float) -> tuple[str | None, str]:
        """(endpoint, "") of the leader, else (None, why); LEADER is watched either way."""
        if not self._watcher.wait_connected(deadline - time.monotonic()):
            return None, "ZooKeeper is not reachable"
        path = self._paths.leader
        try:
            # The exists-watch fires on creation too, so an election ends the wait at once.
            if not self._watcher.arm(path):
                return None, "no leader controller is elected"
            data, _ = self._zk.get(path)
        except NoNodeError:
            return None, "no leader controller is elected"
        except TRANSIENT_ZK as exc:
            return None, f"ZooKeeper: {exc!r}"
        return parse_leader(path, data)

    def _stub(self, endpoint: str) -> Any:
        with self._lock:
            if endpoint not in self._stubs:
                credentials, options = channel_settings(self._tls)
                if credentials is None:
                    channel = grpc.insecure_channel(endpoint, options=options)
                else:
                    channel = grpc.secure_channel(endpoint, credentials, options=options)
                self._stubs[endpoint] = (channel, pb_grpc.ControllerStub(channel))
            return self._stubs[endpoint][1]

    def close(self) -> None:
        with self._lock:
            for channel, _ in self._stubs.values():
                channel.close()
            self._stubs.clear()
