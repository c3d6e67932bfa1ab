"""Task, job and workflow configuration: frozen, keyword-constructed, validated.

Defaults are Helix's (see HELIX-NOTES). Durations are float seconds (``None`` where Helix
uses -1 for "unset"); absolute times are timezone-aware ``datetime`` objects. Each class
validates itself on construction and has ``to_dict`` / ``from_dict`` for the JSON wire and
store formats; ``from_dict`` rejects unknown fields so a typo is an error, not a default.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from helixpy.errors import InvalidConfig
from helixpy.model.locks import TYPE_PRIORITIES, check_priority
from helixpy.model.names import check_name
from helixpy.model.values import JsonValue, check_chunks, check_config

#: Helix's per-instance task thread count: the default participant capacity.
DEFAULT_CAPACITY = 40

JOB_TYPE_PRIORITIES: Mapping[str, int] = TYPE_PRIORITIES


def _check_duration(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise InvalidConfig(name, "is required")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidConfig(name, f"must be a number of seconds (got {value!r})")
    if not math.isfinite(value) or value < 0:
        raise InvalidConfig(name, f"must be a finite number >= 0 seconds (got {value!r})")


def _check_int(name: str, value: object, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(name, f"must be an integer (got {value!r})")
    if value < minimum:
        raise InvalidConfig(name, f"must be >= {minimum} (got {value!r})")


def _stored_size(task: TaskConfig) -> int:
    """A bound on the bytes of a task's stored record: its config's JSON plus room for
    its id, command, partition and the keys (names are plain ASCII, never escaped)."""
    size: int = getattr(task, "_config_bytes", 0)
    return (
        64 + size + len(task.task_id) + len(task.command or "") + len(task.target_partition or "")
    )


def _check_aware(name: str, value: datetime | None) -> None:
    if value is None:
        return
    if not isinstance(value, datetime):
        raise InvalidConfig(name, f"must be a datetime (got {value!r})")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidConfig(name, "must be timezone-aware")


def _check_optional_str(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise InvalidConfig(name, f"must be a string (got {value!r})")


def _parse_time(name: str, value: object) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise InvalidConfig(name, f"must be an ISO-8601 time (got {value!r})") from None
    raise InvalidConfig(name, f"must be an ISO-8601 time (got {value!r})")


def _reject_unknown(prefix: str, data: Mapping[str, Any], cls: type) -> None:
    if not isinstance(data, Mapping):
        raise InvalidConfig(prefix, f"must be a mapping (got {type(data).__name__})")
    known = _field_names(cls)
    for key in data:
        if key not in known:
            raise InvalidConfig(f"{prefix}.{key}", "unknown field")


@dataclass(frozen=True, kw_only=True)
class TaskConfig:
    """One task of a job: an optional command overriding the job's, and its arguments
    (``config``: str keys to JSON values, overlaid on the job's ``command_config``)."""

    command: str | None = None
    id: str | None = None
    target_partition: str | None = None
    config: Mapping[str, JsonValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.id is None:
            object.__setattr__(self, "id", str(uuid.uuid4()))
        check_name("task.id", self.id)
        _check_optional_str("task.command", self.command)
        if self.command is not None and not self.command:
            raise InvalidConfig("task.command", "must not be empty")
        if self.target_partition is not None:
            check_name("task.target_partition", self.target_partition)
        config, size = check_config("task.config", self.config)
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "_config_bytes", size)  # (not a field: for the chunk bound)

    @property
    def task_id(self) -> str:
        """The task's id (never None after construction)."""
        assert self.id is not None
        return self.id

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id}
        if self.command is not None:
            out["command"] = self.command
        if self.target_partition is not None:
            out["target_partition"] = self.target_partition
        if self.config:
            out["config"] = dict(self.config)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "task") -> TaskConfig:
        _reject_unknown(prefix, data, cls)
        try:
            return cls(**data)
        except InvalidConfig as exc:
            raise _reprefix(exc, "task", prefix) from None


