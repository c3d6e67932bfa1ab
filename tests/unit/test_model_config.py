"""Unit tests for the config model: defaults, validation rules, names, frozenness, enums.

Every validation rule has a test that asserts ``InvalidConfig``, the exact ``field`` it
names, and words of the rule in its message, so breaking (or renaming) a rule fails a test.
"""

from __future__ import annotations

import dataclasses
import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from helixpy.errors import HelixpyError, InvalidConfig
from helixpy.model import (
    JobConfig,
    Scope,
    TaskConfig,
    TaskContextInfo,
    TaskPartitionState,
    TaskResult,
    TaskState,
    TaskStatus,
    Workflow,
    WorkflowConfig,
    WorkflowContext,
    check_name,
    is_valid_name,
)
from tests.unit.strategies import NAME_ALPHABET, PROPERTY, expect_invalid, names


def job(**overrides: object) -> JobConfig:
    """A valid job (one task of command ``X``) with ``overrides`` applied."""
    kwargs: dict[str, object] = {"command": "X", "num_tasks": 1}
    kwargs.update(overrides)
    return JobConfig(**kwargs)  # type: ignore[arg-type]


class _NoOffset(tzinfo):
    """A tzinfo that does not know its offset: the datetime is effectively naive."""

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, dt: datetime | None) -> str | None:
        return None


# --------------------------------------------------------------------------- errors


def test_invalid_config_carries_field_and_rule() -> None:
    # Given an InvalidConfig
    exc = InvalidConfig("job.max_attempts_per_task", "must be >= 1")
    # Then it is a HelixpyError and a ValueError whose str reads "field: rule"
    assert isinstance(exc, HelixpyError)
    assert isinstance(exc, ValueError)
    assert exc.field == "job.max_attempts_per_task"
    assert exc.rule == "must be >= 1"
    assert str(exc) == "job.max_attempts_per_task: must be >= 1"


# --------------------------------------------------------------------------- TaskConfig


def test_task_config_defaults() -> None:
    # When a TaskConfig is built with no arguments
    task = TaskConfig()
    # Then command and target_partition are None, config is empty, and id was generated
    assert task.command is None
    assert task.target_partition is None
    assert task.config == {}
    assert task.id is not None


def test_task_config_id_becomes_a_uuid_when_none() -> None:
    # Given two tasks built without ids
    first, second = TaskConfig(), TaskConfig(id=None)
    # Then each id is a (distinct) uuid, usable as the task id
    assert isinstance(first.id, str)
    assert str(uuid.UUID(first.id)) == first.id
    assert str(uuid.UUID(second.task_id)) == second.id
    assert first.id != second.id


def test_task_config_keeps_a_given_id() -> None:
    # When a task is given an id
    task = TaskConfig(id="t-1", command="C", target_partition="p0", config={"k": "v"})
    # Then every field is kept as given
    assert (task.id, task.command, task.target_partition) == ("t-1", "C", "p0")
    assert task.config == {"k": "v"}
    assert task.task_id == "t-1"


@pytest.mark.parametrize("bad_id", ["", "a b", "a/b", ".", "..", "x" * 129, "é"])
def test_task_config_rejects_an_invalid_id(bad_id: str) -> None:
    # When a task id breaks the name rule, Then it is rejected naming task.id
    with expect_invalid("task.id", "1-128 characters"):
        TaskConfig(id=bad_id)


@pytest.mark.parametrize(
    ("config", "field", "word"),
    [
        ({1: "v"}, "task.config.1", "strings"),
        ({b"k": "v"}, "task.config.b'k'", "strings"),
        ({"k": {2: "v"}}, "task.config.k.2", "strings"),
        ({"k": b"v"}, "task.config.k", "JSON value"),
        ({"k": {1, 2}}, "task.config.k", "JSON value"),
        ({"k": [1, object()]}, "task.config.k[1]", "JSON value"),
        ({"k": float("nan")}, "task.config.k", "finite"),
        ({"k": {"x": float("inf")}}, "task.config.k.x", "finite"),
    ],
)
def test_task_config_keys_are_strings_and_values_json(
    config: dict[object, object], field: str, word: str
) -> None:
    # When a task's config has a non-string key or a value JSON cannot carry,
    # Then the innermost offending entry is named
    with expect_invalid(field, word):
        TaskConfig(config=config)  # type: ignore[arg-type]


