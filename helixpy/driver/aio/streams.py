"""Streaming jobs from asyncio: add splits and barriers, end streams, read their results.

The same plans as :class:`~helixpy.driver.TaskDriver`'s (:mod:`helixpy.driver.streams`):
appends write straight to ZooKeeper in a multi that checks the stream is open, each
with a random id so a retry after a lost connection finds its first try; reads sync
first. An :class:`AsyncBarrier` waits on watches of its checkpoint and its job's context.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from helixpy.driver import streams
from helixpy.driver.aio.base import AsyncDriverBase
from helixpy.driver.aio.session import NodeWatch
from helixpy.driver.aio.watch import Unreachable, Waits
from helixpy.driver.base import NoNode
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import workflow_name as _wf
from helixpy.driver.leader import SAFETY_WAKE
from helixpy.driver.polling import check_timeout
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import TaskState
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan

_T = TypeVar("_T")
_P = ParamSpec("_P")


class AsyncBarrier:
    """A barrier requested on a streaming job (``AsyncTaskDriver.request_barrier``)."""

    def __init__(
        self, waits: Waits, done: Callable[[], Awaitable[bool]], wf: str, job: str, seq: int
    ) -> None:
        self._waits = waits
        self._done = done
        self.workflow = wf
        self.job = job
        self.sequence = seq

    def __repr__(self) -> str:
        return f"Barrier({self.workflow}/{self.job} #{self.sequence})"

    async def done(self) -> bool:
        """Whether its checkpoint is published (also when it has been pruned since)."""
        return await self._done()

    async def wait(self, timeout: float = 300.0) -> dict[int, dict[str, Any]]:
        """The checkpoint (slot -> contribution) once every slot has contributed; the
        errors of :meth:`helixpy.driver.streams.Barrier.wait`."""
        deadline = time.monotonic() + check_timeout(timeout)
        waits, wf, job, seq = self._waits, self.workflow, self.job, self.sequence
        paths = waits.paths
        watched = (paths.stream_checkpoint(wf, job, seq), paths.job_context(wf, job))
        state: TaskState | None = None
        with NodeWatch(waits.session) as nodes:
            while True:
                waits.check_open()
                nodes.begin()  # before the reads: a change landing after them wakes us
                try:
                    async with waits.bounded(str(self)):
                        plan = streams.barrier_round(paths, wf, job, seq, str(self))
                        found, state = await nodes.run(plan, *watched)
                    if found is not None:
                        return found
                except Unreachable:
                    pass  # reconnecting: the session event or the safety wake retries
                left = deadline - time.monotonic()
                if left <= 0:
                    raise streams.barrier_timeout(self, timeout, state)
                await nodes.wait(min(left, SAFETY_WAKE))


class StreamMethods(AsyncDriverBase):
    """Mixed into :class:`~helixpy.driver.aio.AsyncTaskDriver`; each method is its
    :class:`~helixpy.driver.TaskDriver` namesake."""

    async def add_splits(
        self, name: str, job: str, splits: Sequence[Any], *, key: Callable[[Any], Any] | None = None
    ) -> int:
        """Append a batch of JSON-serialisable splits to streaming job ``job`` (one znode);
        its sequence number."""
        streams.check_splits(splits)
        if key is not None and not callable(key):
            raise InvalidConfig("key", f"must be a function of a split (got {type(key).__name__})")
        return await self._stream(name, job, False, streams.add_splits, list(splits), key)

    async def request_barrier(self, name: str, job: str) -> AsyncBarrier:
        """A barrier after every split added so far; ``await barrier.wait(timeout)``
        returns the checkpoint."""
        seq = await self._stream(name, job, False, streams.request_barrier)
        return self._barrier(name, job, seq)

    async def end_stream(self, name: str, job: str) -> AsyncBarrier:
        """No more splits: after a final barrier (returned) every slot closes and the job
        completes."""
        seq = await self._stream(name, job, False, streams.end_stream)
        return self._barrier(name, job, seq)

    async def get_split_results(
        self, name: str, job: str, *, since_barrier: int | None = None
    ) -> list[streams.SplitResult]:
        """What ``process`` returned, once per split, for every completed barrier (after
        ``since_barrier``) still kept, in the order the splits were added."""
        if since_barrier is not None and (
            isinstance(since_barrier, bool) or not isinstance(since_barrier, int)
        ):
            raise InvalidConfig(
                "since_barrier", f"must be a barrier's sequence number (got {since_barrier!r})"
            )
        return await self._stream(name, job, True, streams.split_results, since_barrier)

    def _barrier(self, name: str, job: str, seq: int) -> AsyncBarrier:
        def done() -> Awaitable[bool]:
            return self._run("", "", streams.barrier_done, name, job, seq)

        return AsyncBarrier(self._waits_of(), done, name, job, seq)

    async def _stream(
        self,
        name: str,
        job: str,
        fresh: bool,
        op: Callable[Concatenate[Paths, str, str, _P], Plan[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``op`` on a stream; ``fresh`` syncs first (reads), as the TaskDriver's."""
        path = self._paths.stream(_wf(name), _job(job))
        try:
            return await self._run(path if fresh else "", "", op, name, job, *args, **kwargs)
        except NoNode:
            # No STREAM tree: say why (not a streaming job, or no such job); else it was
            # deleted under our feet.
            path = self._paths.job(_wf(name), _job(job))
            await self._run(path, "", streams.stream_slots_plan, name, job)
            raise NotFound(
                f"job {name}/{job} does not exist in cluster {self._paths.cluster}"
            ) from None
