"""Run-time contexts: what the controller records about workflows, jobs and tasks.

The controller owns these; the driver reads them. Times are timezone-aware UTC datetimes
(stored as epoch seconds). ``to_dict`` / ``from_dict`` are the compact store encodings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from helixpy.model.states import TaskPartitionState, TaskState, TaskStatus

#: The most bytes a task's ``info`` may take in its JSON encoding (keeps chunks bounded).
INFO_CAP = 256


def to_epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, tz=UTC)


def _json_size(text: str) -> int:
    return len(json.dumps(text))  # ASCII-escaped, as the store writes it


def cap_info(info: str, cap: int = INFO_CAP) -> str:
    """Truncate ``info`` so its JSON encoding takes at most ``cap`` bytes, marking the cut.

    Counted in encoded bytes, not characters: escapes and multi-byte characters would
    otherwise let a few hundred characters blow a context chunk past its size bound.
    """
    if _json_size(info) <= cap:
        return info
    # The longest prefix that fits, by bisection (an encoded character takes 1 to 12 bytes)
    lo, hi = 0, min(len(info), cap)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _json_size(info[:mid] + "...") <= cap:
            lo = mid
        else:
            hi = mid - 1
    return info[:lo] + "..."


@dataclass(frozen=True)
class TaskResult:
    """What a task's ``run()`` returns: a status, a free-text ``info`` and, when it
    COMPLETED, an optional ``value``: any JSON value (see :mod:`helixpy.model.values`), at
    most 1 MiB as JSON, stored with the attempt's report and read with
    ``TaskDriver.get_task_result``. None means no value."""

    status: TaskStatus
    info: str = ""
    value: Any = None


@dataclass(frozen=True, kw_only=True)
class TaskContextInfo:
    """One task's record in its job context.

    ``state`` is None until the task is first scheduled. ``num_attempts`` counts
    schedulings (Helix counts attempts when a task is scheduled). ``incarnation`` is the
    assigned participant's incarnation, used to recognise stale reports.
    """

    task_id: str
    state: TaskPartitionState | None = None
    num_attempts: int = 0
    assigned_participant: str | None = None
    incarnation: int | None = None
    info: str = ""
    start_time: datetime | None = None
    finish_time: datetime | None = None
    next_retry_time: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.task_id}
        if self.state is not None:
            out["s"] = self.state.value
        if self.num_attempts:
            out["a"] = self.num_attempts
        if self.assigned_participant is not None:
            out["p"] = self.assigned_participant
        if self.incarnation is not None:
            out["n"] = self.incarnation
        if self.info:
            out["i"] = self.info
        for key, value in (
            ("st", self.start_time),
            ("f", self.finish_time),
            ("r", self.next_retry_time),
        ):
            if value is not None:
                out[key] = value.timestamp()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskContextInfo:
        state = data.get("s")
        return cls(
            task_id=str(data["id"]),
            state=TaskPartitionState(state) if state is not None else None,
            num_attempts=int(data.get("a", 0)),
            assigned_participant=data.get("p"),
            incarnation=data.get("n"),
            info=str(data.get("i", "")),
            start_time=from_epoch(data.get("st")),
            finish_time=from_epoch(data.get("f")),
            next_retry_time=from_epoch(data.get("r")),
        )


@dataclass(frozen=True, kw_only=True)
class JobContext:
    """A job's state and its tasks' records, keyed by partition number."""

    state: TaskState = TaskState.NOT_STARTED
    start_time: datetime | None = None
    finish_time: datetime | None = None
    info: str = ""
    tasks: Mapping[int, TaskContextInfo] = field(default_factory=dict)

    def header_dict(self) -> dict[str, Any]:
        """Everything but the tasks (the job's CONTEXT node; tasks live in chunks)."""
        out: dict[str, Any] = {"state": self.state.value}
        if self.start_time is not None:
            out["start"] = self.start_time.timestamp()
        if self.finish_time is not None:
            out["finish"] = self.finish_time.timestamp()
        if self.info:
            out["info"] = self.info
        return out

    @staticmethod
    def header_from_dict(data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "state": TaskState(data.get("state", TaskState.NOT_STARTED.value)),
            "start_time": from_epoch(data.get("start")),
            "finish_time": from_epoch(data.get("finish")),
            "info": str(data.get("info", "")),
        }


@dataclass(frozen=True, kw_only=True)
class WorkflowContext:
    """A workflow's state and its jobs' states (keyed by short job name)."""

    state: TaskState = TaskState.NOT_STARTED
    job_states: Mapping[str, TaskState] = field(default_factory=dict)
    start_time: datetime | None = None
    finish_time: datetime | None = None
    info: str = ""
    #: a recurring template's clones, oldest first (at most 20), and the newest of them
    scheduled_workflows: tuple[str, ...] = ()
    last_scheduled_workflow: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "state": self.state.value,
            "jobs": {k: v.value for k, v in self.job_states.items()},
        }
        if self.scheduled_workflows:
            out["scheduled"] = list(self.scheduled_workflows)
        if self.last_scheduled_workflow is not None:
            out["last_scheduled"] = self.last_scheduled_workflow
        if self.start_time is not None:
            out["start"] = self.start_time.timestamp()
        if self.finish_time is not None:
            out["finish"] = self.finish_time.timestamp()
        if self.info:
            out["info"] = self.info
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorkflowContext:
        return cls(
            state=TaskState(data.get("state", TaskState.NOT_STARTED.value)),
            job_states={k: TaskState(v) for k, v in (data.get("jobs") or {}).items()},
            start_time=from_epoch(data.get("start")),
            finish_time=from_epoch(data.get("finish")),
            info=str(data.get("info", "")),
            scheduled_workflows=tuple(data.get("scheduled") or ()),
            last_scheduled_workflow=data.get("last_scheduled"),
        )


@dataclass(frozen=True, kw_only=True)
class TaskExecutionInfo:
    """Helix's ``TaskExecutionInfo``: the task of a workflow scheduled last (the latest
    ``start_time`` of any of its jobs' tasks), its job, partition, id and state."""

    job: str
    partition: int
    task_id: str
    state: TaskPartitionState | None
    start_time: datetime