def test_typed_configs_keep_their_values_through_json() -> None:
    # Given values of every JSON type (a tuple becomes a list)
    given = {"n": 3, "x": 0.5, "ok": True, "none": None, "ids": (1, 2), "m": {"a": [{"b": "c"}]}}
    task = TaskConfig(id="t", config=given)
    job = JobConfig(command="C", command_config={"limit": 10, "tags": ["a"]}, num_tasks=1)
    # Then they are kept as given, and survive the wire and store form unchanged
    assert task.config == {**given, "ids": [1, 2]}
    assert TaskConfig.from_dict(json.loads(json.dumps(task.to_dict()))) == task
    assert JobConfig.from_dict(json.loads(json.dumps(job.to_dict()))) == job
    # and plain string configs are what they always were
    assert TaskConfig(id="s", config={"k": "v"}).config == {"k": "v"}


def test_configs_are_bounded_in_depth_and_size() -> None:
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with expect_invalid("job.command_config.d" + "[0]" * 32, "deep"):
        JobConfig(command="C", num_tasks=1, command_config={"d": deep})
    with expect_invalid("task.config", "65536-byte limit"):
        TaskConfig(config={"k": "x" * 70_000})
    # and two hundred tasks of 1 KB configs would not fit one stored chunk
    tasks = [TaskConfig(id=f"t{i}", config={"k": "x" * 1_000}) for i in range(250)]
    with expect_invalid("job.tasks[0:200]", "one chunk of 200 task configs"):
        JobConfig(command="C", tasks=tasks)
    fits = [TaskConfig(id=f"t{i}", config={"k": "x" * 500}) for i in range(250)]
    assert len(JobConfig(command="C", tasks=fits).tasks) == 250


@pytest.mark.parametrize("config", [None, ["k", "v"], "k=v"])
def test_task_config_map_must_be_a_mapping(config: object) -> None:
    # When a task's config is not a mapping, Then it is rejected naming task.config
    with expect_invalid("task.config", "mapping"):
        TaskConfig(config=config)  # type: ignore[arg-type]


def test_task_config_rejects_an_empty_or_non_string_command() -> None:
    # When a task's command is empty or not a string, Then it is rejected
    with expect_invalid("task.command", "empty"):
        TaskConfig(command="")
    with expect_invalid("task.command", "string"):
        TaskConfig(command=3)  # type: ignore[arg-type]


def test_task_config_target_partition_must_be_a_name() -> None:
    with expect_invalid("task.target_partition", "1-128 characters"):
        TaskConfig(target_partition=0)  # type: ignore[arg-type]
    with expect_invalid("task.target_partition", "1-128 characters"):
        TaskConfig(target_partition="db/0")


def test_task_config_copies_its_config_map() -> None:
    # Given a mutable map used to build a task
    source = {"k": "v"}
    task = TaskConfig(config=source)
    # When the caller later changes it
    source["k"] = "changed"
    # Then the task is unaffected
    assert task.config == {"k": "v"}


# --------------------------------------------------------------------------- JobConfig


def test_job_config_defaults() -> None:
    # Given the fields that are not defaulted in a valid job (a job needs a task)
    cfg = JobConfig(command="X", num_tasks=1)
    # Then every other field has Helix's default
    assert list(cfg.tasks) == []
    assert cfg.command_config == {}
    assert cfg.max_attempts_per_task == 10
    assert cfg.num_concurrent_tasks_per_instance == 1
    assert cfg.failure_threshold == 0
    assert cfg.timeout_per_task == 3600.0
    assert cfg.timeout is None
    assert cfg.task_retry_delay is None
    assert cfg.ignore_dependent_job_failure is False
    assert cfg.execution_delay is None
    assert cfg.execution_start is None
    assert cfg.instance_group_tag is None
    assert cfg.job_type is None
    assert cfg.priority is None
    assert cfg.expiry is None
    assert cfg.terminal_state_expiry is None


