"""``start_async``, ``enqueue_job_async`` and ``enqueue_many`` for the async driver.

``start_async`` and ``enqueue_job_async`` return an :class:`asyncio.Future` at once; every
item handed over in one turn of the event loop travels in one ``StartMany`` /
``EnqueueMany`` request (as the TaskDriver's batcher thread does for calls made close
together), so a coroutine that starts 1,000 workflows in a loop sends one request, not
1,000. The request building and reply handling are :mod:`helixpy.driver.submit`'s.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

from helixpy.driver.aio.base import AsyncDriverBase
from helixpy.driver.submit import (
    StartOutcome,
    enqueue_item,
    enqueue_items,
    outcome,
    request_chunks,
    settle,
    start_item,
)
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, JobQueue, Workflow
from helixpy.proto.helixpy.v1 import controller_pb2 as pb

_REQUESTS = {"StartMany": pb.StartManyRequest, "EnqueueMany": pb.EnqueueManyRequest}


class BatchMethods(AsyncDriverBase):
    """Mixed into :class:`~helixpy.driver.aio.AsyncTaskDriver`."""

    _pending: dict[str, list[tuple[Any, asyncio.Future[None]]]] | None = None
    _sending: set[asyncio.Task[None]] | None = None

    def start_async(self, workflow: Workflow | JobQueue) -> asyncio.Future[None]:
        """Start ``workflow`` in the background: awaiting the future returns once it is
        durable, or raises what :meth:`start` would. Calls made in one turn of the event
        loop travel as one request."""
        return self._put("StartMany", lambda: start_item(workflow, "workflow"))

    def enqueue_job_async(
        self, queue: str, job: str, job_config: JobConfig
    ) -> asyncio.Future[None]:
        """Append one job to ``queue`` in the background (see :meth:`start_async`)."""
        return self._put("EnqueueMany", lambda: enqueue_item(queue, job, job_config, "job_config"))

    async def enqueue_many(self, queue: str, jobs: Mapping[str, JobConfig]) -> list[StartOutcome]:
        """Append jobs to ``queue``, each on its own: one outcome per job, in order (see
        :meth:`TaskDriver.enqueue_many`)."""
        self._check_open()
        outcomes, items, names = enqueue_items(queue, jobs)
        for chunk in request_chunks(items):
            request = pb.EnqueueManyRequest(request_id=_rid(), items=[e[1] for e in chunk])
            answer = await self._leader_client().call("EnqueueMany", request)
            for (i, _item, _), reply in zip(chunk, answer.replies, strict=True):
                outcomes[i] = outcome(names[i], reply)
        return [o for o in outcomes if o is not None]

    def _put(self, method: str, build: Any) -> asyncio.Future[None]:
        self._check_open()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        try:
            item = build()
        except InvalidConfig as exc:
            future.set_exception(exc)
            return future
        if self._pending is None:
            self._pending, self._sending = {}, set()
        if not self._pending:
            loop.call_soon(self._flush)  # after every call of this turn of the loop
        self._pending.setdefault(method, []).append((item, future))
        return future

    def _flush(self) -> None:
        pending, self._pending = self._pending or {}, {}
        for method, part in pending.items():
            sized = [(i, item, item.ByteSize()) for i, (item, _f) in enumerate(part)]
            for chunk in request_chunks(sized):
                futures = [part[i][1] for i, _item, _ in chunk]
                task = asyncio.ensure_future(
                    self._send_batch(method, [e[1] for e in chunk], futures)
                )
                assert self._sending is not None
                self._sending.add(task)  # held until done: the loop keeps only weak refs
                task.add_done_callback(self._sending.discard)

    async def _send_batch(
        self, method: str, items: list[Any], futures: list[asyncio.Future[None]]
    ) -> None:
        try:
            answer = await self._leader_client().call(
                method, _REQUESTS[method](request_id=_rid(), items=items)
            )
        except Exception as exc:  # every future of the request hears why
            for future in futures:
                if not future.done():
                    future.set_exception(exc)
            return
        settle(method, futures, answer)

    async def _drain(self) -> None:
        """Send what is pending and wait for the requests in flight (before closing)."""
        if self._pending:
            self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)


def _rid() -> str:
    return uuid.uuid4().hex
