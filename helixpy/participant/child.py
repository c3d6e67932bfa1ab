"""A worker process for process-isolated tasks (see :mod:`helixpy.participant.isolation`).

    python -m helixpy.participant.child MODULE:ATTR <read fd> <write fd>

Runs one attempt at a time on its main thread; a reader thread takes messages from the
parent, so a cancel reaches the running task at once and replies reach the request waiting
for them. Work the task emits (``ctx.emit``) runs here, after ``run`` returns and before the
result is sent: the attempt completes only once its follow-ups ran. Async tasks and
coroutine follow-ups run on this process's own event loop (a
:class:`~helixpy.participant.aio.LoopRunner`), awaited by the main thread; a cancel from
the parent raises ``CancelledError`` in the coroutine (``ctx.cancelled`` is a
:class:`~helixpy.participant.aio.CancelEvent`, and the task's ``cancel()`` is called).

This process has no ZooKeeper session: user content (``content_put`` / ``content_get``) and
task locks (``lock``: ``ctx.locks`` is a
:class:`~helixpy.participant.remote_locks.RemoteLockBox`) are requests to the parent, each
answered by a ``reply`` naming its ``rid``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import sys
import threading
import traceback
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, Scope, TaskResult, TaskStatus
from helixpy.model.values import result_json
from helixpy.participant.aio import FollowUpCancelled, LoopRunner
from helixpy.participant.registry import Task, TaskContext, TaskRegistry, load_registry
from helixpy.participant.remote_locks import RemoteLockBox

log = logging.getLogger("helixpy.participant.child")


class _Parent:
    """The pipes to the parent, and the content requests waiting for replies."""

    def __init__(self, rfd: int, wfd: int) -> None:
        self._in: IO[str] = os.fdopen(rfd, "r", encoding="utf-8")
        self._out: IO[str] = os.fdopen(wfd, "w", encoding="utf-8", buffering=1)
        self._write_lock = threading.Lock()
        self._rids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self.runs: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.lock = threading.Lock()
        #: the run in progress: its id, context and task
        self.current: tuple[int, TaskContext, list[Task]] | None = None
        #: cancels that arrived before their run started (ids only grow: older ones go)
        self.early_cancels: set[int] = set()
        #: set once the parent closed its pipe: nobody will answer a request any more
        self.gone = False

    def send(self, message: dict[str, Any]) -> None:
        with self._write_lock:
            self._out.write(json.dumps(message) + "\n")

    def call(self, message: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a request and return the parent's reply to it. The parent always answers
        (or its pipe closes, which answers every request waiting); ``timeout`` only bounds
        a participant that is stuck."""
        rid = next(self._rids)
        box: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        self._waiting[rid] = box
        try:
            if self.gone:  # (read_loop already answered the requests waiting then)
                return {"error": "the participant went away"}
            self.send({**message, "rid": rid})
            try:
                return box.get(timeout=timeout)
            except queue.Empty:
                raise RuntimeError(f"no answer from the participant in {timeout:g}s") from None
        finally:
            self._waiting.pop(rid, None)

    def request(self, message: dict[str, Any]) -> Any:
        reply = self.call(message)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply.get("value")

    def start_run(self, run_id: int, ctx: TaskContext, tasks: list[Task]) -> None:
        with self.lock:
            self.current = (run_id, ctx, tasks)
            if run_id in self.early_cancels:
                ctx.cancelled.set()
            self.early_cancels = {i for i in self.early_cancels if i > run_id}

    def end_run(self) -> None:
        with self.lock:
            self.current = None

    def cancel(self, run_id: int) -> None:
        with self.lock:
            current = self.current
            if current is None or current[0] != run_id:
                self.early_cancels.add(run_id)
                return
            _, ctx, tasks = current
            ctx.cancelled.set()
            tasks = list(tasks)
        for task in tasks:
            try:
                task.cancel()
            except Exception:
                log.exception("cancel() raised")

    def read_loop(self) -> None:
        for line in self._in:
            message = json.loads(line)
            op = message.get("op")
            if op == "run":
                self.runs.put(message)
            elif op == "cancel":
                self.cancel(int(message["id"]))
            elif op == "reply":
                box = self._waiting.get(int(message["rid"]))
                if box is not None:
                    box.put(message)
        self.runs.put(None)  # the parent closed the pipe: exit
        # Unblock requests too: the parent is gone, nobody will answer.
        self.gone = True
        for box in list(self._waiting.values()):
            box.put({"error": "the participant went away"})


