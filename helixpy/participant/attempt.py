"""Running one attempt and turning its outcome into a partition state. No ZooKeeper here."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from helixpy.model import TaskPartitionState, TaskResult, TaskStatus
from helixpy.participant.registry import Task, TaskContext, TaskRegistry

log = logging.getLogger(__name__)
P = TaskPartitionState


@dataclass
class Attempt:
    """One attempt of one task on this participant."""

    key: str
    attempt: int
    ctx: TaskContext
    start: float = field(default_factory=time.time)
    task: Task | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cancel(self) -> None:
        """Set ``ctx.cancelled`` at once, then ask the task object itself."""
        self.ctx.cancelled.set()
        with self.lock:
            task = self.task
        if task is not None:
            try:
                task.cancel()
            except Exception:
                log.exception("%s: cancel() raised", self.key)


def outcome(result: object, cancel_requested: bool) -> tuple[TaskPartitionState, str]:
    """Map what ``run`` returned to (state, info), per Helix's TaskResult semantics."""
    if not isinstance(result, TaskResult):
        return P.TASK_ERROR, f"run() returned {type(result).__name__}, not a TaskResult"
    if result.status is TaskStatus.COMPLETED:
        return P.COMPLETED, result.info
    if result.status is TaskStatus.FAILED:
        return P.TASK_ERROR, result.info
    if result.status is TaskStatus.FATAL_FAILED:
        return P.TASK_ABORTED, result.info
    if cancel_requested:
        # Cancelled on the controller's request: it knows why and records the final state.
        return P.TASK_ABORTED, result.info or "cancelled"
    return P.TASK_ERROR, result.info or "returned CANCELED without being asked to cancel"


def run_attempt(registry: TaskRegistry, attempt: Attempt) -> tuple[TaskPartitionState, str]:
    """Create and run the task; an unknown command is ERROR, an exception TASK_ERROR."""
    factory = registry.get(attempt.ctx.command)
    if factory is None:
        return P.ERROR, f"unknown command {attempt.ctx.command!r}"
    try:
        task = factory(attempt.ctx)
        with attempt.lock:
            attempt.task = task
        if attempt.ctx.cancelled.is_set():
            task.cancel()
        result = task.run()
    except Exception as exc:
        log.info("%s attempt %d raised: %s", attempt.key, attempt.attempt, exc)
        return P.TASK_ERROR, f"Exception happened in running task: {type(exc).__name__}: {exc}"
    return outcome(result, attempt.ctx.cancelled.is_set())