@dataclass(frozen=True, kw_only=True)
class JobConfig:
    """A job: ``num_tasks`` copies of ``command``, or an explicit list of ``tasks``."""

    command: str | None = None
    num_tasks: int = 0
    tasks: Sequence[TaskConfig] = ()
    #: the arguments of every task (str keys to JSON values; a task's ``config`` overrides)
    command_config: Mapping[str, JsonValue] = field(default_factory=dict)
    max_attempts_per_task: int = 10
    num_concurrent_tasks_per_instance: int = 1
    failure_threshold: int = 0
    timeout_per_task: float = 3600.0
    #: seconds a cancelled attempt (stop, timeout, delete, disable, abort, move) gets to end
    #: before the participant ends it: a worker process is SIGTERMed, then SIGKILLed; a
    #: thread is abandoned (reported in its cancel's state, its late result ignored)
    cancel_grace: float = 30.0
    timeout: float | None = None
    task_retry_delay: float | None = None
    ignore_dependent_job_failure: bool = False
    execution_delay: float | None = None
    execution_start: datetime | None = None
    instance_group_tag: str | None = None
    job_type: str | None = None
    priority: int | None = None
    expiry: float | None = None
    terminal_state_expiry: float | None = None
    #: targeted jobs: one task per partition of this resource (or of ``target_partitions``),
    #: each run where its partition is hosted in one of ``target_partition_states`` (any
    #: state when empty); the tasks are fixed when the job starts
    target_resource: str | None = None
    target_partitions: Sequence[str] = ()
    target_partition_states: Sequence[str] = ()
    #: "thread" (default) or "process": run the tasks in the participant's worker processes
    isolation: str = "thread"
    #: a streaming job: ``num_tasks`` warm slots (``StreamTask``) fed splits and barriers
    stream: bool = False
    #: task locks: the posse its tasks share (default: the job) and how long ``acquire``
    #: waits by default (seconds)
    lock_group: str | None = None
    lock_timeout: float | None = None
    #: a fan-out job: the name of a parent job. When this job starts, it gets one task per
    #: element of that job's list results (its tasks' lists, in task order), with the
    #: element as task config ``item``; its tasks are fixed then, like a targeted job's
    expand: str | None = None

    def __post_init__(self) -> None:
        _check_optional_str("job.command", self.command)
        if self.command is not None and not self.command:
            raise InvalidConfig("job.command", "must not be empty")
        _check_int("job.num_tasks", self.num_tasks, 0)
        if isinstance(self.tasks, str | bytes) or not isinstance(self.tasks, Sequence):
            raise InvalidConfig("job.tasks", "must be a list of TaskConfig")
        tasks = tuple(self.tasks)
        for i, task in enumerate(tasks):
            if not isinstance(task, TaskConfig):
                raise InvalidConfig(f"job.tasks[{i}]", "must be a TaskConfig")
        object.__setattr__(self, "tasks", tasks)
        object.__setattr__(
            self, "command_config", check_config("job.command_config", self.command_config)[0]
        )
        if any(task.config for task in tasks):
            check_chunks("job.tasks", [_stored_size(task) for task in tasks])
        self._check_targeting(tasks)
        self._check_expand(tasks)
        if tasks:
            if self.num_tasks not in (0, len(tasks)):
                raise InvalidConfig(
                    "job.num_tasks",
                    "must be 0 or equal to the number of tasks when tasks are given",
                )
            seen: set[str] = set()
            for i, task in enumerate(tasks):
                if task.command is None and self.command is None:
                    raise InvalidConfig(
                        f"job.tasks[{i}].command",
                        "every task needs a command (its own or the job's)",
                    )
                if task.task_id in seen:
                    raise InvalidConfig(f"job.tasks[{i}].id", f"duplicate task id {task.id!r}")
                seen.add(task.task_id)
        elif self.target_resource is None and self.expand is None:
            # (a targeted job's tasks come from its resource's partitions when it starts, a
            # fan-out job's from its parent's results)
            if self.num_tasks == 0:
                raise InvalidConfig(
                    "job.tasks",
                    "a job needs at least one task (tasks, or command and num_tasks > 0)",
                )
            if self.command is None:
                raise InvalidConfig("job.command", "is required when num_tasks is used")
        _check_int("job.max_attempts_per_task", self.max_attempts_per_task, 1)
        _check_int(
            "job.num_concurrent_tasks_per_instance", self.num_concurrent_tasks_per_instance, 1
        )
        _check_int("job.failure_threshold", self.failure_threshold, 0)
        _check_duration("job.timeout_per_task", self.timeout_per_task, allow_none=False)
        _check_duration("job.cancel_grace", self.cancel_grace, allow_none=False)
        for name in (
            "timeout",
            "task_retry_delay",
            "execution_delay",
            "expiry",
            "terminal_state_expiry",
        ):
            _check_duration(f"job.{name}", getattr(self, name))
        if not isinstance(self.ignore_dependent_job_failure, bool):
            raise InvalidConfig("job.ignore_dependent_job_failure", "must be a boolean")
        _check_aware("job.execution_start", self.execution_start)
        if self.instance_group_tag is not None:
            check_name("job.instance_group_tag", self.instance_group_tag)
        _check_optional_str("job.job_type", self.job_type)
        if self.priority is not None:
            check_priority("job.priority", self.priority)
        if self.isolation not in ("thread", "process"):
            raise InvalidConfig(
                "job.isolation", f"must be 'thread' or 'process' (got {self.isolation!r})"
            )
        _check_optional_str("job.lock_group", self.lock_group)
        _check_duration("job.lock_timeout", self.lock_timeout)
        if not isinstance(self.stream, bool):
            raise InvalidConfig("job.stream", "must be a boolean")
        if self.stream:
            if tasks or self.num_tasks < 1 or self.command is None:
                raise InvalidConfig(
                    "job.stream", "a streaming job has a command and num_tasks >= 1 (its slots)"
                )
            if self.target_resource is not None or self.isolation != "thread":
                raise InvalidConfig(
                    "job.stream", "a streaming job is neither targeted nor process-isolated"
                )

    def _check_expand(self, tasks: tuple[TaskConfig, ...]) -> None:
        if self.expand is None:
            return
        check_name("job.expand", self.expand)
        if self.command is None:
            raise InvalidConfig("job.command", "is required for a fan-out job (expand)")
        if self.num_tasks and not tasks:
            raise InvalidConfig(
                "job.num_tasks", "must be 0 for a fan-out job (one task per parent element)"
            )
        if self.target_resource is not None or self.stream:
            raise InvalidConfig("job.expand", "a fan-out job is neither targeted nor streaming")
        if tasks and any(t.command is not None or "item" not in t.config for t in tasks):
            # The stored form once started: the tasks it fanned out to.
            raise InvalidConfig("job.tasks", "a fan-out job's tasks are made when it starts")

    def _check_targeting(self, tasks: tuple[TaskConfig, ...]) -> None:
        for name in ("target_partitions", "target_partition_states"):
            value = getattr(self, name)
            if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                raise InvalidConfig(f"job.{name}", "must be a list of names")
            items = tuple(value)
            for i, item in enumerate(items):
                check_name(f"job.{name}[{i}]", item)
            if len(set(items)) != len(items):
                raise InvalidConfig(f"job.{name}", "must not repeat a name")
            object.__setattr__(self, name, items)
        if self.target_resource is None:
            for name in ("target_partitions", "target_partition_states"):
                if getattr(self, name):
                    raise InvalidConfig(f"job.{name}", "requires job.target_resource")
            for i, task in enumerate(tasks):
                if task.target_partition is not None:
                    raise InvalidConfig(
                        f"job.tasks[{i}].target_partition", "requires job.target_resource"
                    )
            return
        check_name("job.target_resource", self.target_resource)
        if self.num_tasks:
            raise InvalidConfig(
                "job.num_tasks", "must be 0 for a targeted job (one task per target partition)"
            )
        if not tasks:
            if self.command is None:
                raise InvalidConfig("job.command", "is required for a targeted job")
            return
        # The stored form once started: one task per partition, each naming its partition.
        if self.target_partitions:
            raise InvalidConfig(
                "job.target_partitions", "give target_partitions or tasks, not both"
            )
        for i, task in enumerate(tasks):
            if task.target_partition is None:
                raise InvalidConfig(
                    f"job.tasks[{i}].target_partition",
                    "every task of a targeted job names its target partition",
                )

    @property
    def is_targeted(self) -> bool:
        """Whether tasks follow the partitions of ``target_resource``."""
        return self.target_resource is not None

    @property
    def task_count(self) -> int:
        """How many tasks (partitions) the job has."""
        return len(self.tasks) if self.tasks else self.num_tasks

    def task_id(self, partition: int) -> str:
        """The id of the task in ``partition``: its TaskConfig's id, else the partition."""
        if self.tasks:
            return self.tasks[partition].task_id
        return str(partition)

    def task_command(self, partition: int) -> str:
        """The command that runs ``partition``: the task's own, else the job's."""
        if self.tasks and self.tasks[partition].command is not None:
            cmd = self.tasks[partition].command
        else:
            cmd = self.command
        assert cmd is not None
        return cmd

    def effective_priority(self) -> int:
        """The lock priority: ``priority``, else the ``job_type`` default, else 0."""
        if self.priority is not None:
            return self.priority
        return JOB_TYPE_PRIORITIES.get((self.job_type or "").lower(), 0)

    def to_dict(self, *, include_tasks: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, default in _field_defaults(type(self)):
            value = getattr(self, name)
            if name == "tasks":
                if include_tasks and value:
                    out["tasks"] = [t.to_dict() for t in value]
                continue
            if value == default:
                continue
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Mapping):
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "job") -> JobConfig:
        _reject_unknown(prefix, data, cls)
        kwargs = dict(data)
        raw_tasks = kwargs.pop("tasks", None) or []
        if not isinstance(raw_tasks, list):
            raise InvalidConfig(f"{prefix}.tasks", "must be a list")
        kwargs["tasks"] = [
            TaskConfig.from_dict(t, f"{prefix}.tasks[{i}]") for i, t in enumerate(raw_tasks)
        ]
        kwargs["execution_start"] = _parse_time(
            f"{prefix}.execution_start", kwargs.get("execution_start")
        )
        try:
            return cls(**kwargs)
        except InvalidConfig as exc:
            raise _reprefix(exc, "job", prefix) from None