class _RemoteContent:
    """User content through the parent (which holds the ZooKeeper session and fence).
    Requests name their run, so a thread an earlier run's task left behind cannot write as
    the attempt running now (the parent refuses them)."""

    def __init__(self, parent: _Parent, run_id: int) -> None:
        self._parent = parent
        self._run_id = run_id

    def put(self, ctx: TaskContext, key: str, value: str, scope: Scope) -> None:
        self._parent.request(
            {
                "op": "content_put",
                "id": self._run_id,
                "key": key,
                "value": value,
                "scope": scope.value,
            }
        )

    def get(self, ctx: TaskContext, key: str, scope: Scope) -> str | None:
        value = self._parent.request(
            {"op": "content_get", "id": self._run_id, "key": key, "scope": scope.value}
        )
        return None if value is None else str(value)

    def results(self, ctx: TaskContext, job: str) -> dict[str, Any]:
        value = self._parent.request({"op": "results_get", "id": self._run_id, "job": job})
        return dict(value or {})


def _run_one(
    registry: TaskRegistry, parent: _Parent, message: dict[str, Any], aio: LoopRunner
) -> dict[str, Any]:
    raw = message["ctx"]
    run_id = int(message["id"])
    emitted: deque[Callable[[], object]] = deque()
    ctx = TaskContext(
        workflow=raw["workflow"],
        job=raw["job"],
        task_id=raw["task_id"],
        partition=int(raw["partition"]),
        attempt=int(raw["attempt"]),
        instance=raw["instance"],
        job_config=JobConfig.from_dict(raw["job_config"]),
        task_config=dict(raw["task_config"]),
        command=raw["command"],
        _content=_RemoteContent(parent, run_id),
        _emit=emitted.append,
        # (requests name the run: the parent refuses those left over from an earlier run)
        _locks=lambda: RemoteLockBox(parent.call, run_id),
        _aio=aio,
    )
    tasks: list[Task] = []
    parent.start_run(run_id, ctx, tasks)
    try:
        return _outcome(registry, ctx, tasks, emitted)
    finally:
        parent.end_run()


def _outcome(
    registry: TaskRegistry,
    ctx: TaskContext,
    tasks: list[Task],
    emitted: deque[Callable[[], object]],
) -> dict[str, Any]:
    """Run the task, then what it emitted; the result message's body."""
    factory = registry.get(ctx.command)
    if factory is None:  # the parent checks first; a differing module could still miss
        return {"status": "FAILED", "info": f"unknown command {ctx.command!r}"}
    try:
        task = factory(ctx)
        if not isinstance(task, Task):
            return {"status": "FAILED", "info": f"{ctx.command!r} did not make a Task"}
        tasks.append(task)
        if ctx.cancelled.is_set():
            task.cancel()
        result = task.run()
    except Exception as exc:
        info = f"Exception happened in running task: {type(exc).__name__}: {exc}"
        return {"status": "FAILED", "info": info, "error": traceback.format_exc()}
    cut_short = False  # a coroutine follow-up ended by the cancel
    try:
        while emitted and not ctx.cancelled.is_set():
            emitted.pop()()  # last in, first out: depth-first, no recursion
    except FollowUpCancelled as exc:
        if not ctx.cancelled.is_set():  # CancelledError nobody asked for: a failure
            info = f"emitted work failed: {type(exc).__name__}: {exc}"
            return {"status": "FAILED", "info": info, "error": traceback.format_exc()}
        cut_short = True
    except Exception as exc:
        info = f"emitted work failed: {type(exc).__name__}: {exc}"
        return {"status": "FAILED", "info": info, "error": traceback.format_exc()}
    if not isinstance(result, TaskResult):
        return {"status": "FAILED", "info": f"run() returned {type(result).__name__}"}
    status = result.status
    if (emitted or cut_short) and status is TaskStatus.COMPLETED:
        status = TaskStatus.CANCELED  # cancelled before its follow-ups all ran
    out: dict[str, Any] = {"status": status.value, "info": result.info}
    if status is TaskStatus.COMPLETED and result.value is not None:
        try:  # checked here: the pipe carries JSON, and the error is the task's
            result_json(result.value)
        except InvalidConfig as exc:
            return {"status": "FAILED", "info": f"its result cannot be stored: {exc}"}
        out["value"] = result.value
    return out


def main(argv: list[str]) -> int:
    spec, rfd, wfd = argv[0], int(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s child %(levelname)s %(message)s")
    registry = load_registry(spec)
    parent = _Parent(rfd, wfd)
    threading.Thread(target=parent.read_loop, name="from-participant", daemon=True).start()
    aio = LoopRunner(name="aio-child")  # this process's loop, for its async tasks
    try:
        while True:
            message = parent.runs.get()
            if message is None:
                return 0
            parent.send({"op": "result", **_run_one(registry, parent, message, aio)})
    finally:
        aio.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
