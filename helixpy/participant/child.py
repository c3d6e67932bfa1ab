"""A worker process for process-isolated tasks (see :mod:`helixpy.participant.isolation`).

    python -m helixpy.participant.child MODULE:ATTR <read fd> <write fd>

Runs one attempt at a time on its main thread; a reader thread takes messages from the
parent, so a cancel reaches the running task at once and content replies reach the request
waiting for them. Work the task emits (``ctx.emit``) runs here, after ``run`` returns and
before the result is sent: the attempt completes only once its follow-ups ran.
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

from helixpy.model import JobConfig, Scope, TaskResult, TaskStatus
from helixpy.participant.registry import Task, TaskContext, TaskRegistry, load_registry

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

    def send(self, message: dict[str, Any]) -> None:
        with self._write_lock:
            self._out.write(json.dumps(message) + "\n")

    def request(self, message: dict[str, Any]) -> Any:
        rid = next(self._rids)
        box: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1)
        self._waiting[rid] = box
        try:
            self.send({**message, "rid": rid})
            reply = box.get()  # the parent always answers; EOF ends this process
        finally:
            self._waiting.pop(rid, None)
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
        # Unblock content requests too: the parent is gone, nobody will answer.
        for box in list(self._waiting.values()):
            box.put({"error": "the participant went away"})


class _RemoteContent:
    """User content through the parent (which holds the ZooKeeper session and fence)."""

    def __init__(self, parent: _Parent) -> None:
        self._parent = parent

    def put(self, ctx: TaskContext, key: str, value: str, scope: Scope) -> None:
        self._parent.request(
            {"op": "content_put", "key": key, "value": value, "scope": scope.value}
        )

    def get(self, ctx: TaskContext, key: str, scope: Scope) -> str | None:
        value = self._parent.request({"op": "content_get", "key": key, "scope": scope.value})
        return None if value is None else str(value)


def _run_one(registry: TaskRegistry, parent: _Parent, message: dict[str, Any]) -> dict[str, Any]:
    raw = message["ctx"]
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
        _content=_RemoteContent(parent),
        _emit=emitted.append,
    )
    tasks: list[Task] = []
    parent.start_run(int(message["id"]), ctx, tasks)
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
    try:
        while emitted and not ctx.cancelled.is_set():
            emitted.pop()()  # last in, first out: depth-first, no recursion
    except Exception as exc:
        info = f"emitted work failed: {type(exc).__name__}: {exc}"
        return {"status": "FAILED", "info": info, "error": traceback.format_exc()}
    if not isinstance(result, TaskResult):
        return {"status": "FAILED", "info": f"run() returned {type(result).__name__}"}
    status = result.status
    if emitted and status is TaskStatus.COMPLETED:
        status = TaskStatus.CANCELED  # cancelled before its follow-ups all ran
    return {"status": status.value, "info": result.info}


def main(argv: list[str]) -> int:
    spec, rfd, wfd = argv[0], int(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s child %(levelname)s %(message)s")
    registry = load_registry(spec)
    parent = _Parent(rfd, wfd)
    threading.Thread(target=parent.read_loop, name="from-participant", daemon=True).start()
    while True:
        message = parent.runs.get()
        if message is None:
            return 0
        parent.send({"op": "result", **_run_one(registry, parent, message)})


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
