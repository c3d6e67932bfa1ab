"""The plumbing every AsyncTaskDriver method shares: its connection, mutations and reads.

Mutations go over ``grpc.aio`` to the leader controller (:mod:`.leader`); reads run the
store's plans (:mod:`helixpy.store.plan`) through kazoo's asynchronous API after a
``sync`` (:class:`.session.Session`); polls and watches wait on ZooKeeper watches
(:mod:`.watch`). The public methods are in :mod:`.driver` and the mixins beside it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.retry import KazooRetry

from helixpy.driver.aio.leader import AsyncLeaderClient
from helixpy.driver.aio.session import Session, zk_error
from helixpy.driver.aio.watch import Waits
from helixpy.driver.base import NoNode, check_driver_timeout, reply_error
from helixpy.driver.base import workflow_name as _wf
from helixpy.driver.leader import SAFETY_WAKE, TRANSIENT_ZK
from helixpy.errors import ClusterUnavailable, HelixpyError, NotFound
from helixpy.model import WorkflowConfig
from helixpy.security import ClientTls
from helixpy.store.client import CountingClient, reconnect_policy, zk_auth_settings
from helixpy.store.handler import PollHandler
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan
from helixpy.store.views import workflow_config_plan

_T = TypeVar("_T")
_P = ParamSpec("_P")
#: The ZooKeeper session timeout, as the sync driver's (``store.client.connect``'s default).
_SESSION_TIMEOUT = 10.0


class AsyncDriverBase:
    """The connection of an async driver to one cluster; see
    :class:`helixpy.driver.aio.AsyncTaskDriver`."""

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
        self._hosts = zk
        self._timeout = check_driver_timeout(timeout)
        self._zk_auth = zk_auth_settings(zk_auth)  # checked now: InvalidConfig
        self._tls = tls
        self._token = token
        self._session: Session | None = None
        self._leader: AsyncLeaderClient | None = None
        self._waits: Waits | None = None
        self._closed = False

    # --- connection -----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        zk: str,
        cluster: str,
        *,
        timeout: float = 10.0,
        zk_auth: str | None = None,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> Self:
        """A connected driver (call :meth:`close` when done)."""
        driver = cls(zk, cluster, timeout=timeout, zk_auth=zk_auth, tls=tls, token=token)
        return await driver.connect()

    async def connect(self) -> Self:
        """Open the ZooKeeper session; :class:`ClusterUnavailable` when ZooKeeper is not
        reached within the timeout. Idempotent; the gRPC channel opens at the first
        mutation."""
        if self._closed:
            raise HelixpyError("the AsyncTaskDriver is closed")
        if self._session is not None:
            return self
        cluster = self._paths.cluster
        auth_data, default_acl = self._zk_auth
        try:
            zk = CountingClient(
                hosts=self._hosts,
                timeout=_SESSION_TIMEOUT,
                connection_retry=reconnect_policy(),
                command_retry=KazooRetry(max_tries=5, delay=0.05, backoff=2, max_delay=1.0),
                auth_data=auth_data or None,
                default_acl=default_acl,
                handler=PollHandler(),
            )
        except (ValueError, TypeError, KazooException) as exc:
            raise ClusterUnavailable(f"cluster {cluster}: bad ZooKeeper address: {exc}") from exc
        session = Session(zk, asyncio.get_running_loop())
        zk.start_async()  # kazoo's connection thread connects; its listener tells the loop
        if not await session.wait_connected(time.monotonic() + self._timeout):
            session.close()
            zk.stop()
            zk.close()
            raise ClusterUnavailable(
                f"cluster {cluster}: cannot reach ZooKeeper at {self._hosts} within "
                f"{self._timeout:g}s"
            )
        self._session = session
        self._leader = AsyncLeaderClient(
            session, self._paths, self._timeout, tls=self._tls, token=self._token
        )
        self._waits = Waits(
            session,
            self._paths,
            self._timeout,
            check_open=self._check_open,
            get_workflow_config=self._workflow_config,
        )
        return self

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the gRPC channels and the ZooKeeper session; idempotent. Watches and
        polls still waiting raise :class:`HelixpyError` (the driver is closed)."""
        if self._closed:
            return
        if self._session is not None:
            await self._drain()  # the background starts first, while the channel is open
        self._closed = True
        if self._leader is not None:
            await self._leader.close()
        if self._session is not None:
            self._session.close()
            zk = self._session.zk
            zk.stop()  # sends the session's close and joins kazoo's threads (a few ms)
            zk.close()

    # --- plumbing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise HelixpyError("the AsyncTaskDriver is closed")
        if self._session is None:
            raise HelixpyError(
                "the AsyncTaskDriver is not connected (use `async with` or `await connect()`)"
            )

    def _session_of(self) -> Session:
        self._check_open()
        assert self._session is not None
        return self._session

    def _leader_client(self) -> AsyncLeaderClient:
        self._check_open()
        assert self._leader is not None
        return self._leader

    def _waits_of(self) -> Waits:
        self._check_open()
        assert self._waits is not None
        return self._waits

    async def _mutate(self, method: str, request: Any) -> None:
        error = reply_error(method, await self._leader_client().call(method, request))
        if error is not None:
            raise error

    async def _read(
        self,
        path: str,
        what: str,
        read: Callable[Concatenate[Session, Paths, _P], Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``read(session, paths, *args)`` after syncing ``path``, retried across
        reconnects within the timeout (as :meth:`DriverBase._read`)."""
        session = self._session_of()
        cluster = self._paths.cluster
        deadline = time.monotonic() + self._timeout
        backoff = 0.05
        while True:
            if not await session.wait_connected(deadline):
                self._check_open()
                raise self._unavailable("ZooKeeper is not reachable")
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    if path:
                        await session.sync(path)
                    return await read(session, self._paths, *args, **kwargs)
            except NotFound:
                if not what:
                    raise
                raise NotFound(f"{what} does not exist in cluster {cluster}") from None
            except TRANSIENT_ZK as exc:
                if time.monotonic() + backoff >= deadline:
                    raise self._unavailable(f"ZooKeeper failed ({exc!r})") from exc
            except TimeoutError:
                raise self._unavailable("ZooKeeper did not answer") from None
            except NoNodeError as exc:
                thing = what or path or "a znode it needs"
                raise NoNode(f"{thing} does not exist in cluster {cluster}") from exc
            except (NoAuthError, KazooException) as exc:
                raise zk_error(cluster, what or path, exc) from exc
            # kazoo fails the pending requests before it tells listeners the connection is
            # gone, so back off briefly instead of trusting wait_connected at once.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, SAFETY_WAKE)

    async def _run(
        self,
        path: str,
        what: str,
        plan: Callable[Concatenate[Paths, _P], Plan[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """The store's ``plan(paths, *args)`` run after syncing ``path`` (see :meth:`_read`)."""

        async def read(session: Session, paths: Paths) -> _T:
            return await session.run(plan(paths, *args, **kwargs))

        return await self._read(path, what, read)

    def _unavailable(self, why: str) -> ClusterUnavailable:
        return ClusterUnavailable(f"cluster {self._paths.cluster}: {why} within {self._timeout:g}s")

    async def _drain(self) -> None:
        """Finish the background work of the driver before it closes (see
        :mod:`.batch`)."""

    async def _workflow_config(self, name: str) -> WorkflowConfig:
        path, what = self._paths.workflow_config(_wf(name)), f"workflow {name}"
        return await self._run(path, what, workflow_config_plan, name)