def test_job_config_without_any_task_is_rejected() -> None:
    # When a job has neither tasks nor num_tasks, Then it is rejected naming job.tasks
    with expect_invalid("job.tasks", "at least one task"):
        JobConfig()
    with expect_invalid("job.tasks", "at least one task"):
        JobConfig(command="X")
    with expect_invalid("job.tasks", "at least one task"):
        JobConfig(command="X", num_tasks=0, tasks=[])


def test_job_config_num_tasks_needs_a_command() -> None:
    # When num_tasks is used without a job command, Then job.command is named
    with expect_invalid("job.command", "required"):
        JobConfig(num_tasks=3)


def test_job_config_with_command_and_num_tasks() -> None:
    # When a job has a command and num_tasks, Then each partition runs that command
    cfg = JobConfig(command="X", num_tasks=3)
    assert cfg.task_count == 3
    assert [cfg.task_id(p) for p in range(3)] == ["0", "1", "2"]
    assert {cfg.task_command(p) for p in range(3)} == {"X"}


def test_job_config_with_explicit_tasks_uses_their_commands() -> None:
    # Given a job without a command whose tasks have their own
    cfg = JobConfig(tasks=[TaskConfig(id="a", command="A"), TaskConfig(id="b", command="B")])
    # Then the job has those tasks, in order, each with its own command
    assert cfg.task_count == 2
    assert [cfg.task_id(p) for p in range(2)] == ["a", "b"]
    assert [cfg.task_command(p) for p in range(2)] == ["A", "B"]
    assert isinstance(cfg.tasks, tuple | list)


def test_job_config_task_without_command_uses_the_jobs() -> None:
    # Given a job command and one task without its own
    cfg = JobConfig(command="J", tasks=[TaskConfig(id="a"), TaskConfig(id="b", command="B")])
    # Then the command-less task runs the job's command
    assert [cfg.task_command(p) for p in range(2)] == ["J", "B"]


def test_job_config_every_task_needs_a_command() -> None:
    # When a task has no command and neither has the job, Then that task is named
    with expect_invalid("job.tasks[1].command", "command"):
        JobConfig(tasks=[TaskConfig(id="a", command="A"), TaskConfig(id="b")])


def test_job_config_rejects_duplicate_task_ids() -> None:
    # When two tasks share an id, Then the second is named and the rule says duplicate
    with expect_invalid("job.tasks[2].id", "duplicate", "'a'"):
        JobConfig(
            command="X",
            tasks=[TaskConfig(id="a"), TaskConfig(id="b"), TaskConfig(id="a")],
        )


def test_job_config_num_tasks_must_match_explicit_tasks() -> None:
    # Given two explicit tasks
    tasks = [TaskConfig(id="a"), TaskConfig(id="b")]
    # Then num_tasks 0 or 2 is accepted and anything else rejected
    assert JobConfig(command="X", tasks=tasks, num_tasks=2).task_count == 2
    assert JobConfig(command="X", tasks=tasks, num_tasks=0).task_count == 2
    with expect_invalid("job.num_tasks", "number of tasks"):
        JobConfig(command="X", tasks=tasks, num_tasks=3)


@pytest.mark.parametrize("tasks", ["ab", b"ab", 3, [{"id": "a"}]])
def test_job_config_tasks_must_be_task_configs(tasks: object) -> None:
    with pytest.raises(InvalidConfig) as info:
        JobConfig(command="X", tasks=tasks)  # type: ignore[arg-type]
    assert info.value.field in ("job.tasks", "job.tasks[0]")
    assert "TaskConfig" in info.value.rule


