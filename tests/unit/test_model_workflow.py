"""Unit tests for ``Workflow`` and its builder: the DAG rules and topological order."""

from __future__ import annotations

import re
import sys
from itertools import pairwise

from hypothesis import given

from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, Workflow, WorkflowBuilder, WorkflowConfig
from tests.unit.strategies import PROPERTY, expect_invalid, workflows

JOB = JobConfig(command="X", num_tasks=1)


def builder_with(*jobs: str, name: str = "wf") -> WorkflowBuilder:
    """A builder holding ``jobs`` (each one task of command X)."""
    builder = Workflow.builder(name)
    for job in jobs:
        builder.add_job(job, JOB)
    return builder


def chain(*jobs: str, name: str = "wf") -> WorkflowBuilder:
    """A builder holding ``jobs`` with each one the parent of the next."""
    builder = builder_with(*jobs, name=name)
    for parent, child in pairwise(jobs):
        builder.add_parent_child_dependency(parent, child)
    return builder


def reported_cycle(exc: InvalidConfig) -> list[str]:
    """The job names of the cycle an InvalidConfig reports ("form a cycle: a -> b -> a")."""
    match = re.search(r"cycle: (.+)$", exc.rule)
    assert match, f"no cycle in {exc.rule!r}"
    return match.group(1).split(" -> ")


def assert_is_cycle(names: list[str], edges: set[tuple[str, str]]) -> None:
    """``names`` is a closed walk along parent -> child ``edges``."""
    assert len(names) >= 2
    assert names[0] == names[-1]
    for parent, child in pairwise(names):
        assert (parent, child) in edges, f"{parent} -> {child} is not a dependency"


# --------------------------------------------------------------------------- builder


def test_builder_methods_return_the_builder() -> None:
    # Given a builder
    builder = Workflow.builder("wf")
    # Then add_job, add_parent_child_dependency and set_config each return it
    assert builder.add_job("a", JOB) is builder
    assert builder.add_job("b", JOB) is builder
    assert builder.add_parent_child_dependency("a", "b") is builder
    assert builder.set_config(WorkflowConfig()) is builder
    # And calls chain into a workflow
    wf = (
        Workflow.builder("wf2")
        .add_job("a", JOB)
        .add_job("b", JOB)
        .add_parent_child_dependency("a", "b")
        .set_config(WorkflowConfig(parallel_jobs=2))
        .build()
    )
    assert wf.parents == {"a": frozenset(), "b": frozenset({"a"})}
    assert wf.config.parallel_jobs == 2


def test_build_produces_the_declared_workflow() -> None:
    # Given a builder with three jobs and two dependencies
    other = JobConfig(command="Y", num_tasks=2)
    builder = (
        Workflow.builder("etl")
        .add_job("extract", JOB)
        .add_job("transform", other)
        .add_job("load", JOB)
        .add_parent_child_dependency("extract", "transform")
        .add_parent_child_dependency("transform", "load")
    )
    # When it is built
    wf = builder.build()
    # Then the workflow has the name, default config, jobs and parents declared
    assert wf.name == "etl"
    assert wf.config == WorkflowConfig()
    assert dict(wf.jobs) == {"extract": JOB, "transform": other, "load": JOB}
    assert dict(wf.parents) == {
        "extract": frozenset(),
        "transform": frozenset({"extract"}),
        "load": frozenset({"transform"}),
    }
    assert wf.children() == {
        "extract": frozenset({"transform"}),
        "transform": frozenset({"load"}),
        "load": frozenset(),
    }


def test_dependencies_may_be_declared_before_their_jobs() -> None:
    # Given a dependency declared before either job is added (as Helix allows)
    builder = Workflow.builder("wf").add_parent_child_dependency("a", "b")
    builder.add_job("b", JOB).add_job("a", JOB)
    # When built, Then the dependency holds
    assert builder.build().parents["b"] == frozenset({"a"})


def test_repeated_dependency_is_recorded_once() -> None:
    wf = chain("a", "b").add_parent_child_dependency("a", "b").build()
    assert wf.parents["b"] == frozenset({"a"})


