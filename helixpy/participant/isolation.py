"""Process isolation: a job's tasks run in worker processes the participant owns.

With ``JobConfig(isolation="process")`` an attempt runs in a child process (started on first
use, then reused), so CPU-bound task code cannot starve the participant's ZooKeeper session
thread of the GIL. The executor's worker thread only waits on a pipe.

The protocol is JSON lines over two pipes (never pickle, never the child's stdout, which
stays the task's own):

- parent -> child: ``{"op": "run", "id": n, "ctx": {...}}``, ``{"op": "cancel", "id": n}``,
  ``{"op": "reply", "rid": n, "value": ...}`` (an answer to a content or lock request);
- child -> parent: ``{"op": "content_put" | "content_get", "rid": n, "id": run, ...}`` (user
  content goes through the parent, which writes it fenced like any other participant write,
  and refuses a request of an earlier run),
  ``{"op": "lock", "rid": n, "id": run, "call": ..., "args": {...}}`` (``ctx.locks``: the
  parent runs it on the attempt's own lock box, see :mod:`helixpy.participant.remote_locks`;
  the reply carries the result, or the error's class and message),
  ``{"op": "result", "status": ..., "info": ...}``.

Lock requests are served on threads of their own (a waiting ``acquire`` never stops the
reader); when the run ends, however it ends, the critical sections its child left open are
left before the run returns, and so before the participant releases the attempt's locks.

A child that exits mid-attempt fails only that attempt (TASK_ERROR naming the exit code or
signal, retried like any failure) and is replaced on next use. Cancellation reaches the
child at once: its reader thread sets ``ctx.cancelled`` and calls the task's ``cancel()``.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, Scope, TaskResult, TaskStatus
from helixpy.participant.registry import Task, TaskContext, TaskFactory, TaskRegistry
from helixpy.participant.remote_locks import LockServer

log = logging.getLogger(__name__)

#: How long a child gets to exit on SIGTERM before it is killed (participant shutdown, or
#: an attempt past its cancel grace).
CHILD_EXIT_GRACE = 2.0
#: Run ids: a cancel names the run it is for, so one that crosses a run's end (or arrives
#: before the child took the run up) can never hit the wrong attempt.
_RUN_IDS = itertools.count(1)


class ChildProcess:
    """One worker process; runs one attempt at a time."""

    def __init__(self, tasks_spec: str, name: str) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        self.name = name
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "helixpy.participant.child",
                tasks_spec,
                str(to_child_r),
                str(from_child_w),
            ],
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._out: IO[str] = os.fdopen(to_child_w, "w", encoding="utf-8", buffering=1)
        self._in: IO[str] = os.fdopen(from_child_r, "r", encoding="utf-8")
        self._write_lock = threading.Lock()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, message: dict[str, Any]) -> None:
        """Write one message; a dead child is noticed by the reader, not here."""
        with self._write_lock:
            try:
                self._out.write(json.dumps(message) + "\n")
            except (BrokenPipeError, ValueError, OSError) as exc:
                log.info("%s: cannot write to the worker process: %s", self.name, exc)

    def receive(self) -> dict[str, Any] | None:
        """The next message, or None once the child closed its end (it exited)."""
        line = self._in.readline()
        if not line:
            return None
        body = json.loads(line)
        if not isinstance(body, dict):
            raise ValueError(f"not a message: {line!r}")
        return body

    def exit_reason(self) -> str:
        """How the child ended (waits briefly for it to be reaped)."""
        try:
            rc = self.proc.wait(5.0)
        except subprocess.TimeoutExpired:
            return "stopped answering"
        if rc < 0:
            try:
                return f"was killed by {signal.Signals(-rc).name}"
            except ValueError:
                return f"was killed by signal {-rc}"
        return f"exited with code {rc}"

    def terminate(self, kill_after: float = CHILD_EXIT_GRACE) -> None:
        """SIGTERM the child now and SIGKILL it if it is still there ``kill_after`` seconds
        later (on a short-lived thread, so the caller never waits). The attempt's reader sees
        the pipe close when the child is gone."""
        if not self.alive:
            return
        log.warning("%s (pid %d): SIGTERM", self.name, self.proc.pid)
        self.proc.terminate()

        def kill_later() -> None:
            try:
                self.proc.wait(kill_after)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s (pid %d): still there after SIGTERM: SIGKILL", self.name, self.proc.pid
                )
                self.proc.kill()

        threading.Thread(target=kill_later, name=f"kill-{self.name}", daemon=True).start()

    def close(self) -> None:
        """Terminate the child (SIGTERM, then SIGKILL after a grace) and close the pipes."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(CHILD_EXIT_GRACE)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(CHILD_EXIT_GRACE)
        for stream in (self._out, self._in):
            try:
                stream.close()
            except OSError as exc:
                log.debug("%s: closing a pipe: %s", self.name, exc)