@dataclass(frozen=True, kw_only=True)
class ScheduleConfig:
    """When a workflow runs: once at ``start_time``, or every ``recurrence_interval`` seconds.

    A recurring workflow is a *template*: at each period boundary (``start_time`` plus a
    whole number of intervals) the controller clones it into ``<name>_<yyyyMMddTHHmmss>``,
    but only once the previous clone has finished. The cluster setting
    ``min_recurrence_interval`` (default 60 s) bounds the interval from below.
    """

    start_time: datetime | None = None
    recurrence_interval: float | None = None

    def __post_init__(self) -> None:
        _check_aware("schedule.start_time", self.start_time)
        _check_duration("schedule.recurrence_interval", self.recurrence_interval)
        if self.recurrence_interval is not None and self.recurrence_interval <= 0:
            raise InvalidConfig("schedule.recurrence_interval", "must be > 0 seconds")
        if self.start_time is None and self.recurrence_interval is None:
            raise InvalidConfig("schedule", "needs a start_time, a recurrence_interval or both")

    @classmethod
    def one_time_delayed_start(cls, when: datetime) -> ScheduleConfig:
        """Run once, not before ``when``."""
        return cls(start_time=when)

    @classmethod
    def recurring_from_now(cls, interval: float) -> ScheduleConfig:
        """Run every ``interval`` seconds, starting now."""
        return cls(start_time=datetime.now(UTC), recurrence_interval=interval)

    @classmethod
    def recurring_from_date(cls, start: datetime, interval: float) -> ScheduleConfig:
        """Run every ``interval`` seconds from ``start``."""
        return cls(start_time=start, recurrence_interval=interval)

    @property
    def is_recurring(self) -> bool:
        """Every ``recurrence_interval`` seconds (else a one-time delayed start)."""
        return self.recurrence_interval is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.start_time is not None:
            out["start_time"] = self.start_time.isoformat()
        if self.recurrence_interval is not None:
            out["recurrence_interval"] = self.recurrence_interval
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "schedule") -> ScheduleConfig:
        _reject_unknown(prefix, data, cls)
        kwargs = dict(data)
        kwargs["start_time"] = _parse_time(f"{prefix}.start_time", kwargs.get("start_time"))
        try:
            return cls(**kwargs)
        except InvalidConfig as exc:
            raise _reprefix(exc, "schedule", prefix) from None