def test_set_config_never_touches_the_dag() -> None:
    # Given two identical builders, one of which also has set_config called
    # before, between and after the DAG calls
    plain = chain("a", "b", "c").add_parent_child_dependency("a", "c")
    configured = Workflow.builder("wf").set_config(WorkflowConfig(parallel_jobs=3))
    configured.add_job("a", JOB).add_job("b", JOB)
    configured.set_config(WorkflowConfig(timeout=5.0))
    configured.add_job("c", JOB)
    configured.add_parent_child_dependency("a", "b").add_parent_child_dependency("b", "c")
    configured.add_parent_child_dependency("a", "c")
    configured.set_config(WorkflowConfig(capacity=3, failure_threshold=1))
    # When both are built
    expected, actual = plain.build(), configured.build()
    # Then the jobs and dependencies are the same and only the last config counts
    assert actual.jobs == expected.jobs
    assert actual.parents == expected.parents
    assert actual.config == WorkflowConfig(capacity=3, failure_threshold=1)


def test_set_config_requires_a_workflow_config() -> None:
    with expect_invalid("workflow.config", "WorkflowConfig"):
        Workflow.builder("wf").set_config({"parallel_jobs": 2})  # type: ignore[arg-type]


def test_add_job_requires_a_job_config() -> None:
    with expect_invalid("jobs.a", "JobConfig"):
        Workflow.builder("wf").add_job("a", {"command": "X"})  # type: ignore[arg-type]


def test_duplicate_job_names_are_rejected() -> None:
    # When a job name is added twice, Then the workflow cannot be built
    builder = builder_with("a", "b")
    with expect_invalid("job.name", "duplicate", "'a'"):
        builder.add_job("a", JobConfig(command="Other", num_tasks=2))
        builder.build()


def test_build_rejects_an_unknown_parent() -> None:
    # Given a dependency whose parent was never added
    builder = builder_with("a").add_parent_child_dependency("ghost", "a")
    # When built, Then the parent side is named
    with expect_invalid("dependency.parent", "unknown job", "'ghost'"):
        builder.build()


def test_build_rejects_an_unknown_child() -> None:
    # Given a dependency whose child was never added
    builder = builder_with("a").add_parent_child_dependency("a", "ghost")
    # When built, Then the child side is named
    with expect_invalid("dependency.child", "unknown job", "'ghost'"):
        builder.build()


def test_build_rejects_an_invalid_workflow_name() -> None:
    with expect_invalid("workflow.name", "1-128 characters"):
        builder_with("a", name="my workflow").build()


# --------------------------------------------------------------------------- cycles


def test_build_rejects_a_self_loop() -> None:
    # Given a job that depends on itself
    builder = builder_with("a", "b").add_parent_child_dependency("a", "a")
    # When built, Then the cycle a -> a is named
    with expect_invalid("dependencies", "cycle") as info:
        builder.build()
    assert reported_cycle(info.value) == ["a", "a"]


def test_build_rejects_a_two_cycle() -> None:
    # Given two jobs that depend on each other
    builder = chain("a", "b").add_parent_child_dependency("b", "a")
    # When built, Then the cycle names both
    with expect_invalid("dependencies", "cycle") as info:
        builder.build()
    assert_is_cycle(reported_cycle(info.value), {("a", "b"), ("b", "a")})
    assert set(reported_cycle(info.value)) == {"a", "b"}


def test_build_rejects_a_long_cycle_and_names_only_the_cycle() -> None:
    # Given a tail "start -> j0" into a 6-job ring j0 -> j1 -> ... -> j5 -> j0
    ring = [f"j{i}" for i in range(6)]
    builder = chain("start", *ring).add_parent_child_dependency("j5", "j0")
    edges = {("start", "j0"), *pairwise(ring), ("j5", "j0")}
    # When built
    with expect_invalid("dependencies", "cycle") as info:
        builder.build()
    # Then the error names the ring, in dependency order, and not the tail
    cycle = reported_cycle(info.value)
    assert_is_cycle(cycle, edges)
    assert set(cycle) == set(ring)
    assert len(cycle) == len(ring) + 1