def test_job_config_stores_tasks_immutably() -> None:
    # Given a list used to build a job
    source = [TaskConfig(id="a")]
    cfg = JobConfig(command="X", tasks=source)
    # When the caller appends to it, Then the job still has one task
    source.append(TaskConfig(id="b"))
    assert cfg.task_count == 1


def test_job_config_num_tasks_must_be_a_non_negative_integer() -> None:
    with expect_invalid("job.num_tasks", ">= 0"):
        JobConfig(command="X", num_tasks=-1)
    with expect_invalid("job.num_tasks", "integer"):
        JobConfig(command="X", num_tasks=True)
    with expect_invalid("job.num_tasks", "integer"):
        JobConfig(command="X", num_tasks=2.0)  # type: ignore[arg-type]


def test_job_config_rejects_an_empty_command() -> None:
    with expect_invalid("job.command", "empty"):
        JobConfig(command="", num_tasks=1)


JOB_DURATIONS = [
    "timeout_per_task",
    "cancel_grace",
    "timeout",
    "task_retry_delay",
    "execution_delay",
    "expiry",
    "terminal_state_expiry",
]


@pytest.mark.parametrize("name", JOB_DURATIONS)
@pytest.mark.parametrize("value", [-1, -0.001, -math.inf])
def test_job_config_durations_must_not_be_negative(name: str, value: float) -> None:
    # When a duration is negative, Then it is rejected naming it and the >= 0 rule
    with expect_invalid(f"job.{name}", ">= 0"):
        job(**{name: value})


@pytest.mark.parametrize("name", JOB_DURATIONS)
def test_job_config_durations_reject_nan(name: str) -> None:
    with expect_invalid(f"job.{name}", ">= 0"):
        job(**{name: math.nan})


@pytest.mark.parametrize("name", JOB_DURATIONS)
@pytest.mark.parametrize("value", [True, False, "10", [1]])
def test_job_config_durations_must_be_numbers(name: str, value: object) -> None:
    # When a duration is a bool or not a number, Then it is rejected
    with expect_invalid(f"job.{name}", "number of seconds"):
        job(**{name: value})


@pytest.mark.parametrize("name", JOB_DURATIONS)
@pytest.mark.parametrize("value", [0, 0.0, 1, 2.5, 10**9])
def test_job_config_durations_accept_zero_and_positive(name: str, value: float) -> None:
    assert getattr(job(**{name: value}), name) == value


REQUIRED_DURATIONS = ("timeout_per_task", "cancel_grace")


@pytest.mark.parametrize("name", [n for n in JOB_DURATIONS if n not in REQUIRED_DURATIONS])
def test_job_config_optional_durations_accept_none(name: str) -> None:
    assert getattr(job(**{name: None}), name) is None


@pytest.mark.parametrize("name", REQUIRED_DURATIONS)
def test_job_config_required_durations_refuse_none(name: str) -> None:
    with expect_invalid(f"job.{name}", "required"):
        job(**{name: None})


def test_job_config_cancel_grace_defaults_to_30_seconds_and_round_trips() -> None:
    assert job().cancel_grace == 30.0
    assert "cancel_grace" not in job().to_dict()  # the default is not stored
    assert JobConfig.from_dict(job(cancel_grace=2.5).to_dict()).cancel_grace == 2.5


@pytest.mark.parametrize(
    ("name", "minimum"),
    [
        ("max_attempts_per_task", 1),
        ("num_concurrent_tasks_per_instance", 1),
        ("failure_threshold", 0),
        ("priority", 0),
    ],
)
def test_job_config_integer_minimums(name: str, minimum: int) -> None:
    # Given an integer field and its minimum
    # Then the minimum is accepted and one below it is rejected, naming the rule
    assert getattr(job(**{name: minimum}), name) == minimum
    with expect_invalid(f"job.{name}", f">= {minimum}"):
        job(**{name: minimum - 1})
    with expect_invalid(f"job.{name}", f">= {minimum}"):
        job(**{name: -100})