class ProcessPool:
    """Worker processes for process-isolated attempts: started on demand, then reused.

    At most ``size`` exist; the participant sizes it to its capacity, and the controller
    never assigns more attempts than that, so ``acquire`` never has to wait.
    """

    def __init__(self, tasks_spec: str, size: int, name: str = "worker") -> None:
        self.tasks_spec = tasks_spec
        self.size = size
        self._name = name
        self._idle: list[ChildProcess] = []
        self._all: set[ChildProcess] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.started = 0

    def acquire(self) -> ChildProcess:
        with self._lock:
            if self._closed:
                raise RuntimeError("the participant is shutting down")
            while self._idle:
                child = self._idle.pop()
                if child.alive:
                    return child
                self._all.discard(child)
                child.close()
            if len(self._all) >= self.size:
                raise RuntimeError(f"all {self.size} worker processes are busy")
            self.started += 1
            child = ChildProcess(self.tasks_spec, f"{self._name}-{self.started}")
            self._all.add(child)
            return child

    def release(self, child: ChildProcess, reusable: bool) -> None:
        with self._lock:
            if reusable and child.alive and not self._closed:
                self._idle.append(child)
                return
            self._all.discard(child)
        child.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children = list(self._all)
            self._all.clear()
            self._idle.clear()
        for child in children:
            child.close()


class ProcessTask(Task):
    """The parent's stand-in for a task running in a worker process."""

    def __init__(self, pool: ProcessPool, ctx: TaskContext) -> None:
        self._pool = pool
        self._ctx = ctx
        self._child: ChildProcess | None = None
        self._lock = threading.Lock()
        self._run_id = next(_RUN_IDS)
        #: set by :meth:`terminate`: the child is (to be) ended, its exit is the cancel's
        self._terminating = False
        #: the traceback the child sent with a failed result (the attempt's full error)
        self.error_detail: str | None = None

    def run(self) -> TaskResult:
        ctx = self._ctx
        child = self._pool.acquire()
        with self._lock:
            self._child = child
            terminating = self._terminating
        if terminating:
            child.terminate()
        reusable = False
        locks = LockServer(lambda: ctx.locks, child.send, self._run_id, name=child.name)
        try:
            child.send({"op": "run", "id": self._run_id, "ctx": context_to_dict(ctx)})
            if ctx.cancelled.is_set():
                child.send({"op": "cancel", "id": self._run_id})  # cancelled before it ran
            while True:
                message = child.receive()
                if message is None:
                    if self._terminating:
                        # Ended for its cancel: the state is the cancel's (STOPPED, ...)
                        return TaskResult(
                            TaskStatus.CANCELED,
                            "did not end within its cancel grace: its worker process "
                            f"{child.exit_reason()}",
                        )
                    return TaskResult(
                        TaskStatus.FAILED,
                        f"the worker process running this task {child.exit_reason()}",
                    )
                op = message.get("op")
                if op == "result":
                    reusable = True
                    if message.get("error"):
                        self.error_detail = str(message["error"])
                    return TaskResult(
                        TaskStatus(message["status"]),
                        str(message.get("info", "")),
                        value=message.get("value"),
                    )
                if op in ("content_put", "content_get", "results_get"):
                    child.send(_serve_content(ctx, message, self._run_id))
                elif op == "lock":
                    locks.handle(message)
                else:
                    raise ValueError(f"unexpected message from the worker process: {op!r}")
        finally:
            # Before the run returns: the participant releases the attempt's locks after it
            locks.close()
            with self._lock:
                self._child = None
            self._pool.release(child, reusable)

    def cancel(self) -> None:
        with self._lock:
            child = self._child
        if child is not None:
            child.send({"op": "cancel", "id": self._run_id})

    def terminate(self) -> None:
        """End the worker process running this attempt (SIGTERM, then SIGKILL): its cancel
        grace is over. A run that has not taken a process yet ends its process at once."""
        with self._lock:
            self._terminating = True
            child = self._child
        if child is not None:
            child.terminate()


