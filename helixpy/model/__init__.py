"""The pure domain model: configs, contexts, states, validation and codecs. No I/O."""

from helixpy.model.config import (
    DEFAULT_CAPACITY,
    JobConfig,
    ScheduleConfig,
    TaskConfig,
    WorkflowConfig,
)
from helixpy.model.context import (
    JobContext,
    TaskContextInfo,
    TaskExecutionInfo,
    TaskResult,
    WorkflowContext,
)
from helixpy.model.names import check_name, is_valid_name
from helixpy.model.queue import JobQueue, JobQueueBuilder
from helixpy.model.states import Scope, TaskPartitionState, TaskState, TaskStatus
from helixpy.model.workflow import Workflow, WorkflowBuilder

__all__ = [
    "DEFAULT_CAPACITY",
    "JobConfig",
    "JobContext",
    "JobQueue",
    "JobQueueBuilder",
    "ScheduleConfig",
    "Scope",
    "TaskConfig",
    "TaskContextInfo",
    "TaskExecutionInfo",
    "TaskPartitionState",
    "TaskResult",
    "TaskState",
    "TaskStatus",
    "Workflow",
    "WorkflowBuilder",
    "WorkflowConfig",
    "WorkflowContext",
    "check_name",
    "is_valid_name",
]