def test_workflow_constructor_validates_too() -> None:
    # Given parents built by hand rather than by the builder
    jobs = {"a": JOB, "b": JOB}
    # Then unknown names and cycles are rejected just the same
    with expect_invalid("dependency.child", "'c'"):
        Workflow(name="wf", jobs=jobs, parents={"c": frozenset({"a"})})
    with expect_invalid("dependency.parent", "'c'"):
        Workflow(name="wf", jobs=jobs, parents={"a": frozenset({"c"})})
    with expect_invalid("dependencies", "cycle"):
        Workflow(name="wf", jobs=jobs, parents={"a": frozenset({"b"}), "b": frozenset({"a"})})
    with expect_invalid("job.name", "1-128 characters"):
        Workflow(name="wf", jobs={"a b": JOB})
    with expect_invalid("jobs.a", "JobConfig"):
        Workflow(name="wf", jobs={"a": "X"})  # type: ignore[dict-item]
    with expect_invalid("workflow.config", "WorkflowConfig"):
        Workflow(name="wf", config={}, jobs=jobs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- capacity


def test_capacity_bounds_the_number_of_jobs() -> None:
    # Given a capacity of 2
    config = WorkflowConfig(capacity=2)
    # Then two jobs fit
    assert len(builder_with("a", "b").set_config(config).build().jobs) == 2
    # And a third is rejected, naming the capacity and the count
    with expect_invalid("workflow.capacity", "3 jobs", "capacity 2"):
        builder_with("a", "b", "c").set_config(config).build()


def test_capacity_is_checked_whatever_the_order_of_set_config() -> None:
    # Given a capacity set before the jobs are added
    builder = Workflow.builder("wf").set_config(WorkflowConfig(capacity=1))
    builder.add_job("a", JOB).add_job("b", JOB)
    # When built, Then the capacity is still enforced
    with expect_invalid("workflow.capacity", "capacity 1"):
        builder.build()


# --------------------------------------------------------------------------- order


def test_topological_order_puts_parents_first() -> None:
    # Given a diamond a -> (b, c) -> d and a lone job z
    wf = (
        builder_with("d", "c", "b", "a", "z")
        .add_parent_child_dependency("a", "b")
        .add_parent_child_dependency("a", "c")
        .add_parent_child_dependency("b", "d")
        .add_parent_child_dependency("c", "d")
        .build()
    )
    # When ordered
    order = wf.topological_order()
    # Then every job appears once, and a precedes b and c, which precede d
    assert sorted(order) == ["a", "b", "c", "d", "z"]
    assert order.index("a") < order.index("b") < order.index("d")
    assert order.index("a") < order.index("c") < order.index("d")


@PROPERTY
@given(workflows(max_jobs=8))
def test_topological_order_puts_parents_first_property(wf: Workflow) -> None:
    # Given any valid workflow
    order = wf.topological_order()
    # Then the order is a permutation of its jobs in which every parent precedes its child
    assert sorted(order) == sorted(wf.jobs)
    position = {name: i for i, name in enumerate(order)}
    for child, parents in wf.parents.items():
        for parent in parents:
            assert position[parent] < position[child]


def test_deep_chain_builds_without_recursion() -> None:
    # Given a chain of 5000 jobs, deeper than Python's recursion limit
    depth = 5000
    assert depth > sys.getrecursionlimit()
    names = [f"j{i}" for i in range(depth)]
    builder = chain(*names)
    # When built, Then no RecursionError, and the order follows the chain
    wf = builder.build()
    assert len(wf.jobs) == depth
    assert wf.parents[names[-1]] == frozenset({names[-2]})
    assert wf.topological_order() == names


def test_deep_cycle_is_found_without_recursion() -> None:
    # Given a chain of 5000 jobs whose last job is the parent of the first
    depth = 5000
    names = [f"j{i}" for i in range(depth)]
    builder = chain(*names).add_parent_child_dependency(names[-1], names[0])
    # When built, Then the whole ring is reported as the cycle
    with expect_invalid("dependencies", "cycle") as info:
        builder.build()
    cycle = reported_cycle(info.value)
    assert set(cycle) == set(names)
    assert_is_cycle(cycle, {*pairwise(names), (names[-1], names[0])})


def test_a_fan_out_job_must_expand_over_one_of_its_parents() -> None:
    # Given a fan-out job over a job it does not depend on, Then the workflow is refused
    builder = Workflow.builder("w").add_job("a", JobConfig(command="X", num_tasks=1))
    builder.add_job("b", JobConfig(command="X", expand="a"))
    with expect_invalid("jobs.b.expand", "must name a parent job of b"):
        builder.build()
    # and over a parent it is accepted
    assert builder.add_parent_child_dependency("a", "b").build().jobs["b"].expand == "a"