def context_to_dict(ctx: TaskContext) -> dict[str, Any]:
    return {
        "workflow": ctx.workflow,
        "job": ctx.job,
        "task_id": ctx.task_id,
        "partition": ctx.partition,
        "attempt": ctx.attempt,
        "instance": ctx.instance,
        "job_config": ctx.job_config.to_dict(),
        "task_config": dict(ctx.task_config),
        "command": ctx.command,
    }


def _serve_content(ctx: TaskContext, message: dict[str, Any], run_id: int) -> dict[str, Any]:
    """Answer a child's user-content request of run ``run_id`` through the parent's fenced
    store (one of an earlier run is refused: a thread that run's task left behind)."""
    reply: dict[str, Any] = {"op": "reply", "rid": message.get("rid")}
    if message.get("id") != run_id:
        log.warning("%s/%s: refused a content request of an earlier run", ctx.workflow, ctx.job)
        reply["error"] = "Fenced: a content request of a run that has ended"
        return reply
    try:
        if message["op"] == "results_get":
            reply["value"] = ctx.parent_results(str(message["job"]))
            return reply
        scope = Scope(message["scope"])
        if message["op"] == "content_put":
            ctx.put_user_content(str(message["key"]), str(message["value"]), scope)
            reply["value"] = None
        else:
            reply["value"] = ctx.get_user_content(str(message["key"]), scope)
    except Exception as exc:  # reported to the task in the child, which raises it there
        reply["error"] = f"{type(exc).__name__}: {exc}"
    return reply


def process_factory(pool: ProcessPool) -> Callable[[TaskContext], Task]:
    """A task factory running each attempt in ``pool``."""
    return lambda ctx: ProcessTask(pool, ctx)


class TaskLookup:
    """How a job's commands become tasks: the registry in this process, or worker
    processes for ``isolation="process"`` (started on first need, at most ``capacity``,
    closed with the participant)."""

    def __init__(self, registry: TaskRegistry, tasks_spec: str | None, name: str) -> None:
        self.registry = registry
        self.tasks_spec = tasks_spec
        self.name = name
        #: the participant's capacity: the most worker processes (set before any attempt)
        self.capacity = 1
        self._lock = threading.Lock()
        self._pool: ProcessPool | None = None

    def for_job(self, cfg: JobConfig) -> Callable[[str], TaskFactory | None]:
        if cfg.isolation != "process":
            return self.registry.get
        if self.tasks_spec is None:
            raise InvalidConfig(
                "job.isolation",
                "process isolation needs a participant started with a tasks spec "
                "(helixpy participant --tasks MODULE:ATTR)",
            )
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPool(self.tasks_spec, self.capacity, name=self.name)
            pool = self._pool
        factory = process_factory(pool)
        # An unknown command is ERROR here already: no process is started for it.
        return lambda command: factory if self.registry.get(command) is not None else None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()
