"""Unit tests for the JSON (``to_dict``/``from_dict``) and YAML codecs of the model."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given

from helixpy.errors import InvalidConfig
from helixpy.model import (
    JobConfig,
    TaskConfig,
    TaskContextInfo,
    TaskPartitionState,
    TaskState,
    Workflow,
    WorkflowConfig,
    WorkflowContext,
)
from tests.unit.strategies import (
    PROPERTY,
    expect_invalid,
    job_configs,
    task_configs,
    task_context_infos,
    workflow_configs,
    workflow_contexts,
    workflows,
)


def through_json(data: dict[str, Any]) -> Any:
    """``data`` after a trip through JSON text, as the store and the wire see it."""
    return json.loads(json.dumps(data))


def yaml_doc(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def yaml_error(text: str) -> InvalidConfig:
    """The InvalidConfig that parsing ``text`` raises."""
    with pytest.raises(InvalidConfig) as info:
        Workflow.from_yaml(yaml_doc(text))
    return info.value


# --------------------------------------------------------------------------- JSON round trips


@PROPERTY
@given(task_configs())
def test_task_config_json_round_trip(task: TaskConfig) -> None:
    # Given any valid task, When encoded to JSON and decoded, Then it is equal
    assert TaskConfig.from_dict(through_json(task.to_dict())) == task


@PROPERTY
@given(job_configs())
def test_job_config_json_round_trip(job: JobConfig) -> None:
    # Given any valid job (execution_start with any fixed UTC offset included)
    decoded = JobConfig.from_dict(through_json(job.to_dict()))
    # Then it is equal after the round trip, and so is its start time's offset
    assert decoded == job
    if job.execution_start is not None:
        assert decoded.execution_start is not None
        assert decoded.execution_start.utcoffset() == job.execution_start.utcoffset()


@PROPERTY
@given(workflow_configs())
def test_workflow_config_json_round_trip(config: WorkflowConfig) -> None:
    assert WorkflowConfig.from_dict(through_json(config.to_dict())) == config


@PROPERTY
@given(workflows())
def test_workflow_json_round_trip(wf: Workflow) -> None:
    # Given any valid workflow, When encoded to JSON and decoded, Then it is equal
    decoded = Workflow.from_dict(through_json(wf.to_dict()))
    assert decoded == wf
    assert decoded.parents == wf.parents


@PROPERTY
@given(task_context_infos())
def test_task_context_info_json_round_trip(info: TaskContextInfo) -> None:
    assert TaskContextInfo.from_dict(through_json(info.to_dict())) == info


@PROPERTY
@given(workflow_contexts())
def test_workflow_context_json_round_trip(context: WorkflowContext) -> None:
    assert WorkflowContext.from_dict(through_json(context.to_dict())) == context


def test_context_times_decode_as_aware_utc() -> None:
    # Given contexts whose times have a non-UTC offset
    start = datetime(2030, 5, 6, 7, 8, 9, 123456, tzinfo=timezone(timedelta(hours=-3)))
    info = TaskContextInfo(
        task_id="t",
        state=TaskPartitionState.RUNNING,
        num_attempts=2,
        assigned_participant="p1",
        incarnation=4,
        info="running",
        start_time=start,
    )
    context = WorkflowContext(
        state=TaskState.IN_PROGRESS, job_states={"a": TaskState.COMPLETED}, start_time=start
    )
    # When decoded after a JSON trip
    decoded_info = TaskContextInfo.from_dict(through_json(info.to_dict()))
    decoded_context = WorkflowContext.from_dict(through_json(context.to_dict()))
    # Then the instants are kept, as timezone-aware datetimes
    assert decoded_info == info
    assert decoded_context == context
    assert decoded_info.start_time is not None
    assert decoded_info.start_time.utcoffset() is not None
    assert decoded_info.start_time == start


def test_defaults_are_left_out_of_the_encoding() -> None:
    # Given configs with only defaults, Then their encodings hold no defaults
    assert WorkflowConfig().to_dict() == {}
    assert JobConfig(command="X", num_tasks=2).to_dict() == {"command": "X", "num_tasks": 2}
    assert TaskConfig(id="t").to_dict() == {"id": "t"}
    # And they decode back to the defaults
    assert WorkflowConfig.from_dict({}) == WorkflowConfig()


def test_workflow_dict_shape() -> None:
    # Given a two-job workflow with a non-default config
    wf = (
        Workflow.builder("wf")
        .add_job("b", JobConfig(command="B", num_tasks=1))
        .add_job("a", JobConfig(command="A", tasks=[TaskConfig(id="t1")]))
        .add_parent_child_dependency("a", "b")
        .set_config(WorkflowConfig(parallel_jobs=2))
        .build()
    )
    # Then the dict has name, config and jobs (parents first, each listing its parents)
    assert wf.to_dict() == {
        "name": "wf",
        "config": {"parallel_jobs": 2},
        "jobs": {
            "a": {"command": "A", "tasks": [{"id": "t1"}]},
            "b": {"command": "B", "num_tasks": 1, "parents": ["a"]},
        },
    }
    assert list(wf.to_dict()["jobs"]) == ["a", "b"]


def test_execution_start_is_encoded_as_iso_8601_with_offset() -> None:
    start = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    encoded = JobConfig(command="X", num_tasks=1, execution_start=start).to_dict()
    assert encoded["execution_start"] == "2030-01-02T03:04:05+02:00"


# --------------------------------------------------------------------------- from_dict errors


@pytest.mark.parametrize(
    ("decode", "data", "field"),
    [
        (TaskConfig.from_dict, {"id": "t", "bogus": 1}, "task.bogus"),
        (JobConfig.from_dict, {"command": "X", "num_tasks": 1, "bogus": 1}, "job.bogus"),
        (WorkflowConfig.from_dict, {"bogus": 1}, "workflow.bogus"),
        (Workflow.from_dict, {"name": "w", "bogus": 1}, "bogus"),
        (
            Workflow.from_dict,
            {"name": "w", "config": {"bogus": 1}},
            "config.bogus",
        ),
        (
            Workflow.from_dict,
            {"name": "w", "jobs": {"a": {"command": "X", "num_tasks": 1, "bogus": 1}}},
            "jobs.a.bogus",
        ),
        (
            Workflow.from_dict,
            {"name": "w", "jobs": {"a": {"command": "X", "tasks": [{"id": "t", "bogus": 1}]}}},
            "jobs.a.tasks[0].bogus",
        ),
    ],
)
def test_from_dict_rejects_unknown_fields_naming_them(
    decode: Any, data: dict[str, Any], field: str
) -> None:
    # When a dict has a field the model does not know, Then the field is named
    with expect_invalid(field, "unknown field"):
        decode(data)


def test_from_dict_names_the_nested_field_of_a_bad_value() -> None:
    # Given a workflow dict whose job "a" has a bad value
    data = {
        "name": "w",
        "jobs": {"a": {"command": "X", "num_tasks": 1, "max_attempts_per_task": 0}},
    }
    # Then the error names the field under jobs.a
    with expect_invalid("jobs.a.max_attempts_per_task", ">= 1"):
        Workflow.from_dict(data)
    # And likewise for config and tasks
    with expect_invalid("config.parallel_jobs", ">= 1"):
        Workflow.from_dict({"name": "w", "config": {"parallel_jobs": 0}})
    with expect_invalid("jobs.a.tasks[0].id", "1-128"):
        Workflow.from_dict({"name": "w", "jobs": {"a": {"command": "X", "tasks": [{"id": ""}]}}})
    with expect_invalid("jobs.a.tasks[1].id", "duplicate"):
        Workflow.from_dict(
            {"name": "w", "jobs": {"a": {"command": "X", "tasks": [{"id": "t"}, {"id": "t"}]}}}
        )


@pytest.mark.parametrize(
    ("value", "rule"),
    [("tomorrow", "ISO-8601"), (12, "ISO-8601"), ("2030-01-01T00:00:00", "timezone-aware")],
)
def test_from_dict_checks_execution_start(value: object, rule: str) -> None:
    data = {"command": "X", "num_tasks": 1, "execution_start": value}
    with expect_invalid("jobs.a.execution_start", rule):
        JobConfig.from_dict(data, "jobs.a")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ([], "workflow"),
        ({"jobs": {}}, "name"),
        ({"name": "w", "jobs": ["a"]}, "jobs"),
        ({"name": "w", "jobs": {"a": "X"}}, "jobs.a"),
        (
            {"name": "w", "jobs": {"a": {"command": "X", "num_tasks": 1, "parents": "b"}}},
            "jobs.a.parents",
        ),
        ({"name": "w", "jobs": {"a": {"command": "X", "tasks": {"id": "t"}}}}, "jobs.a.tasks"),
        ({"name": "w", "jobs": {"a": {"command": "X", "tasks": ["t"]}}}, "jobs.a.tasks[0]"),
    ],
)
def test_from_dict_rejects_malformed_documents(data: Any, field: str) -> None:
    with pytest.raises(InvalidConfig) as info:
        Workflow.from_dict(data)
    assert info.value.field == field


# --------------------------------------------------------------------------- YAML


@PROPERTY
@given(workflows())
def test_workflow_yaml_round_trip(wf: Workflow) -> None:
    # Given any valid workflow, When written to YAML and read back, Then it is equal
    assert Workflow.from_yaml(wf.to_yaml()) == wf


def test_documented_yaml_example_parses() -> None:
    # Given the example from the schema's documentation
    wf = Workflow.from_yaml(
        yaml_doc(
            """
            name: etl                 # workflow name
            config:
              failure_threshold: 1
            jobs:
              extract:
                command: Extract
                num_tasks: 4
                command_config: {source: s3}
                execution_start: 2030-01-02T03:04:05+02:00
              load:
                command: Load
                tasks:
                  - {id: t1, config: {table: a}}
                parents: [extract]
            """
        )
    )
    # Then it reads as the workflow it describes
    assert wf.name == "etl"
    assert wf.config == WorkflowConfig(failure_threshold=1)
    assert wf.jobs["extract"] == JobConfig(
        command="Extract",
        num_tasks=4,
        command_config={"source": "s3"},
        execution_start=datetime(2030, 1, 2, 1, 4, 5, tzinfo=UTC),
    )
    assert wf.jobs["load"] == JobConfig(
        command="Load", tasks=[TaskConfig(id="t1", config={"table": "a"})]
    )
    assert wf.parents["load"] == frozenset({"extract"})


def test_yaml_bad_value_names_its_line() -> None:
    # Given a document whose line 5 holds a bad value
    exc = yaml_error(
        """
        name: wf
        jobs:
          a:
            command: X
            max_attempts_per_task: 0
            num_tasks: 1
        """
    )
    # Then the error names line 5, the field, and the rule
    assert "line 5" in exc.field
    assert "jobs.a.max_attempts_per_task" in exc.field
    assert ">= 1" in exc.rule


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        ("name: wf\nbogus: 1\n", 2, "bogus"),
        ("name: wf\nconfig:\n  parallel_jobs: 1\n  bogus: 1\n", 4, "config.bogus"),
        (
            "name: wf\njobs:\n  a:\n    command: X\n    num_tasks: 1\n    bogus: 1\n",
            6,
            "jobs.a.bogus",
        ),
        (
            "name: wf\njobs:\n  a:\n    command: X\n    tasks:\n      - id: t\n        bogus: 1\n",
            7,
            "jobs.a.tasks[0].bogus",
        ),
    ],
)
def test_yaml_unknown_field_is_named_with_its_line(text: str, line: int, field: str) -> None:
    # When a document has an unknown field, Then the error names it and its line
    exc = yaml_error(text)
    assert field in exc.field
    assert f"line {line}" in exc.field
    assert "unknown field" in exc.rule


@pytest.mark.parametrize(
    ("text", "line", "rule"),
    [
        ("name: wf\nconfig:\n  expiry: -1\n", 3, ">= 0"),
        ("name: wf\njobs:\n  a:\n    command: X\n    num_tasks: 1\n    timeout: .nan\n", 6, ">= 0"),
        (
            "name: wf\njobs:\n  a:\n    command: X\n    num_tasks: 1\n"
            "    execution_start: 2030-01-01T00:00:00\n",
            6,
            "timezone-aware",
        ),
        (
            "name: wf\njobs:\n  a:\n    command: X\n    tasks:\n      - id: t\n"
            "        config: {k: !!binary aGk=}\n",
            7,
            "JSON value",
        ),
    ],
)
def test_yaml_bad_values_name_their_lines(text: str, line: int, rule: str) -> None:
    exc = yaml_error(text)
    assert f"line {line}" in exc.field
    assert rule in exc.rule


def test_yaml_bad_workflow_name_names_its_line() -> None:
    # Given a document whose line 2 holds an invalid workflow name
    exc = yaml_error(
        """
        # an ETL workflow
        name: not a valid name
        jobs:
          a: {command: X, num_tasks: 1}
        """
    )
    # Then the error names line 2 and the name rule
    assert "line 2" in exc.field
    assert "1-128 characters" in exc.rule


def test_yaml_bad_job_name_names_its_line() -> None:
    # Given a document whose line 4 holds an invalid job name
    exc = yaml_error(
        """
        name: wf
        jobs:
          a: {command: X, num_tasks: 1}
          not valid: {command: X, num_tasks: 1}
        """
    )
    # Then the error names line 4 and the name rule
    assert "line 4" in exc.field
    assert "1-128 characters" in exc.rule


def test_yaml_unknown_parent_names_its_line() -> None:
    # Given a document whose line 5 names a parent job that does not exist
    exc = yaml_error(
        """
        name: wf
        jobs:
          a:
            command: X
            parents: [ghost]
            num_tasks: 1
        """
    )
    # Then the error names line 5 and the unknown job
    assert "line 5" in exc.field
    assert "ghost" in exc.rule


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("name: wf\njobs:\n  a: [\n", 4),
        ("name: wf\njobs: {a: 1\n", 3),
        ("name: wf\n  bad indent: 1\n", 2),
        ("name: wf\njobs:\n  a:\n    command: 'unterminated\n", 5),
        ("name: wf\n---\nname: other\n", 2),
    ],
)
def test_yaml_syntax_error_names_the_line(text: str, line: int) -> None:
    # When the YAML itself is invalid, Then the error names the line of the problem
    exc = yaml_error(text)
    assert exc.field == f"line {line}"
    assert "not valid YAML" in exc.rule


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("name: wf\nname: again\n", 2, "name"),
        (
            "name: wf\njobs:\n  a: {command: X, num_tasks: 1}\n  a: {command: Y, num_tasks: 1}\n",
            4,
            "a",
        ),
        ("name: wf\njobs:\n  a:\n    command: X\n    num_tasks: 1\n    command: Y\n", 6, "command"),
    ],
)
def test_yaml_duplicate_keys_are_rejected(text: str, line: int, key: str) -> None:
    # When a mapping repeats a key (which plain YAML loaders silently overwrite)
    exc = yaml_error(text)
    # Then the error names the line of the repeat and the key
    assert f"line {line}" in exc.field
    assert "duplicate" in exc.rule
    assert repr(key) in exc.rule


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just text\n", "42\n"])
def test_yaml_non_mapping_document_is_rejected(text: str) -> None:
    # When the document is not a mapping, Then it is rejected at line 1 saying so
    exc = yaml_error(text)
    assert "line 1" in exc.field
    assert "mapping" in exc.rule


def test_yaml_must_be_text() -> None:
    with expect_invalid("yaml", "string"):
        Workflow.from_yaml(b"name: wf\n")  # type: ignore[arg-type]


def test_yaml_does_not_construct_python_objects() -> None:
    # Given a document with a python tag, Then it is refused (a safe loader is used)
    with pytest.raises(InvalidConfig) as info:
        Workflow.from_yaml("name: !!python/object/apply:os.getcwd []\n")
    assert "line 1" in info.value.field


def test_yaml_task_arguments_keep_their_types() -> None:
    # Given YAML arguments of several types
    wf = Workflow.from_yaml(
        "name: wf\njobs:\n  a:\n    command: X\n    num_tasks: 1\n"
        "    command_config: {limit: 10, ratio: 0.5, tags: [a, b], flag: true, s: '3', z: null}\n"
    )
    # Then the job holds them as those types (a quoted number stays a string)
    assert wf.jobs["a"].command_config == {
        "limit": 10,
        "ratio": 0.5,
        "tags": ["a", "b"],
        "flag": True,
        "s": "3",
        "z": None,
    }
    # and a YAML date, which JSON cannot carry, is refused naming its line
    with pytest.raises(InvalidConfig) as exc:
        Workflow.from_yaml(
            "name: wf\njobs:\n  a:\n    command: X\n    num_tasks: 1\n"
            "    command_config: {since: 2026-01-01}\n"
        )
    assert exc.value.field == "jobs.a.command_config.since (line 6)"
    assert "JSON value" in exc.value.rule
