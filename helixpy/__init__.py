"""helixpy: a cluster task framework for Python coordinated through ZooKeeper.

The public API is re-exported here; see docs/architecture.md for how it fits together.
Task locks outside a task: ``LockBox(connect(zk), cluster, holder)``, its ``acquire`` /
``critical_section`` / ``commit([Create(...), SetData(...), Delete(...)])``.
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
from helixpy.model.locks import Interval, Lock, LockResult, LockType, Posse
from helixpy.participant.registry import Task, TaskContext, TaskRegistry
from helixpy.participant.stream import StreamTask
from helixpy.store.client import connect
from helixpy.store.locks import LockBox
from helixpy.store.ops import Create, Delete, SetData

__all__ = [
    "Create",
    "Delete",
    "Interval",
    "JobConfig",
    "JobQueue",
    "Lock",
    "LockBox",
    "LockResult",
    "LockType",
    "Posse",
    "ScheduleConfig",
    "Scope",
    "SetData",
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
    "connect",
]
