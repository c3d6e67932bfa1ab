"""Targeted jobs as pure logic: config rules, the partition map, placement by partition."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from helixpy.controller import rules
from helixpy.controller.targeting import (
    PartitionMap,
    allowed_instances,
    has_moved,
    materialize,
    natural_key,
)
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, TaskConfig, TaskState, Workflow
from helixpy.store.ops import Create, SetData
from helixpy.store.paths import Paths
from helixpy.store.records import TASKCONFIG_CHUNK, job_config_update_ops
from tests.unit.test_rules import inst, runtime

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kwargs", "field", "rule"),
    [
        (
            {"command": "x", "num_tasks": 1, "target_partitions": ["a"]},
            "job.target_partitions",
            "requires job.target_resource",
        ),
        (
            {"command": "x", "num_tasks": 1, "target_partition_states": ["M"]},
            "job.target_partition_states",
            "requires job.target_resource",
        ),
        (
            {"command": "x", "tasks": [TaskConfig(id="t", target_partition="a")]},
            "job.tasks[0].target_partition",
            "requires job.target_resource",
        ),
        (
            {"command": "x", "target_resource": "db", "num_tasks": 2},
            "job.num_tasks",
            "must be 0 for a targeted job",
        ),
        ({"target_resource": "db"}, "job.command", "required for a targeted job"),
        ({"command": "x", "target_resource": "db/x"}, "job.target_resource", "must be 1-128"),
        (
            {"command": "x", "target_resource": "db", "target_partitions": ["a", "a"]},
            "job.target_partitions",
            "must not repeat",
        ),
        (
            {"command": "x", "target_resource": "db", "target_partition_states": "MASTER"},
            "job.target_partition_states",
            "must be a list",
        ),
        (
            {"command": "x", "target_resource": "db", "tasks": [TaskConfig(id="t")]},
            "job.tasks[0].target_partition",
            "names its target partition",
        ),
    ],
)
def test_targeting_fields_are_validated(kwargs: dict[str, object], field: str, rule: str) -> None:
    with pytest.raises(InvalidConfig) as err:
        JobConfig(**kwargs)  # type: ignore[arg-type]
    assert err.value.field == field
    assert rule in err.value.rule


def test_a_targeted_job_round_trips_through_json_and_yaml() -> None:
    job = JobConfig(
        command="x",
        target_resource="db",
        target_partitions=["db_1", "db_0"],
        target_partition_states=["MASTER"],
    )
    assert JobConfig.from_dict(job.to_dict()) == job
    wf = Workflow.builder("w").add_job("j", job).build()
    assert Workflow.from_yaml(wf.to_yaml()).jobs["j"] == job
    assert job.task_count == 0 and job.is_targeted


def test_partitions_sort_naturally_and_hosts_follow_states() -> None:
    pmap = PartitionMap()
    for inst_name, part, state in [
        ("a", "p_10", "MASTER"),
        ("b", "p_2", "MASTER"),
        ("b", "p_10", "SLAVE"),
        ("c", "p_2", "OFFLINE"),
    ]:
        pmap.set(inst_name, "db", part, state)
    assert pmap.partitions_of("db") == ["p_2", "p_10"]
    assert sorted(["x10", "x9", "x1"], key=natural_key) == ["x1", "x9", "x10"]
    assert pmap.hosts("db", "p_10", ("MASTER",)) == {"a"}
    assert pmap.hosts("db", "p_2", ()) == {"b", "c"}
    pmap.remove("c", "db", "p_2")
    assert "c" not in pmap.records and pmap.has_resource("db")
    assert not pmap.has_resource("other")


def test_materialize_makes_one_task_per_partition_or_names_the_missing_resource() -> None:
    pmap = PartitionMap({"a": {"db": {"db_1": "M", "db_0": "M"}}})
    cfg = JobConfig(command="x", target_resource="db", target_partition_states=["M"])
    started = materialize(cfg, pmap)
    assert isinstance(started, JobConfig)
    assert [(t.task_id, t.target_partition) for t in started.tasks] == [
        ("db_0", "db_0"),
        ("db_1", "db_1"),
    ]
    chosen = materialize(
        JobConfig(command="x", target_resource="db", target_partitions=["db_9"]), pmap
    )
    assert isinstance(chosen, JobConfig) and [t.task_id for t in chosen.tasks] == ["db_9"]
    missing = materialize(JobConfig(command="x", target_resource="nope"), pmap)
    assert missing == (
        "target resource 'nope' has no partition on any instance "
        "(record them with set_partition_state)"
    )


def _targeted_job(pmap: PartitionMap, **kw: object) -> rules.JobRuntime:
    cfg = JobConfig(
        command="x",
        target_resource="db",
        target_partition_states=["M"],
        num_concurrent_tasks_per_instance=5,
        **kw,
    )  # type: ignore[arg-type]
    started = materialize(cfg, pmap)
    assert isinstance(started, JobConfig)
    wf = runtime(Workflow.builder("w").add_job("j", started).build())
    rules.evaluate_workflow(wf, NOW)
    return wf.jobs["j"]


def test_a_task_is_placed_only_where_its_partition_is_and_waits_without_blocking() -> None:
    # Given p0 on a (MASTER), p1 MASTER nowhere (SLAVE on b), p2 on b
    pmap = PartitionMap({"a": {"db": {"p0": "M"}}, "b": {"db": {"p1": "S", "p2": "M"}}})
    job = _targeted_job(pmap)
    instances = {"a": inst("a"), "b": inst("b")}
    # When the pass assigns
    placed = rules.assign(
        [job],
        instances,
        rules.instance_load([job]),
        allowed=lambda j, p: allowed_instances(pmap, j, p),
    )
    # Then p0 goes to a, p2 to b, and p1 waits at the head of the queue
    assert [(p, i.name) for _, p, i in placed] == [(0, "a"), (2, "b")]
    assert list(job.pending) == [1]


def test_an_attempt_whose_partition_left_has_moved() -> None:
    pmap = PartitionMap({"a": {"db": {"p0": "M"}}})
    job = _targeted_job(pmap)
    assert not has_moved(pmap, job, 0, "a")
    pmap.set("a", "db", "p0", "S")
    pmap.set("b", "db", "p0", "M")
    assert has_moved(pmap, job, 0, "a") and not has_moved(pmap, job, 0, "b")


def test_an_unstarted_targeted_job_does_not_complete_for_lack_of_tasks() -> None:
    wf = runtime(
        Workflow.builder("w").add_job("j", JobConfig(command="x", target_resource="db")).build()
    )
    rules.evaluate_workflow(wf, NOW)
    rules.evaluate_workflow(wf, NOW)
    assert wf.jobs["j"].state is TaskState.IN_PROGRESS


def test_fixing_many_tasks_writes_every_task_config_chunk() -> None:
    paths = Paths("c")
    n = TASKCONFIG_CHUNK * 2 + 5
    cfg = JobConfig(
        command="x",
        target_resource="db",
        tasks=[TaskConfig(id=f"p{i}", target_partition=f"p{i}") for i in range(n)],
    )
    ops = job_config_update_ops(paths, "w", "j", cfg, (), 1, 0)
    creates = [op.path for op in ops if isinstance(op, Create)]
    assert creates == [paths.task_configs("w", "j")] + [
        paths.task_config_chunk("w", "j", c) for c in range(3)
    ]
    # and growing a partly filled chunk overwrites it and creates the next
    grown = job_config_update_ops(paths, "w", "j", cfg, (), 2, TASKCONFIG_CHUNK + 1)
    assert [(type(op).__name__, op.path) for op in grown[1:]] == [
        ("SetData", paths.task_config_chunk("w", "j", 1)),
        ("Create", paths.task_config_chunk("w", "j", 2)),
    ]
    assert isinstance(grown[0], SetData)