@dataclass(frozen=True, kw_only=True)
class WorkflowConfig:
    """Workflow-wide settings. Never touches the DAG (that is the ``Workflow``'s)."""

    failure_threshold: int = 0
    expiry: float = 86400.0
    timeout: float | None = None
    parallel_jobs: int = 1
    capacity: int | None = None
    terminable: bool = True
    job_purge_interval: float = 1800.0
    workflow_type: str | None = None
    target_state: str = "START"
    schedule: ScheduleConfig | None = None
    #: Helix's AllowOverlapJobAssignment: whether a job's tasks may go to an instance that
    #: runs tasks of another in-progress job of this workflow (False, Helix's default:
    #: jobs running at once use separate instances)
    allow_overlap_job_assignment: bool = False

    def __post_init__(self) -> None:
        if self.schedule is not None and not isinstance(self.schedule, ScheduleConfig):
            raise InvalidConfig("workflow.schedule", "must be a ScheduleConfig")
        _check_int("workflow.failure_threshold", self.failure_threshold, 0)
        _check_duration("workflow.expiry", self.expiry, allow_none=False)
        _check_duration("workflow.timeout", self.timeout)
        _check_int("workflow.parallel_jobs", self.parallel_jobs, 1)
        if self.capacity is not None:
            _check_int("workflow.capacity", self.capacity, 1)
        if not isinstance(self.terminable, bool):
            raise InvalidConfig("workflow.terminable", "must be a boolean")
        if not isinstance(self.allow_overlap_job_assignment, bool):
            raise InvalidConfig("workflow.allow_overlap_job_assignment", "must be a boolean")
        _check_duration("workflow.job_purge_interval", self.job_purge_interval, allow_none=False)
        _check_optional_str("workflow.workflow_type", self.workflow_type)
        if self.target_state not in ("START", "STOP", "DELETE"):
            raise InvalidConfig(
                "workflow.target_state",
                f"must be START, STOP or DELETE (got {self.target_state!r})",
            )

    @property
    def is_recurring(self) -> bool:
        """Whether this is a recurring template's config (its clones run, it does not)."""
        return self.schedule is not None and self.schedule.is_recurring

    def to_dict(self) -> dict[str, Any]:
        out = {
            name: getattr(self, name)
            for name, default in _field_defaults(type(self))
            if getattr(self, name) != default
        }
        if self.schedule is not None:
            out["schedule"] = self.schedule.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], prefix: str = "workflow") -> WorkflowConfig:
        _reject_unknown(prefix, data, cls)
        kwargs = dict(data)
        if kwargs.get("schedule") is not None:
            kwargs["schedule"] = ScheduleConfig.from_dict(kwargs["schedule"], f"{prefix}.schedule")
        try:
            return cls(**kwargs)
        except InvalidConfig as exc:
            raise _reprefix(exc, "workflow", prefix) from None


