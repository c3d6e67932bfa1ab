"""The runtime's per-workflow indexes that keep a pass's cost to what is active: hot jobs,
state counts, a queue's frontier and its expiry heap. Pure: no ZooKeeper."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from helixpy.controller import rules
from helixpy.controller.loader import new_job_runtime
from helixpy.controller.runtime import WorkflowRuntime
from helixpy.model import JobConfig, TaskPartitionState, TaskState
from tests.unit.test_rules import NOW, inst, queue_runtime, report, run_all

P = TaskPartitionState
S = TaskState


def finish(q: WorkflowRuntime, name: str, state: P = P.COMPLETED) -> None:
    job = q.jobs[name]
    run_all(job, {"i": inst("i")})
    assert report(job, 0, state)


def settle(q: WorkflowRuntime) -> None:
    """What the pass's write does once it landed: clean flags, cold jobs leave."""
    for job in q.hot.values():
        job.header_dirty = False
        job.dirty_chunks.clear()
    q.cool()


def test_only_jobs_with_something_to_do_stay_hot_and_a_change_brings_one_back() -> None:
    # Given a queue of 100 jobs, two at a time, evaluated and written once
    q = queue_runtime(100, parallel_jobs=2)
    rules.evaluate_workflow(q, NOW)
    settle(q)
    # Then only its two running jobs are hot; the counts say the same
    assert sorted(q.hot) == ["j00000", "j00001"]
    assert q.job_states[S.IN_PROGRESS] == 2 and q.job_states[S.NOT_STARTED] == 98
    # When the first finishes and a pass evaluates and writes
    finish(q, "j00000")
    rules.evaluate_workflow(q, NOW)
    # Then the finished job is hot until written, and the next job started
    assert {"j00000", "j00001", "j00002"} <= set(q.hot)
    settle(q)
    assert sorted(q.hot) == ["j00001", "j00002"]
    assert q.job_states[S.COMPLETED] == 1 and q.job_states[S.IN_PROGRESS] == 2
    # When a cold job is touched outside its state (a command changed it), it is hot again
    q.jobs["j00050"].heat()
    assert "j00050" in q.hot


def test_a_queue_walks_from_its_frontier_and_an_enqueue_keeps_it() -> None:
    # Given a queue of 10 jobs, one at a time, whose first 4 finished
    q = queue_runtime(10, parallel_jobs=1)
    for i in range(4):
        rules.evaluate_workflow(q, NOW)
        finish(q, f"j{i:05d}")
    rules.evaluate_workflow(q, NOW)
    # Then its frontier is the first job not started, after the running one
    assert q.jobs["j00004"].state is S.IN_PROGRESS
    assert q.frontier() == 5
    # When a job is enqueued (the order grows at its end)
    job = new_job_runtime("q", "late", JobConfig(command="x", num_tasks=1))
    q.stored = replace(q.stored, queue=(*q.order, "late"))
    q.add_job(job)
    # Then the frontier and the others' positions stand; the new job is placed last
    assert q.frontier() == 5
    assert q.position("late") == 10 and q.position("j00003") == 3
    # When the finished jobs are removed (a purge reshapes the order)
    for i in range(4):
        q.remove_job(f"j{i:05d}")
    q.stored = replace(q.stored, queue=q.order[4:])
    # Then both are found again for the new order
    assert q.frontier() == 1 and q.position("late") == 6
    assert q.job_states[S.COMPLETED] == 0 and len(q.jobs) == 7


def test_expired_queue_jobs_come_from_the_heap_by_due_time() -> None:
    # Given a queue whose jobs expire 60 s after completing, one job failing for good
    # (the jobs after it are never offered: they did not finish)
    q = queue_runtime(4, parallel_jobs=4, max_attempts_per_task=1, terminal_state_expiry=10.0)
    q.stored = replace(q.stored, config=replace(q.stored.config, expiry=60.0))
    rules.evaluate_workflow(q, NOW)
    finish(q, "j00000")
    finish(q, "j00001", P.TASK_ERROR)
    rules.evaluate_workflow(q, NOW)
    assert q.jobs["j00001"].state is S.FAILED
    # Then nothing is due at once; the failed job is due first (10 s), then the completed
    assert q.expired(NOW.timestamp()) == ([], NOW.timestamp() + 10)
    assert q.expired(NOW.timestamp() + 10) == (["j00001"], NOW.timestamp() + 60)
    # When both are due, both come out, in due order
    later = (NOW + timedelta(seconds=61)).timestamp()
    assert q.expired(later) == (["j00001", "j00000"], None)
    # When one is removed, it is never offered again
    q.remove_job("j00001")
    assert q.expired(later) == (["j00000"], None)
