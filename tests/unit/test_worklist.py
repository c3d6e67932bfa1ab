"""The pass's work list: timers, placement candidates, touched and swept workflows.

Pure logic over in-memory runtimes; the pipeline that uses it is tested on ZooKeeper.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from helixpy.controller import rules
from helixpy.controller.loader import new_workflow_runtime
from helixpy.controller.runtime import LiveInstance, WorkflowRuntime
from helixpy.controller.worklist import Candidates, Timers, WorkList
from helixpy.model import JobConfig, TaskState, Workflow
from helixpy.store.records import StoredWorkflow

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def started(
    name: str, offset: float, priority: int | None = None, tasks: int = 1
) -> WorkflowRuntime:
    b = Workflow.builder(name)
    b.add_job(
        "a",
        JobConfig(
            command="x", num_tasks=tasks, priority=priority, num_concurrent_tasks_per_instance=10
        ),
    )
    b.add_job("b", JobConfig(command="x", num_tasks=tasks))
    wf = b.build()
    stored = StoredWorkflow(name=wf.name, config=wf.config, parents=wf.parents, uid="u")
    runtime = new_workflow_runtime(stored, dict(wf.jobs))
    rules.evaluate_workflow(runtime, NOW + timedelta(seconds=offset))
    return runtime


def inst(name: str, capacity: int) -> LiveInstance:
    return LiveInstance(name=name, incarnation=1, session=1, tags=frozenset(), capacity=capacity)


def test_timers_give_each_workflow_its_latest_due_time_once() -> None:
    # Given timers set, moved and cleared
    t = Timers()
    t.set("a", 10.0)
    t.set("b", 5.0)
    t.set("a", 3.0)  # moved earlier
    t.set("c", 7.0)
    t.set("c", None)  # cleared
    # Then the earliest is a's new time, and only due workflows are popped, each once
    assert t.next() == 3.0
    assert t.pop_due(4.0) == ["a"]
    assert t.pop_due(4.0) == []
    assert t.next() == 5.0
    assert t.pop_due(100.0) == ["b"]
    assert t.next() is None and len(t) == 0


def test_timers_stay_small_when_one_workflow_is_rescheduled_often() -> None:
    # Given one workflow whose due time moves on every pass
    t = Timers()
    for i in range(10_000):
        t.set("w", float(i))
    # Then stale entries are compacted away, and only the last time counts
    assert len(t._heap) < 200
    assert t.pop_due(9_998.0) == []
    assert t.pop_due(9_999.0) == ["w"]


def test_candidates_come_out_in_the_order_schedulable_jobs_gives() -> None:
    # Given workflows started in shuffled order, some with a higher priority
    rng = random.Random(7)
    wfs = [started(f"w{i:02d}", rng.random() * 100, rng.choice([None, 10, 90])) for i in range(30)]
    c = Candidates()
    for wf in rng.sample(wfs, len(wfs)):
        c.add(wf)
        c.add(wf)  # a second add of a queued job adds nothing
    # When every candidate is taken
    by_name = {wf.name: wf for wf in wfs}
    taken = list(c.take(by_name))
    # Then the order is the scheduling order, each job once
    assert [(j.workflow, j.name) for j in taken] == [
        (j.workflow, j.name) for j in rules.schedulable_jobs(wfs)
    ]


def test_a_job_still_pending_after_placement_is_given_back_and_a_full_one_is_not() -> None:
    # Given two workflows of 3 tasks each and 4 free slots
    first, second = started("first", 0, tasks=3), started("second", 1, tasks=3)
    wfs = {"first": first, "second": second}
    c = Candidates()
    c.add(first)
    c.add(second)
    # When assign places what fits
    placed = rules.assign(c.take(wfs), {"i": inst("i", 4)}, {})
    c.give_back()
    # Then first's job got all 3, second's got 1 and is still a candidate; first's is not
    assert [(j.workflow, p) for j, p, _ in placed] == [
        ("first", 0),
        ("first", 1),
        ("first", 2),
        ("second", 0),
    ]
    assert [(j.workflow, list(j.pending)) for j in c.take(wfs)] == [("second", [1, 2])]


def test_assign_stops_taking_candidates_once_the_cluster_is_full() -> None:
    # Given 100 waiting workflows and 2 free slots
    wfs = {f"w{i:03d}": started(f"w{i:03d}", i) for i in range(100)}
    c = Candidates()
    for wf in wfs.values():
        c.add(wf)
    # When assign places
    placed = rules.assign(c.take(wfs), {"i": inst("i", 2)}, {})
    c.give_back()
    # Then it placed 2 and looked at no more than one job beyond them: the rest stay queued
    assert len(placed) == 2
    assert len(c) == 98


def test_candidates_skip_jobs_that_finished_or_left_since_they_were_queued() -> None:
    # Given two queued workflows, one of which is then stopped and one removed
    a, b, keep = started("a", 0), started("b", 1), started("keep", 2)
    c = Candidates()
    for wf in (a, b, keep):
        c.add(wf)
    a.jobs["a"].state = TaskState.STOPPING
    # Then taking them yields only the one still schedulable and resident
    assert [j.workflow for j in c.take({"a": a, "keep": keep})] == ["keep"]


def test_a_pass_evaluates_the_touched_and_the_due_and_a_sweep_evaluates_all() -> None:
    # Given three resident workflows after the first pass (a sweep)
    wfs = {n: started(n, 0) for n in ("a", "b", "c")}
    work = WorkList()
    assert {w.name for w in work.begin(wfs, 0.0)} == {"a", "b", "c"}
    work.settle(wfs)
    # When one is touched and another has a timer due
    work.touch("a")
    work.timers.set("b", 5.0)
    # Then a pass at t=6 evaluates those two only
    assert sorted(w.name for w in work.begin(wfs, 6.0)) == ["a", "b"]
    work.settle(wfs)
    # And after a sweep is asked for, every resident one again (a removed name is skipped)
    work.touch("gone")
    work.sweep_next()
    assert sorted(w.name for w in work.begin(wfs, 7.0)) == ["a", "b", "c"]


def test_a_periodic_sweep_names_a_change_nothing_had_marked() -> None:
    # Given a work list past its first sweep, and its periodic sweep due now
    wfs = {n: started(n, 0) for n in ("a", "b")}
    work = WorkList()
    work.begin(wfs, 0.0)
    work.settle(wfs)
    for wf in wfs.values():
        wf.context_dirty = False
        for job in wf.jobs.values():
            job.header_dirty = False
    work._next_sweep = 0.0
    # When the sweep evaluates a workflow that changed without a mark
    evaluated = work.begin(wfs, 1.0)
    wfs["b"].context_dirty = True
    # Then that workflow is named as missed
    assert work.unmarked(evaluated) == ["b"]


def test_settle_keeps_busy_to_workflows_with_attempts_out() -> None:
    # Given a workflow with an attempt placed, and one without
    wfs = {"a": started("a", 0), "b": started("b", 1)}
    work = WorkList()
    work.begin(wfs, 0.0)
    for job, p, target in rules.assign([wfs["a"].jobs["a"]], {"i": inst("i", 1)}, {}):
        rules.schedule(job, p, target, NOW)
    work.settle(wfs)
    assert work.busy == {"a"}
    # When its attempt finishes and the workflow is touched
    rules.finish_attempt(wfs["a"].jobs["a"], 0, rules.P.COMPLETED, "", NOW)
    work.touch("a")
    work.begin(wfs, 1.0)
    work.settle(wfs)
    # Then it is no longer busy
    assert work.busy == set()
