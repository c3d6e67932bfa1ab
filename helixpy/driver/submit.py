"""Submission for one producer: many starts or enqueues per request, and futures.

``start_many`` sends a list of workflows as one request (split only where gRPC's message
limit needs it); the leader decides them in one pass and writes them in a few fenced multis,
each still answered only once it is durable in ZooKeeper. ``start_async`` and
``enqueue_job_async`` return at once with a :class:`concurrent.futures.Future`; a background
thread of the driver gathers whatever is waiting into one such request, so one thread
submitting in a loop gets batches without managing them.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from helixpy.driver.base import DriverBase, reply_error
from helixpy.driver.base import request_id as _rid
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, JobQueue, Workflow
from helixpy.model.names import check_name
from helixpy.proto.helixpy.v1 import controller_pb2 as pb

#: Bytes of items per request: well inside gRPC's default 4 MB message limit.
REQUEST_BYTES = 2 * 1024 * 1024
#: Items per request at most (the leader answers each; a bigger request only waits longer).
REQUEST_ITEMS = 1000

Status = Literal["started", "exists", "invalid", "not_found", "error"]
_STATUS: dict[int, Status] = {
    pb.OK: "started",
    pb.ALREADY_EXISTS: "exists",
    pb.INVALID_CONFIG: "invalid",
    pb.NOT_FOUND: "not_found",
}


@dataclass(frozen=True)
class StartOutcome:
    """What became of one item of ``start_many`` / ``enqueue_many``.

    ``status`` is ``started`` (accepted and durable; for an enqueue: enqueued), ``exists``
    (a workflow, queue or job of that name exists), ``invalid`` (``field`` names what broke
    ``message``'s rule), ``not_found`` (the queue does not exist) or ``error``.
    """

    name: str
    status: Status
    message: str = ""
    field: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "started"


def outcome(name: str, reply: Any) -> StartOutcome:
    """The outcome a leader's reply to one item stands for."""
    status = _STATUS.get(reply.code, "error")
    return StartOutcome(name, status, reply.rule or reply.message, reply.field)


def request_chunks(items: list[tuple[int, Any, int]]) -> list[list[tuple[int, Any, int]]]:
    """Split (index, proto item, size) into requests within the byte and item limits."""
    out: list[list[tuple[int, Any, int]]] = []
    size = 0
    for entry in items:
        if not out or len(out[-1]) >= REQUEST_ITEMS or size + entry[2] > REQUEST_BYTES:
            out.append([])
            size = 0
        out[-1].append(entry)
        size += entry[2]
    return out


def enqueue_items(
    queue: str, jobs: Mapping[str, JobConfig]
) -> tuple[list[StartOutcome | None], list[tuple[int, pb.EnqueueItem, int]], list[str]]:
    """``enqueue_many``'s items (index, request item, bytes), the outcomes decided before
    sending (an invalid job's, at its index) and the jobs' names in order."""
    if not isinstance(jobs, Mapping):
        raise InvalidConfig("jobs", "must be a mapping of job name to JobConfig")
    outcomes: list[StartOutcome | None] = [None] * len(jobs)
    items: list[tuple[int, Any, int]] = []
    names = list(jobs)
    for i, name in enumerate(names):
        try:
            item = enqueue_item(queue, name, jobs[name], f"jobs[{name!r}]")
        except InvalidConfig as exc:
            outcomes[i] = StartOutcome(str(name), "invalid", exc.rule, exc.field)
            continue
        items.append((i, item, item.ByteSize()))
    return outcomes, items, [str(n) for n in names]


def settle(method: str, futures: Sequence[Any], answer: Any) -> None:
    """Settle each future of a batched request from the leader's ``answer`` (one reply
    per item, in order) as the single-item call would have raised or returned; futures
    already done (cancelled by their caller) are skipped. ``concurrent.futures`` and
    ``asyncio`` futures alike."""
    for future, reply in zip(futures, answer.replies, strict=True):
        if future.done():
            continue
        error = reply_error(method, reply)
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def start_items(
    workflows: Sequence[Workflow | JobQueue],
) -> tuple[list[StartOutcome | None], list[tuple[int, pb.StartItem, int]]]:
    """``start_many``'s items (index, request item, bytes) and the outcomes decided before
    sending: an invalid item's, at its index (None where the leader answers)."""
    if isinstance(workflows, Workflow | JobQueue) or not isinstance(workflows, Sequence):
        raise InvalidConfig("workflows", "must be a list of Workflow or JobQueue")
    outcomes: list[StartOutcome | None] = [None] * len(workflows)
    items: list[tuple[int, Any, int]] = []
    for i, wf in enumerate(workflows):
        try:
            item = start_item(wf, f"workflows[{i}]")
        except InvalidConfig as exc:
            outcomes[i] = StartOutcome(name_of(wf), "invalid", exc.rule, exc.field)
            continue
        items.append((i, item, item.ByteSize()))
    return outcomes, items


class SubmitMethods(DriverBase):
    """``start_many``, ``enqueue_many`` and their one-item futures."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batcher: _Batcher | None = None
        self._batcher_lock = threading.Lock()

    def start_many(self, workflows: Sequence[Workflow | JobQueue]) -> list[StartOutcome]:
        """Start many workflows (or job queues) in one request; one outcome per item, in
        order. A bad item is refused with its field named; the others start regardless.
        Each item applies at most once, however often the request is retried."""
        self._check_open()
        outcomes, items = start_items(workflows)
        for chunk in request_chunks(items):
            request = pb.StartManyRequest(request_id=_rid(), items=[e[1] for e in chunk])
            answer = self._leader.call("StartMany", request)
            for (i, _item, _), reply in zip(chunk, answer.replies, strict=True):
                outcomes[i] = outcome(name_of(workflows[i]), reply)
        return [o for o in outcomes if o is not None]

    def enqueue_many(self, queue: str, jobs: Mapping[str, JobConfig]) -> list[StartOutcome]:
        """Append jobs to ``queue``, each on its own (unlike the all-or-nothing
        ``enqueue_jobs``): one outcome per job, in order; a bad job never holds back the
        others."""
        self._check_open()
        outcomes, items, names = enqueue_items(queue, jobs)
        for chunk in request_chunks(items):
            request = pb.EnqueueManyRequest(request_id=_rid(), items=[e[1] for e in chunk])
            answer = self._leader.call("EnqueueMany", request)
            for (i, _item, _), reply in zip(chunk, answer.replies, strict=True):
                outcomes[i] = outcome(str(names[i]), reply)
        return [o for o in outcomes if o is not None]

    def start_async(self, workflow: Workflow | JobQueue) -> Future[None]:
        """Start ``workflow`` in the background: the future's ``result()`` returns once it
        is durable, or raises what :meth:`start` would (AlreadyExists, InvalidConfig,
        ClusterUnavailable). Calls made close together travel as one request."""
        self._check_open()
        future: Future[None] = Future()
        try:
            item = start_item(workflow, "workflow")
        except InvalidConfig as exc:
            future.set_exception(exc)
            return future
        self._batch().put("StartMany", item, future)
        return future

    def enqueue_job_async(self, queue: str, job: str, job_config: JobConfig) -> Future[None]:
        """Append one job to ``queue`` in the background (see :meth:`start_async`)."""
        self._check_open()
        future: Future[None] = Future()
        try:
            item = enqueue_item(queue, job, job_config, "job_config")
        except InvalidConfig as exc:
            future.set_exception(exc)
            return future
        self._batch().put("EnqueueMany", item, future)
        return future

    def _batch(self) -> _Batcher:
        with self._batcher_lock:
            if self._batcher is None:
                self._batcher = _Batcher(self)
            return self._batcher

    def close(self) -> None:
        # The batcher first: what it holds is sent (or failed) while the session is open.
        with self._batcher_lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.stop()
        super().close()


class _Batcher:
    """One thread: takes every waiting item and sends it as one request per kind."""

    def __init__(self, driver: SubmitMethods) -> None:
        self._driver = driver
        self._queue: queue.SimpleQueue[tuple[str, Any, Future[None]] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="helixpy-submit", daemon=True)
        self._thread.start()

    def put(self, method: str, item: Any, future: Future[None]) -> None:
        self._queue.put((method, item, future))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stopping = False
            while len(batch) < REQUEST_ITEMS:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                batch.append(nxt)
            for method in ("StartMany", "EnqueueMany"):
                part = [b for b in batch if b[0] == method]
                if part:
                    self._send(method, part)
            if stopping:
                return

    def _send(self, method: str, part: list[tuple[str, Any, Future[None]]]) -> None:
        cls = pb.StartManyRequest if method == "StartMany" else pb.EnqueueManyRequest
        try:
            answer = self._driver._leader.call(
                method, cls(request_id=_rid(), items=[p[1] for p in part])
            )
        except BaseException as exc:  # every future of the request hears why
            for _, _, future in part:
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        settle(method, [p[2] for p in part], answer)


def name_of(wf: object) -> str:
    """The name of an item of ``start_many`` ('' when it has none)."""
    name = getattr(wf, "name", "")
    return name if isinstance(name, str) else ""


def start_item(wf: object, field: str) -> pb.StartItem:
    """The wire item for a workflow or queue. A Workflow or JobQueue validated itself when
    it was built (they are frozen), so it is not parsed back here: the leader parses it
    again anyway, and names the field of anything it refuses."""
    if isinstance(wf, JobQueue):
        return pb.StartItem(queue_json=json.dumps(wf.to_dict()))
    if isinstance(wf, Workflow):
        return pb.StartItem(workflow_json=json.dumps(wf.to_dict()))
    raise InvalidConfig(field, f"must be a Workflow or JobQueue (got {type(wf).__name__})")


def enqueue_item(queue: str, job: str, cfg: object, field: str) -> pb.EnqueueItem:
    """The wire item for one job appended to ``queue``; :class:`InvalidConfig` naming
    ``field`` when ``cfg`` is not a valid JobConfig."""
    check_name("queue.name", queue)
    check_name("job.name", job)
    if not isinstance(cfg, JobConfig):
        raise InvalidConfig(field, f"must be a JobConfig (got {type(cfg).__name__})")
    JobConfig.from_dict(cfg.to_dict(), field)
    return pb.EnqueueItem(queue=queue, job=job, job_json=json.dumps(cfg.to_dict()))


__all__ = ["StartOutcome", "SubmitMethods", "enqueue_items", "start_items"]