@pytest.mark.parametrize(
    "name",
    ["max_attempts_per_task", "num_concurrent_tasks_per_instance", "failure_threshold", "priority"],
)
@pytest.mark.parametrize("value", [True, 1.5, 2.0, "3"])
def test_job_config_integer_fields_must_be_integers(name: str, value: object) -> None:
    with expect_invalid(f"job.{name}", "integer"):
        job(**{name: value})


def test_job_config_max_attempts_per_task_of_zero_is_rejected() -> None:
    # The rule named in the issue: at least one attempt per task
    with expect_invalid("job.max_attempts_per_task", ">= 1", "got 0"):
        job(max_attempts_per_task=0)


def test_job_config_concurrency_of_zero_is_rejected() -> None:
    with expect_invalid("job.num_concurrent_tasks_per_instance", ">= 1"):
        job(num_concurrent_tasks_per_instance=0)


def test_job_config_execution_start_must_be_timezone_aware() -> None:
    # When execution_start is naive, Then it is rejected naming the timezone rule
    with expect_invalid("job.execution_start", "timezone-aware"):
        job(execution_start=datetime(2030, 1, 1))
    # And a tzinfo that gives no offset counts as naive
    with expect_invalid("job.execution_start", "timezone-aware"):
        job(execution_start=datetime(2030, 1, 1, tzinfo=_NoOffset()))


def test_job_config_execution_start_must_be_a_datetime() -> None:
    with expect_invalid("job.execution_start", "datetime"):
        job(execution_start="2030-01-01T00:00:00+00:00")


@pytest.mark.parametrize("tz", [UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9))])
def test_job_config_execution_start_accepts_any_aware_time(tz: timezone) -> None:
    start = datetime(2030, 1, 1, 12, tzinfo=tz)
    assert job(execution_start=start).execution_start == start


def test_job_config_ignore_dependent_job_failure_must_be_a_boolean() -> None:
    assert job(ignore_dependent_job_failure=True).ignore_dependent_job_failure is True
    with expect_invalid("job.ignore_dependent_job_failure", "boolean"):
        job(ignore_dependent_job_failure=1)


def test_job_config_command_config_maps_strings_to_json_values() -> None:
    assert job(command_config={"a": "b"}).command_config == {"a": "b"}
    assert job(command_config={"a": 1, "b": [None]}).command_config == {"a": 1, "b": [None]}
    with expect_invalid("job.command_config.a", "JSON value"):
        job(command_config={"a": b"1"})
    with expect_invalid("job.command_config", "mapping"):
        job(command_config=["a"])


def test_job_config_instance_group_tag_follows_the_name_rule() -> None:
    assert job(instance_group_tag="gpu-1").instance_group_tag == "gpu-1"
    with expect_invalid("job.instance_group_tag", "1-128 characters"):
        job(instance_group_tag="gpu 1")


def test_job_config_job_type_must_be_a_string() -> None:
    with expect_invalid("job.job_type", "string"):
        job(job_type=3)


@pytest.mark.parametrize(
    ("job_type", "priority", "expected"),
    [
        (None, None, 0),
        ("realtime", None, 75),
        ("batch", None, 50),
        ("compaction", None, 25),
        ("other", None, 0),
        ("batch", 7, 7),
        (None, 0, 0),
    ],
)
def test_job_config_effective_priority(
    job_type: str | None, priority: int | None, expected: int
) -> None:
    # Given a job type and an optional priority, Then priority wins, else the type default
    assert job(job_type=job_type, priority=priority).effective_priority() == expected


# --------------------------------------------------------------------------- WorkflowConfig


