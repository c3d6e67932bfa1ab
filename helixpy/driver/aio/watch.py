"""Waiting on ZooKeeper watches from asyncio: state polls and the workflow watch.

Every wait forgets its events (``NodeWatch.begin``), then reads with the watch armed in
the same request, then waits for the watch: a change landing after the read wakes it, so
none is lost. It also wakes at every session event (a reconnect may lose watches) and at
least every ``SAFETY_WAKE`` seconds, and then reads again. Waiting costs no thread: a
wait is an ``asyncio.Event`` that kazoo's watch sets through ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Self

from kazoo.exceptions import KazooException

from helixpy.driver.aio.session import NodeWatch, Session, Waker, zk_error
from helixpy.driver.leader import SAFETY_WAKE, TRANSIENT_ZK
from helixpy.driver.polling import (
    StateOf,
    batch_timeout,
    not_deleted,
    poll_timeout,
    state_at,
    states_plan,
    workflow_state,
)
from helixpy.errors import ClusterUnavailable, NotFound, PollTimeout
from helixpy.model import TaskState, WorkflowConfig, WorkflowContext
from helixpy.store.client import forget_data_watch
from helixpy.store.codec import decode
from helixpy.store.paths import Paths
from helixpy.store.records import job_chunk_paths, workflow_context_from


@dataclass(frozen=True)
class WorkflowEvent:
    """One state of a watched workflow, as its CONTEXT znode showed it.

    ``state`` is the workflow's state and ``previous`` the one the previous event showed
    (None on the first event; equal to ``state`` when only jobs changed). ``job_states``
    (read-only) maps each job's short name to its state; ``changed_jobs`` names the jobs
    whose state differs from the previous event (every job on the first). ``context`` is
    the whole context read (start and finish times, info).
    """

    workflow: str
    state: TaskState
    previous: TaskState | None
    job_states: Mapping[str, TaskState]
    changed_jobs: frozenset[str]
    context: WorkflowContext

    @property
    def is_final(self) -> bool:
        """Whether this is the last event of its watch (COMPLETED, FAILED, TIMED_OUT or
        ABORTED: a state the workflow never leaves)."""
        return self.state.is_final


class Unreachable(Exception):
    """ZooKeeper did not answer a read (reconnecting): wait for the session, read again."""


class Waits:
    """The waits of one async driver: polls for a state, and workflow watches.

    ``io_timeout`` (the driver's timeout) bounds each read; ``check_open`` raises once the
    driver is closed; ``get_workflow_config`` is the driver's own read (:class:`NotFound`
    for an absent workflow).
    """

    def __init__(
        self,
        session: Session,
        paths: Paths,
        io_timeout: float,
        *,
        check_open: Callable[[], None],
        get_workflow_config: Callable[[str], Awaitable[WorkflowConfig]],
    ) -> None:
        self.session = session
        self.paths = paths
        self.io_timeout = io_timeout
        self.check_open = check_open
        self._get_workflow_config = get_workflow_config

    @contextlib.asynccontextmanager
    async def bounded(self, what: str) -> AsyncIterator[None]:
        """Around the reads of one round: :class:`Unreachable` while ZooKeeper does not
        answer within the driver's timeout, kazoo's other errors as helixpy errors."""
        if not self.session.zk.connected:
            raise Unreachable  # kazoo would queue the request until it reconnects
        try:
            async with asyncio.timeout(self.io_timeout):
                yield
        except TRANSIENT_ZK as exc:
            raise Unreachable from exc
        except TimeoutError as exc:
            if isinstance(exc, PollTimeout):
                raise
            raise Unreachable from exc
        except KazooException as exc:
            raise zk_error(self.paths.cluster, what, exc) from exc

    async def state(
        self,
        what: str,
        path: str,
        state_of: StateOf,
        wanted: tuple[TaskState, ...],
        timeout: float,
    ) -> TaskState:
        """Wait until the context at ``path`` is in one of ``wanted``; the state seen. A
        missing node counts as "not yet"; :class:`PollTimeout` carries the last state."""
        deadline = time.monotonic() + timeout
        last: TaskState | None = None
        synced = False
        with NodeWatch(self.session) as nodes:
            while True:
                self.check_open()
                nodes.begin()
                state = None
                try:
                    async with self.bounded(what):
                        if not synced:
                            await self.session.sync(path)
                            synced = True
                        data = await nodes.read(path)
                    state = None if data is None else state_at(path, data, state_of)
                except Unreachable:
                    pass  # reconnecting: the session event or the safety wake retries
                if state is not None:
                    last = state
                    if state in wanted:
                        return state
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = last.value if last is not None else None
                    raise poll_timeout(what, self.paths.cluster, wanted, timeout, seen)
                await nodes.wait(min(remaining, SAFETY_WAKE))

    async def gone(self, name: str, timeout: float) -> None:
        """Wait until no znode of workflow ``name`` is left; :class:`PollTimeout` naming the
        state last seen (``None`` when its context is already gone) after ``timeout``."""
        deadline = time.monotonic() + timeout
        path = self.paths.workflow(name)
        with NodeWatch(self.session) as nodes:
            while True:
                self.check_open()
                nodes.begin()
                try:
                    async with self.bounded(f"workflow {name}"):
                        await self.session.sync(path)
                        if not await nodes.exists(path):
                            return
                except Unreachable:
                    pass  # reconnecting: the session event or the safety wake retries
                left = deadline - time.monotonic()
                if left <= 0:
                    last = None
                    with contextlib.suppress(Unreachable, NotFound):
                        async with self.bounded(f"workflow {name}"):
                            data = await self.session.get(self.paths.workflow_context(name))
                            last = workflow_state(data).value
                    raise not_deleted(self.paths, name, timeout, last)
                await nodes.wait(min(left, SAFETY_WAKE))

    async def states(
        self, names: Sequence[str], wanted: tuple[TaskState, ...], timeout: float
    ) -> dict[str, TaskState]:
        """Wait until every workflow of ``names`` (checked names) is in one of ``wanted``
        (``TaskDriver.poll_for_workflows``): one ``sync``, pipelined reads, then one read
        per change of a workflow still waited for; a session event reads them all again."""
        deadline = time.monotonic() + timeout
        by_path = {self.paths.workflow_context(n): n for n in names}
        changed: set[str] = set()
        woken = asyncio.Event()

        def mark(path: object) -> None:  # on the loop
            if isinstance(path, str):
                changed.add(path)
            woken.set()

        def fire(event: object) -> None:  # kazoo's thread: only hand over to the loop
            self.session.call_soon(mark, getattr(event, "path", None))

        sessions = Waker(self.session)  # set at every session event
        self.session.register(sessions)
        left, reached, last = set(by_path), {}, {}
        read, synced = set(left), False
        try:
            while True:
                self.check_open()
                woken.clear()
                if read:
                    try:
                        async with self.bounded("workflows"):
                            if not synced:
                                await self.session.sync(self.paths.workflows)
                                synced = True
                            plan = states_plan(sorted(read), workflow_state)
                            found, appeared = await self.session.run(plan, fire)
                        for path, state in found:
                            last[path] = state
                            if state in wanted:
                                left.discard(path)
                                reached[by_path[path]] = state
                        read = set(appeared)  # created between the two reads: read next
                    except Unreachable:
                        pass  # reconnecting: read them all again at the session event
                if not left:
                    return {n: reached[n] for n in names}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PollTimeout(batch_timeout(self.paths, by_path, left, last, timeout))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(min(remaining, SAFETY_WAKE)):
                        await _first(woken, sessions.event)
                read |= changed & left
                changed.clear()
                if sessions.event.is_set():
                    sessions.event.clear()
                    read = set(left)
        finally:
            self.session.unregister(sessions)
            for path in by_path:
                forget_data_watch(self.session.zk, path, fire)

    async def last_clone_or_self(self, name: str, deadline: float) -> str:
        """The workflow a job poll on ``name`` follows: the last clone of a recurring
        template (waiting until ``deadline`` for the first), else ``name`` itself."""
        try:
            schedule = (await self._get_workflow_config(name)).schedule
        except NotFound:
            return name  # not visible yet: polled as "not yet" like any workflow
        if schedule is None or not schedule.is_recurring:
            return name
        path = self.paths.workflow_context(name)
        with NodeWatch(self.session) as nodes:
            while True:
                self.check_open()
                nodes.begin()
                try:
                    async with self.bounded(f"workflow {name}"):
                        data = await nodes.read(path)
                    if data is not None:
                        ctx = workflow_context_from(path, decode(data, path=path), [])
                        if ctx.last_scheduled_workflow is not None:
                            return ctx.last_scheduled_workflow
                except Unreachable:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PollTimeout(f"template {name} scheduled no workflow in time", None)
                await nodes.wait(min(left, SAFETY_WAKE))


class WorkflowWatch:
    """``async for event in driver.watch(name)``: a workflow's states as they change.

    Yields a :class:`WorkflowEvent` for the state found first, then one per change of the
    workflow's state or of a job's state, in order, and ends after the event of a final
    state. Driven by a data watch on the workflow's CONTEXT (and on its job-state chunks,
    for a workflow of more than 1,000 jobs), re-armed by each read; changes that land
    between two reads are seen together, as one event (the states are never out of order,
    and the final state is always yielded).

    Raises :class:`NotFound` when the workflow does not exist when the watch first reads,
    or once it is deleted; :class:`PollTimeout` (with ``last_state``) when ``timeout``
    seconds pass without a final state; :class:`ClusterUnavailable` when ZooKeeper does not
    answer for the driver's timeout. Leaving the loop (``break``, an error) drops the
    watch's interest when the iterator is freed (at once, in CPython);
    ``async with driver.watch(name) as events`` or :meth:`aclose` drop it deterministically.
    """

    def __init__(self, waits: Waits, name: str, timeout: float | None) -> None:
        self._waits = waits
        self._name = name
        self._timeout = timeout
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._nodes: NodeWatch | None = None
        self._last: WorkflowEvent | None = None
        self._done = False
        self._synced = False
        self._answered = time.monotonic()  # when ZooKeeper last answered a read

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> WorkflowEvent:
        if self._done:
            self.close()
            raise StopAsyncIteration
        if self._nodes is None:
            self._waits.check_open()
            self._nodes = NodeWatch(self._waits.session)
        try:
            event = await self._next(self._nodes)
        except Exception:
            self.close()  # an error ends the watch (a cancellation leaves it usable)
            raise
        if event.is_final:
            self._done = True
            self.close()
        return event

    async def _next(self, nodes: NodeWatch) -> WorkflowEvent:
        waits = self._waits
        while True:
            waits.check_open()
            nodes.begin()
            try:
                event = await self._read(nodes)
                self._answered = time.monotonic()
            except Unreachable:
                if time.monotonic() - self._answered > waits.io_timeout:
                    raise ClusterUnavailable(
                        f"cluster {waits.paths.cluster}: ZooKeeper did not answer the watch "
                        f"of workflow {self._name} within {waits.io_timeout:g}s"
                    ) from None
                event = None
            if event is not None:
                return event
            wait = SAFETY_WAKE
            if self._deadline is not None:
                left = self._deadline - time.monotonic()
                if left <= 0:
                    seen = self._last.state.value if self._last is not None else None
                    raise PollTimeout(
                        f"workflow {self._name} in cluster {waits.paths.cluster} reached no "
                        f"final state within {self._timeout:g}s; last state seen: {seen}",
                        seen,
                    )
                wait = min(wait, left)
            await nodes.wait(wait)

    async def _read(self, nodes: NodeWatch) -> WorkflowEvent | None:
        """The event for the context as it is now (None: unchanged, or not written yet)."""
        waits, name = self._waits, self._name
        path = waits.paths.workflow_context(name)
        async with waits.bounded(f"workflow {name}"):
            if not self._synced:
                await waits.session.sync(path)
                self._synced = True
            raw = await nodes.read(path)
            if raw is None:
                where = f"cluster {waits.paths.cluster}"
                if self._last is not None:
                    raise NotFound(f"workflow {name} was deleted from {where}")
                if not await nodes.exists(waits.paths.workflow(name)):
                    raise NotFound(f"workflow {name} does not exist in {where}")
                return None  # being started: its CONTEXT's creation wakes us
            header = decode(raw, path=path)
            chunks = [await nodes.read(p) for p in job_chunk_paths(waits.paths, name, header)]
        decoded = [None if c is None else decode(c) for c in chunks]
        return self._event(workflow_context_from(path, header, decoded))

    def _event(self, ctx: WorkflowContext) -> WorkflowEvent | None:
        prev = self._last
        before: Mapping[str, TaskState] = {} if prev is None else prev.job_states
        if prev is not None and prev.state is ctx.state and dict(before) == ctx.job_states:
            return None
        changed = frozenset(
            j for j in {*before, *ctx.job_states} if before.get(j) != ctx.job_states.get(j)
        )
        self._last = WorkflowEvent(
            workflow=self._name,
            state=ctx.state,
            previous=None if prev is None else prev.state,
            job_states=MappingProxyType(dict(ctx.job_states)),
            changed_jobs=changed,
            context=ctx,
        )
        return self._last

    def close(self) -> None:
        """Drop the watch's interest (its kazoo watches and session waker); idempotent.
        The iteration ends."""
        self._done = True
        nodes, self._nodes = self._nodes, None
        if nodes is not None:
            nodes.close()

    async def aclose(self) -> None:
        """:meth:`close`, as an awaitable (the async-generator spelling)."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


async def _first(*events: asyncio.Event) -> None:
    """Until one of ``events`` is set."""
    waits = [asyncio.ensure_future(e.wait()) for e in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
