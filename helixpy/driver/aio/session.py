"""kazoo's asynchronous API as asyncio awaitables, and its watches as asyncio events.

kazoo runs on threads of its own (one connection thread and two callback workers per
client, however many requests are in flight). Nothing here adds one: a request goes out
through kazoo's ``*_async`` call, and its ``IAsyncResult`` settles an asyncio future through
``loop.call_soon_threadsafe`` from kazoo's completion thread; a watch (or a session-state
change) sets an asyncio event the same way. kazoo's threads never touch the loop's objects
and never block on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoAuthError, NoNodeError

from helixpy.driver.base import NoNode
from helixpy.errors import AccessDenied, HelixpyError, StoreError
from helixpy.store.client import forget_data_watch
from helixpy.store.plan import Plan, Watch, advance, send

_T = TypeVar("_T")


def _settle(future: asyncio.Future[Any], result: Any) -> None:
    """On the loop: copy a ready kazoo result into ``future`` (unless it was given up)."""
    if future.done():
        return
    exc = result.exception
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result.value)


class Session:
    """One kazoo client seen from one event loop: awaitable requests, session events.

    Every :class:`Waker` registered here is set on each session-state change (SUSPENDED,
    CONNECTED, LOST), so a wait whose watches may have been lost in a reconnect reads again.
    """

    def __init__(self, zk: KazooClient, loop: asyncio.AbstractEventLoop) -> None:
        self.zk = zk
        self._loop = loop
        self._wakers: set[Waker] = set()
        self._state_changed = asyncio.Event()  # replaced at each change: waiters keep theirs
        self.closed = False
        zk.add_listener(self._listener)

    # --- crossing from kazoo's threads to the loop ------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop; callable from any thread, never blocks."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self._loop.call_soon_threadsafe(callback, *args)

    def _listener(self, _state: object) -> None:
        # kazoo's connection thread (or whoever calls zk.stop): only hand over to the loop.
        self.call_soon(self._on_state)

    def _on_state(self) -> None:
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()
        for waker in list(self._wakers):
            waker.event.set()

    def register(self, waker: Waker) -> None:
        self._wakers.add(waker)

    def unregister(self, waker: Waker) -> None:
        self._wakers.discard(waker)

    @property
    def waiters(self) -> int:
        """How many wakers are registered (the driver's live polls, watches and leader)."""
        return len(self._wakers)

    def close(self) -> None:
        """Stop listening and wake every waiter (each then finds the driver closed)."""
        self.closed = True
        self.zk.remove_listener(self._listener)
        self._on_state()

    async def wait_connected(self, deadline: float) -> bool:
        """Whether the client is connected, waiting for it until ``deadline`` (monotonic)."""
        while not self.zk.connected:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return False
            changed = self._state_changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), left)
        return True

    # --- requests ---------------------------------------------------------------------------

    def _await(self, result: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = self._loop.create_future()
        # kazoo calls this on its completion thread once the reply is in (or at once, on
        # the caller's thread, when the result is ready already or the client stopped).
        result.rawlink(lambda ready: self.call_soon(_settle, future, ready))
        return future

    async def get(self, path: str, watch: Waker | None = None) -> bytes:
        """The data at ``path`` (kazoo's NoNodeError when absent); ``watch`` is armed as a
        data watch when the node exists."""
        data, _stat = await self._await(self.zk.get_async(path, watch=watch))
        return bytes(data or b"")

    async def exists(self, path: str, watch: Waker | None = None) -> bool:
        """Whether ``path`` exists; ``watch`` fires on its creation, change or deletion."""
        return await self._await(self.zk.exists_async(path, watch=watch)) is not None

    async def children(self, path: str) -> list[str]:
        return list(await self._await(self.zk.get_children_async(path)))

    async def delete(self, path: str) -> None:
        await self._await(self.zk.delete_async(path))

    async def run(self, plan: Plan[_T], watch: Watch | None = None) -> _T:
        """Run ``plan`` (see :mod:`helixpy.store.plan`): each batch of its requests is sent
        at once and awaited together; ``watch`` is what its watched requests arm."""
        try:
            batch = next(plan)
            while True:
                sent = [self._await(send(self.zk, r, watch)) for r in batch]
                values = await asyncio.gather(*sent, return_exceptions=True)
                batch = advance(plan, batch, values)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        finally:
            plan.close()

    async def sync(self, path: str) -> None:
        """Bring our ZooKeeper server up to date with the ensemble's leader for ``path``, so
        what the controller committed before answering us is visible to later reads."""
        with contextlib.suppress(NoNodeError):
            await self._await(self.zk.sync_async(path))


class Waker:
    """What kazoo calls when a watch fires: it sets :attr:`event` on the loop, nothing more.

    It holds no reference to whoever waits on it, so a watch left armed in kazoo's table
    never keeps a dropped iterator alive.
    """

    __slots__ = ("_session", "event")

    def __init__(self, session: Session) -> None:
        self._session = session
        self.event = asyncio.Event()

    def __call__(self, _event: object = None) -> None:
        self._session.call_soon(self.event.set)


class NodeWatch:
    """The watches of one asyncio wait on a few znodes, re-armed by each read.

    A wait calls :meth:`begin` before it reads, reads with :meth:`read` / :meth:`exists`
    (which arm the watch in the same request), then :meth:`wait`: a change landing after
    ``begin`` ends the wait at once, so none is lost. :meth:`close` removes the wait's
    interest from kazoo's watch table and from the session.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._waker = Waker(session)
        self._paths: set[str] = set()
        session.register(self._waker)

    def __enter__(self) -> NodeWatch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def begin(self) -> None:
        """Forget the events seen so far: call before the reads of one round."""
        self._waker.event.clear()

    async def read(self, path: str) -> bytes | None:
        """``path``'s data with a data watch armed; None (with an exists-watch, which fires
        on creation) while the node does not exist."""
        self._paths.add(path)
        while True:
            try:
                return await self._session.get(path, watch=self._waker)
            except NoNodeError:
                if not await self._session.exists(path, watch=self._waker):
                    return None
                # created between the two requests: read it now

    async def run(self, plan: Plan[_T], *paths: str) -> _T:
        """Run ``plan`` with this wait's watch as its watch; ``paths`` are those its
        watched requests arm (forgotten at :meth:`close`)."""
        self._paths.update(paths)
        return await self._session.run(plan, self._waker)

    async def exists(self, path: str) -> bool:
        """Whether ``path`` exists, with an exists-watch armed on it."""
        self._paths.add(path)
        return await self._session.exists(path, watch=self._waker)

    async def wait(self, timeout: float) -> None:
        """Until a watch of this wait fires, a session event arrives, or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._waker.event.wait(), max(timeout, 0.0))

    def close(self) -> None:
        self._session.unregister(self._waker)
        for path in self._paths:
            forget_data_watch(self._session.zk, path, self._waker)
        self._paths.clear()


def zk_error(cluster: str, what: str, exc: KazooException) -> HelixpyError:
    """The helixpy error a kazoo failure on ``what`` stands for (as the sync driver's)."""
    if isinstance(exc, NoAuthError):
        return AccessDenied(
            f"cluster {cluster}: ZooKeeper refused the write (connect with the cluster's "
            "identity: --zk-auth / AsyncTaskDriver(zk_auth=...))"
        )
    if isinstance(exc, NoNodeError):
        return NoNode(f"{what or 'a znode it needs'} does not exist in cluster {cluster}")
    return StoreError(
        f"cluster {cluster}: ZooKeeper failed on {what or 'a request'}: "
        f"{type(exc).__name__}{f' ({exc})' if str(exc) else ''}"
    )