def test_workflow_config_defaults() -> None:
    # When a WorkflowConfig is built with no arguments, Then it has Helix's defaults
    cfg = WorkflowConfig()
    assert cfg.failure_threshold == 0
    assert cfg.expiry == 86400.0
    assert cfg.timeout is None
    assert cfg.parallel_jobs == 1
    assert cfg.capacity is None
    assert cfg.terminable is True
    assert cfg.job_purge_interval == 1800.0
    assert cfg.workflow_type is None
    assert cfg.target_state == "START"


@pytest.mark.parametrize("name", ["expiry", "timeout", "job_purge_interval"])
@pytest.mark.parametrize("value", [-1, -0.5, math.nan])
def test_workflow_config_durations_must_be_non_negative(name: str, value: float) -> None:
    with expect_invalid(f"workflow.{name}", ">= 0"):
        WorkflowConfig(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["expiry", "timeout", "job_purge_interval"])
@pytest.mark.parametrize("value", [True, "1"])
def test_workflow_config_durations_must_be_numbers(name: str, value: object) -> None:
    with expect_invalid(f"workflow.{name}", "number of seconds"):
        WorkflowConfig(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["expiry", "timeout", "job_purge_interval"])
def test_workflow_config_durations_accept_zero(name: str) -> None:
    assert getattr(WorkflowConfig(**{name: 0}), name) == 0  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["expiry", "job_purge_interval"])
def test_workflow_config_required_durations_reject_none(name: str) -> None:
    with expect_invalid(f"workflow.{name}", "required"):
        WorkflowConfig(**{name: None})  # type: ignore[arg-type]


def test_workflow_config_timeout_accepts_none() -> None:
    assert WorkflowConfig(timeout=None).timeout is None


@pytest.mark.parametrize(
    ("name", "minimum"),
    [("failure_threshold", 0), ("parallel_jobs", 1), ("capacity", 1)],
)
def test_workflow_config_integer_minimums(name: str, minimum: int) -> None:
    assert getattr(WorkflowConfig(**{name: minimum}), name) == minimum  # type: ignore[arg-type]
    with expect_invalid(f"workflow.{name}", f">= {minimum}"):
        WorkflowConfig(**{name: minimum - 1})  # type: ignore[arg-type]
    with expect_invalid(f"workflow.{name}", "integer"):
        WorkflowConfig(**{name: True})  # type: ignore[arg-type]
    with expect_invalid(f"workflow.{name}", "integer"):
        WorkflowConfig(**{name: 2.5})  # type: ignore[arg-type]


def test_workflow_config_capacity_accepts_none() -> None:
    assert WorkflowConfig(capacity=None).capacity is None


def test_workflow_config_terminable_must_be_a_boolean() -> None:
    assert WorkflowConfig(terminable=False).terminable is False
    with expect_invalid("workflow.terminable", "boolean"):
        WorkflowConfig(terminable=0)  # type: ignore[arg-type]


def test_workflow_config_workflow_type_must_be_a_string() -> None:
    assert WorkflowConfig(workflow_type="etl").workflow_type == "etl"
    with expect_invalid("workflow.workflow_type", "string"):
        WorkflowConfig(workflow_type=1)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", ["START", "STOP", "DELETE"])
def test_workflow_config_target_state_accepts_known_states(state: str) -> None:
    assert WorkflowConfig(target_state=state).target_state == state


@pytest.mark.parametrize("state", ["start", "PAUSE", "", None])
def test_workflow_config_target_state_rejects_others(state: object) -> None:
    with expect_invalid("workflow.target_state", "START, STOP or DELETE"):
        WorkflowConfig(target_state=state)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- names

INVALID_CHARS = st.characters(exclude_categories=()).filter(lambda c: c not in NAME_ALPHABET)


@PROPERTY
@given(names)
def test_valid_names_are_accepted_everywhere(name: str) -> None:
    # Given any 1-128 character name of [A-Za-z0-9._-] other than "." and ".."
    # Then it names an instance, a task, a job and a workflow
    assert is_valid_name(name)
    assert check_name("instance.name", name) == name
    assert TaskConfig(id=name).id == name
    wf = Workflow.builder(name).add_job(name, JobConfig(command="X", num_tasks=1)).build()
    assert wf.name == name
    assert list(wf.jobs) == [name]