# Memo of _field_defaults per dataclass: a pure function of the class, filled on first use.
_DEFAULTS: dict[type, tuple[tuple[str, Any], ...]] = {}
_NAMES: dict[type, frozenset[str]] = {}


def _field_defaults(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field of dataclass ``cls`` with its default value (a factory called once: the
    value is only compared with, never handed out). Computed once per class: ``fields()``
    and the factories cost more than the rest of a small config's ``to_dict``."""
    found = _DEFAULTS.get(cls)
    if found is None:
        out = []
        for f in fields(cls):
            if f.default is not MISSING:
                default: Any = f.default
            elif f.default_factory is not MISSING:
                default = f.default_factory()
            else:
                default = MISSING
            out.append((f.name, default))
        found = _DEFAULTS[cls] = tuple(out)
    return found


def _field_names(cls: type) -> frozenset[str]:
    found = _NAMES.get(cls)
    if found is None:
        found = _NAMES[cls] = frozenset(name for name, _ in _field_defaults(cls))
    return found


def _reprefix(exc: InvalidConfig, old: str, new: str) -> InvalidConfig:
    """Re-root a field path (``job.x`` -> ``jobs.etl.x``) so errors name the real place."""
    name = exc.field
    if new != old and (name == old or name.startswith(old + ".") or name.startswith(old + "[")):
        name = new + name[len(old) :]
    return InvalidConfig(name, exc.rule)
