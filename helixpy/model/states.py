"""State enums, named as in Helix's task framework."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """What a task's ``run()`` reports."""

    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    FATAL_FAILED = "FATAL_FAILED"


class TaskState(StrEnum):
    """The state of a workflow or a job (Helix's ``TaskState``)."""

    NOT_STARTED = "NOT_STARTED"
    IN_PROGRESS = "IN_PROGRESS"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAILING = "FAILING"
    FAILED = "FAILED"
    TIMING_OUT = "TIMING_OUT"
    TIMED_OUT = "TIMED_OUT"
    COMPLETED = "COMPLETED"
    ABORTED = "ABORTED"

    @property
    def is_final(self) -> bool:
        """True for states a workflow or job never leaves."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED}
)


class TaskPartitionState(StrEnum):
    """The state of one task (a job's partition) as recorded in the job context."""

    INIT = "INIT"
    RUNNING = "RUNNING"
    STOPPED = "STOPPED"
    COMPLETED = "COMPLETED"
    TIMED_OUT = "TIMED_OUT"
    TASK_ERROR = "TASK_ERROR"
    TASK_ABORTED = "TASK_ABORTED"
    DROPPED = "DROPPED"
    ERROR = "ERROR"

    @property
    def is_active(self) -> bool:
        """True while an attempt is assigned to an instance and not yet finished."""
        return self in (TaskPartitionState.INIT, TaskPartitionState.RUNNING)


class Scope(StrEnum):
    """Where user content lives: one map per workflow, per job, or per task id."""

    WORKFLOW = "WORKFLOW"
    JOB = "JOB"
    TASK = "TASK"