@PROPERTY
@given(
    st.text(NAME_ALPHABET, max_size=60),
    INVALID_CHARS,
    st.text(NAME_ALPHABET, max_size=60),
)
def test_names_with_any_other_character_are_rejected(prefix: str, bad: str, suffix: str) -> None:
    # Given a name of the right length with one character outside the alphabet
    name = prefix + bad + suffix
    # Then every kind of name rejects it, naming its field
    assert not is_valid_name(name)
    with expect_invalid("instance.name", "1-128 characters"):
        check_name("instance.name", name)
    with expect_invalid("task.id", "1-128 characters"):
        TaskConfig(id=name)
    with expect_invalid("job.name", "1-128 characters"):
        Workflow.builder("wf").add_job(name, JobConfig(command="X", num_tasks=1))
    with expect_invalid("workflow.name", "1-128 characters"):
        Workflow.builder(name).build()


@PROPERTY
@given(st.text(NAME_ALPHABET, min_size=129, max_size=300))
def test_names_longer_than_128_are_rejected(name: str) -> None:
    assume(name not in (".", ".."))
    assert not is_valid_name(name)
    with expect_invalid("task.id", "1-128"):
        TaskConfig(id=name)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        (".", False),
        ("..", False),
        ("...", True),
        (".a", True),
        ("-", True),
        ("_", True),
        ("A-z.0_9", True),
        ("a\n", False),
        ("\na", False),
        ("a b", False),
        ("a/b", False),
        ("ä", False),
    ],
)
def test_name_boundaries(name: str, valid: bool) -> None:
    # Given a name at a boundary of the rule, Then is_valid_name and check_name agree
    assert is_valid_name(name) is valid
    if valid:
        assert check_name("instance.name", name) == name
    else:
        with expect_invalid("instance.name", "1-128 characters", "not '.' or '..'"):
            check_name("instance.name", name)


@pytest.mark.parametrize("name", [None, 1, b"abc", ["a"]])
def test_non_string_names_are_rejected(name: object) -> None:
    assert not is_valid_name(name)
    with expect_invalid("workflow.name", "1-128 characters"):
        check_name("workflow.name", name)


# --------------------------------------------------------------------------- frozen


FROZEN_OBJECTS = [
    pytest.param(TaskConfig(id="t"), "command", id="TaskConfig"),
    pytest.param(JobConfig(command="X", num_tasks=1), "max_attempts_per_task", id="JobConfig"),
    pytest.param(WorkflowConfig(), "expiry", id="WorkflowConfig"),
    pytest.param(
        Workflow.builder("w").add_job("a", JobConfig(command="X", num_tasks=1)).build(),
        "name",
        id="Workflow",
    ),
    pytest.param(TaskResult(TaskStatus.COMPLETED), "info", id="TaskResult"),
    pytest.param(TaskContextInfo(task_id="t"), "num_attempts", id="TaskContextInfo"),
    pytest.param(WorkflowContext(), "state", id="WorkflowContext"),
]


@pytest.mark.parametrize(("obj", "attribute"), FROZEN_OBJECTS)
def test_model_objects_are_frozen(obj: object, attribute: str) -> None:
    # Given a model object
    before = getattr(obj, attribute)
    # When an attribute is assigned, Then it raises and the value is unchanged
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(obj, attribute, "changed")
    with pytest.raises(dataclasses.FrozenInstanceError):
        obj.new_attribute = 1  # type: ignore[attr-defined]
    assert getattr(obj, attribute) == before


