"""Running one attempt and turning its outcome into a partition state. No ZooKeeper here."""

from __future__ import annotations

import enum
import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from helixpy.errors import InvalidConfig
from helixpy.model import TaskPartitionState, TaskResult, TaskStatus
from helixpy.model.values import result_json
from helixpy.participant.aio import FollowUpCancelled
from helixpy.participant.executor import WorkGroup
from helixpy.participant.isolation import ProcessTask
from helixpy.participant.registry import Task, TaskContext, TaskFactory

log = logging.getLogger(__name__)
P = TaskPartitionState


def task_fields(key: str, attempt: int, task_id: str | None = None) -> dict[str, object]:
    """``extra`` for a log record about one attempt: the JSON log format prints these as
    ``workflow``, ``job``, ``task`` (the task id, else the partition) and ``attempt``."""
    workflow, job, partition = key.split("/")
    return {"workflow": workflow, "job": job, "task": task_id or partition, "attempt": attempt}


class CancelReason(enum.Enum):
    """Why an attempt was cancelled; it decides the state a CANCELED result gets."""

    TIMEOUT = "TIMEOUT"  # timeout_per_task -> TIMED_OUT (retried like a failure)
    STOP = "STOP"  # the workflow is stopping -> STOPPED (runs again on resume)
    ABORT = "ABORT"  # job failing / timing out, workflow failed -> TASK_ABORTED
    DROP = "DROP"  # no longer assigned (deleted, superseded): nobody reads the result
    DISABLED = "DISABLED"  # the instance was disabled -> DROPPED, retried elsewhere
    MOVED = "MOVED"  # a targeted task's partition left -> DROPPED, follows the partition


@dataclass
class Attempt:
    """One attempt of one task on this participant."""

    key: str
    attempt: int
    ctx: TaskContext
    start: float = field(default_factory=time.time)
    task: Task | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: the first reason given wins: a timed-out attempt later told to stop stays TIMED_OUT
    reason: CancelReason | None = None
    #: the attempt's work on the executor (its run and what it emitted)
    group: WorkGroup | None = None
    #: what run() came to (state, info); None until it returned
    outcome: tuple[TaskPartitionState, str] | None = None
    #: the per-task timeout's registration, discarded when the attempt's work is done
    deadline_token: int | None = None
    #: the cancel grace's registration (see :mod:`helixpy.participant.grace`)
    grace_token: int | None = None
    #: set under ``lock`` when the attempt's work is done, or when the participant gave up
    #: on it (``abandoned``): whichever comes first decides, the other does nothing
    ended: bool = False
    abandoned: bool = False
    #: the full error text (a traceback) when the attempt failed with one; the reported
    #: ``info`` is capped, this is stored whole (see :mod:`helixpy.store.task_errors`)
    detail: str | None = None
    #: the JSON of the value the attempt completed with (None: it returned no value)
    value: bytes | None = None

    @property
    def fields(self) -> dict[str, object]:
        """Log ``extra`` naming this attempt (see :func:`task_fields`)."""
        return task_fields(self.key, self.attempt, self.ctx.task_id)

    def release_locks(self) -> None:
        """Release every lock the attempt holds (it ended, or was abandoned)."""
        box = self.ctx._lock_box
        if box is None:
            return
        try:
            box.close()
        except Exception as exc:  # its session is gone: the next acquirer reclaims them
            log.warning("%s: locks not released: %s", self.key, exc, extra=self.fields)

    def cancel(self, reason: CancelReason) -> bool:
        """Set ``ctx.cancelled`` at once, then ask the task object itself (once); whether
        this was the attempt's first cancel."""
        with self.lock:
            if self.reason is not None:
                return False
            self.reason = reason
        log.info(
            "%s attempt %d cancelled: %s", self.key, self.attempt, reason.value, extra=self.fields
        )
        self.ctx.cancelled.set()
        if self.group is not None:
            self.group.cancel()  # follow-ups not started yet are skipped
        with self.lock:
            task = self.task
        if task is not None:
            try:
                task.cancel()
            except Exception:
                log.exception("%s: cancel() raised", self.key, extra=self.fields)
        return True


_CANCELED_AS = {
    CancelReason.TIMEOUT: (P.TIMED_OUT, "timed out"),
    CancelReason.STOP: (P.STOPPED, "stopped"),
    CancelReason.ABORT: (P.TASK_ABORTED, "aborted"),
    CancelReason.DROP: (P.TASK_ABORTED, "dropped"),
    CancelReason.DISABLED: (P.DROPPED, "instance disabled"),
    CancelReason.MOVED: (P.DROPPED, "partition moved"),
}


