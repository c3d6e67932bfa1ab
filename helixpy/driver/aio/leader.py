"""The async driver's connection to the leader controller, over ``grpc.aio``.

The same protocol as :class:`helixpy.driver.leader.LeaderClient`, with its pure pieces
imported from there: LEADER is read with an exists-watch armed, its endpoint reused while
neither that watch nor a session event has fired, and a mutation is resent **with the same
request** (so the same request id) on ``UNAVAILABLE`` / ``DEADLINE_EXCEEDED`` until the
driver's timeout, waking on a LEADER change or a backoff of 0.05 s doubling to 1 s. The
controller stores each applied mutation's reply under its request id and answers a repeat
with it, so a retry after a leader change applies the mutation once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import grpc
import grpc.aio
from kazoo.exceptions import KazooException, NoNodeError

from helixpy.driver.aio.session import Session, Waker
from helixpy.driver.leader import (
    RPC_DEADLINE,
    SAFETY_WAKE,
    channel_settings,
    no_leader,
    parse_leader,
    rpc_failure,
)
from helixpy.errors import HelixpyError
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.security import ClientTls, token_metadata
from helixpy.store.paths import Paths


class AsyncLeaderClient:
    """Sends mutations to the leader controller over ``grpc.aio``, following leader changes.

    One ``grpc.aio`` channel per controller endpoint seen (in practice: the leader's); every
    call is a coroutine on the driver's loop, however many are in flight.
    """

    def __init__(
        self,
        session: Session,
        paths: Paths,
        timeout: float,
        *,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> None:
        self._session = session
        self._paths = paths
        self._timeout = timeout
        self._tls = tls
        self._metadata = token_metadata(token)
        # LEADER's exists-watch (and every session event, through the session) sets it:
        # while it is clear, the endpoint last read is still the leader's.
        self._changed = Waker(session)
        session.register(self._changed)
        self._known: str | None = None
        self._resolving = asyncio.Lock()  # one LEADER read at a time; the others share it
        self._channels: dict[str, tuple[grpc.aio.Channel, Any]] = {}
        self._closed = False

    async def call(self, method: str, request: Any) -> Any:
        """``method(request)`` on the leader, retried (same request) until it answers or the
        driver's timeout passes; errors as :meth:`LeaderClient.call` raises them."""
        deadline = time.monotonic() + self._timeout
        backoff = 0.05
        cause = ""  # why an earlier try failed (the last is often cut by the deadline)
        while True:
            endpoint, problem = await self._endpoint(deadline)
            if endpoint is not None:
                rpc = getattr(self._stub(endpoint), method)
                rpc_timeout = max(min(deadline - time.monotonic(), RPC_DEADLINE), 0.001)
                try:
                    return await rpc(request, timeout=rpc_timeout, metadata=self._metadata)
                except grpc.RpcError as exc:
                    if self._known == endpoint:
                        self._known = None  # read LEADER again before the retry
                    problem, error, is_cause = rpc_failure(
                        self._paths.cluster, method, endpoint, exc
                    )
                    if error is not None:
                        raise error from exc
                    if is_cause:
                        cause = problem
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if self._closed and task is not None and not task.cancelling():
                        # the channel was closed under the call, not the caller cancelled
                        raise HelixpyError(
                            f"cluster {self._paths.cluster}: the AsyncTaskDriver was closed "
                            f"during {method}"
                        ) from None
                    raise
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise no_leader(self._paths.cluster, self._timeout, problem, cause)
            # Wake on a LEADER change, or after a short backoff: a deposed controller answers
            # UNAVAILABLE while LEADER may still name it until its session expires.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.event.wait(), min(remaining, backoff))
            backoff = min(backoff * 2, SAFETY_WAKE)

    async def _endpoint(self, deadline: float) -> tuple[str | None, str]:
        """(the leader's endpoint, "") else (None, why); LEADER is read only when it (or the
        session) changed since the last read, and by one caller for all at a time."""
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                await self._resolving.acquire()
        except TimeoutError:
            return None, "the LEADER node was not read in time"
        try:
            if self._known is not None and not self._changed.event.is_set():
                return self._known, ""
            self._changed.event.clear()  # before arming: a change from now on sets it
            self._known = None
            endpoint, problem = await self._resolve(deadline)
            self._known = endpoint
            return endpoint, problem
        finally:
            self._resolving.release()

    async def _resolve(self, deadline: float) -> tuple[str | None, str]:
        if not await self._session.wait_connected(deadline):
            return None, "ZooKeeper is not reachable"
        path = self._paths.leader
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                # The exists-watch fires on creation too, so an election ends the wait.
                if not await self._session.exists(path, watch=self._changed):
                    return None, "no leader controller is elected"
                data = await self._session.get(path)
        except NoNodeError:
            return None, "no leader controller is elected"
        except KazooException as exc:  # reconnecting (TRANSIENT_ZK) or worse: retried
            return None, f"ZooKeeper: {exc!r}"
        except TimeoutError:
            return None, "ZooKeeper did not answer the read of the LEADER node in time"
        return parse_leader(path, data)

    def _stub(self, endpoint: str) -> Any:
        if endpoint not in self._channels:
            credentials, options = channel_settings(self._tls)
            if credentials is None:
                channel = grpc.aio.insecure_channel(endpoint, options=options)
            else:
                channel = grpc.aio.secure_channel(endpoint, credentials, options=options)
            self._channels[endpoint] = (channel, pb_grpc.ControllerStub(channel))
        return self._channels[endpoint][1]

    async def close(self) -> None:
        """Close every channel (calls in flight end); idempotent."""
        self._closed = True
        self._session.unregister(self._changed)
        channels, self._channels = list(self._channels.values()), {}
        for channel, _ in channels:
            await channel.close(None)
