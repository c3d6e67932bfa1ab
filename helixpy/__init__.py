"""helixpy: a cluster task framework for Python coordinated through ZooKeeper.

The public API is re-exported here; see docs/architecture.md for how it fits together.
"""

from helixpy.model import (
    JobConfig,
    JobQueue,
    ScheduleConfig,
    Scope,
    TaskConfig,
    TaskPartitionState,
    TaskResult,
    TaskState,
    TaskStatus,
    Workflow,
    WorkflowConfig,
)
from helixpy.participant.registry import Task, TaskContext, TaskRegistry
from helixpy.participant.stream import StreamTask

__all__ = [
    "JobConfig",
    "JobQueue",
    "ScheduleConfig",
    "Scope",
    "StreamTask",
    "Task",
    "TaskConfig",
    "TaskContext",
    "TaskPartitionState",
    "TaskRegistry",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "Workflow",
    "WorkflowConfig",
]