def outcome(result: object, reason: CancelReason | None) -> tuple[TaskPartitionState, str]:
    """Map what ``run`` returned to (state, info), per Helix's TaskResult semantics.

    COMPLETED always counts (a task that finishes while stopping is COMPLETED); CANCELED
    takes its state from why the attempt was cancelled, and is TASK_ERROR when nobody asked.
    """
    if not isinstance(result, TaskResult):
        return P.TASK_ERROR, f"run() returned {type(result).__name__}, not a TaskResult"
    if result.status is TaskStatus.COMPLETED:
        return P.COMPLETED, result.info
    if result.status is TaskStatus.FAILED:
        return P.TASK_ERROR, result.info
    if result.status is TaskStatus.FATAL_FAILED:
        return P.TASK_ABORTED, result.info
    if reason is not None:
        state, default_info = _CANCELED_AS[reason]
        return state, result.info or default_info
    return P.TASK_ERROR, result.info or "returned CANCELED without being asked to cancel"


def with_follow_ups(
    state: TaskPartitionState, info: str, attempt: Attempt
) -> tuple[TaskPartitionState, str]:
    """The attempt's outcome once its emitted work ran: a task that completed is not
    COMPLETED when a follow-up raised (TASK_ERROR), or was skipped by a cancel or (a
    coroutine) ended by one: the cancel's state."""
    group = attempt.group
    if state is not P.COMPLETED or group is None:
        return state, info
    if isinstance(group.error, FollowUpCancelled) and attempt.reason is not None:
        # Its CancelledError came from the attempt's cancel: the work was cut short by it,
        # like a follow-up the cancel skipped, not failed.
        cancelled_state, default_info = _CANCELED_AS[attempt.reason]
        return cancelled_state, f"{default_info} while its emitted work ran"
    if group.error is not None:
        err = group.error
        attempt.detail = "".join(traceback.format_exception(err))
        return P.TASK_ERROR, f"emitted work failed: {type(err).__name__}: {err}"
    if group.skipped and attempt.reason is not None:
        cancelled_state, default_info = _CANCELED_AS[attempt.reason]
        return cancelled_state, f"{default_info} before its emitted work ran"
    return state, info


def run_attempt(
    lookup: Callable[[str], TaskFactory | None], attempt: Attempt
) -> tuple[TaskPartitionState, str]:
    """Create and run the task found by ``lookup(command)``; an unknown command is ERROR,
    an exception TASK_ERROR."""
    factory = lookup(attempt.ctx.command)
    if factory is None:
        return P.ERROR, f"unknown command {attempt.ctx.command!r}"
    try:
        task = factory(attempt.ctx)
        if not isinstance(task, Task):
            return P.ERROR, (
                f"command {attempt.ctx.command!r} made a {type(task).__name__}, not a Task "
                "(a StreamTask runs only in a streaming job: stream=True)"
            )
        with attempt.lock:
            attempt.task = task
        if attempt.ctx.cancelled.is_set():
            task.cancel()
        result = task.run()
        if isinstance(task, ProcessTask):
            attempt.detail = task.error_detail
    except Exception as exc:
        attempt.detail = traceback.format_exc()
        log.info(
            "%s attempt %d raised: %s", attempt.key, attempt.attempt, exc, extra=attempt.fields
        )
        return P.TASK_ERROR, f"Exception happened in running task: {type(exc).__name__}: {exc}"
    state, info = outcome(result, attempt.reason)
    if state is P.COMPLETED and isinstance(result, TaskResult) and result.value is not None:
        try:
            attempt.value = result_json(result.value)
        except InvalidConfig as exc:  # a programming error, but maybe only for some inputs
            return P.TASK_ERROR, f"its result cannot be stored: {exc}"
    return state, info


def error_text(state: TaskPartitionState, info: str, attempt: Attempt) -> str | None:
    """The full error text to keep for a failed attempt (None when it did not fail): its
    traceback when it raised, else the whole ``info`` it returned. Cancels are not failures."""
    failed = state in (P.TASK_ERROR, P.ERROR) or (
        state is P.TASK_ABORTED and attempt.reason is None  # FATAL_FAILED
    )
    if not failed:
        return None
    if attempt.detail:
        return f"{info}\n\n{attempt.detail}" if info not in attempt.detail else attempt.detail
    return info or None