def test_configs_are_keyword_only() -> None:
    # When a config is built with positional arguments, Then it is refused
    with pytest.raises(TypeError):
        JobConfig("X", 1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        TaskConfig("X")  # type: ignore[misc]
    with pytest.raises(TypeError):
        WorkflowConfig(0)  # type: ignore[misc]


# --------------------------------------------------------------------------- enums


@pytest.mark.parametrize(
    ("enum", "members"),
    [
        (TaskStatus, ["COMPLETED", "CANCELED", "FAILED", "FATAL_FAILED"]),
        (
            TaskState,
            [
                "NOT_STARTED",
                "IN_PROGRESS",
                "STOPPING",
                "STOPPED",
                "FAILING",
                "FAILED",
                "TIMING_OUT",
                "TIMED_OUT",
                "COMPLETED",
                "ABORTED",
            ],
        ),
        (
            TaskPartitionState,
            [
                "INIT",
                "RUNNING",
                "STOPPED",
                "COMPLETED",
                "TIMED_OUT",
                "TASK_ERROR",
                "TASK_ABORTED",
                "DROPPED",
                "ERROR",
            ],
        ),
        (Scope, ["WORKFLOW", "JOB", "TASK"]),
    ],
)
def test_enum_members_are_exactly_helix_names(enum: type, members: list[str]) -> None:
    # Given an enum from the public API
    # Then its members are exactly the listed ones, each valued by its own name
    assert [m.name for m in enum] == members  # type: ignore[attr-defined]
    assert [m.value for m in enum] == members  # type: ignore[attr-defined]
    for name in members:
        assert enum(name).name == name


def test_task_result_defaults_to_empty_info() -> None:
    # When a TaskResult is given only a status, Then its info is empty
    result = TaskResult(TaskStatus.FAILED)
    assert result.status is TaskStatus.FAILED
    assert result.info == ""
    assert TaskResult(status=TaskStatus.COMPLETED, info="done").info == "done"


def test_final_and_active_states() -> None:
    # Then exactly COMPLETED, FAILED, TIMED_OUT and ABORTED are final job/workflow states
    assert {s for s in TaskState if s.is_final} == {
        TaskState.COMPLETED,
        TaskState.FAILED,
        TaskState.TIMED_OUT,
        TaskState.ABORTED,
    }
    # And exactly INIT and RUNNING are active task states
    assert {s for s in TaskPartitionState if s.is_active} == {
        TaskPartitionState.INIT,
        TaskPartitionState.RUNNING,
    }


def test_job_isolation_is_thread_or_process() -> None:
    assert JobConfig(command="x", num_tasks=1).isolation == "thread"
    cfg = JobConfig(command="x", num_tasks=1, isolation="process")
    assert JobConfig.from_dict(cfg.to_dict()) == cfg
    with expect_invalid("job.isolation", "'thread' or 'process'"):
        JobConfig(command="x", num_tasks=1, isolation="fork")


def test_a_fan_out_job_names_its_parent_and_gets_its_tasks_when_it_starts() -> None:
    # Given a fan-out job: a command and the job it expands over, no tasks of its own
    job = JobConfig(command="X", expand="split")
    assert job.task_count == 0 and JobConfig.from_dict(job.to_dict()) == job
    # and its started form: one task per element, the element as "item"
    started = JobConfig(
        command="X", expand="split", tasks=(TaskConfig(id="0", config={"item": 1}),)
    )
    assert JobConfig.from_dict(started.to_dict()) == started
    # Then what cannot be a fan-out is refused naming the field
    with expect_invalid("job.expand", "1-128 characters"):
        JobConfig(command="X", expand="a b")
    with expect_invalid("job.command", "fan-out"):
        JobConfig(expand="split")
    with expect_invalid("job.num_tasks", "fan-out"):
        JobConfig(command="X", num_tasks=3, expand="split")
    with expect_invalid("job.expand", "neither targeted nor streaming"):
        JobConfig(command="X", expand="split", target_resource="db")
    with expect_invalid("job.tasks", "made when it starts"):
        JobConfig(command="X", expand="split", tasks=(TaskConfig(id="a", command="Y"),))
