"""Helix's AllowOverlapJobAssignment as pure placement decisions (controller/overlap.py)."""

from __future__ import annotations

from helixpy.controller import rules
from helixpy.controller.overlap import Overlap
from helixpy.controller.runtime import JobRuntime, WorkflowRuntime
from helixpy.model import JobConfig, TaskState, Workflow, WorkflowConfig
from tests.unit.test_rules import NOW, inst, runtime

S = TaskState


def two_jobs(allow: bool | None = None, tasks: int = 2) -> WorkflowRuntime:
    config = WorkflowConfig(parallel_jobs=2)
    if allow is not None:
        config = WorkflowConfig(parallel_jobs=2, allow_overlap_job_assignment=allow)
    b = Workflow.builder("w").set_config(config)
    for name in "ab":
        b.add_job(
            name, JobConfig(command="x", num_tasks=tasks, num_concurrent_tasks_per_instance=10)
        )
    wf = runtime(b.build())
    rules.evaluate_workflow(wf, NOW)
    assert [j.state for j in wf.jobs.values()] == [S.IN_PROGRESS, S.IN_PROGRESS]
    return wf


def overlap_of(wf: WorkflowRuntime) -> Overlap:
    return Overlap(
        lambda job: not wf.stored.config.allow_overlap_job_assignment,
        lambda job: wf.hot_jobs(),
    )


def place(wf: WorkflowRuntime, names: list[str], overlap: Overlap | None) -> dict[str, set[str]]:
    instances = {n: inst(n) for n in names}
    jobs = [wf.jobs["a"], wf.jobs["b"]]
    placed = rules.assign(jobs, instances, rules.instance_load(jobs), overlap=overlap)
    out: dict[str, set[str]] = {"a": set(), "b": set()}
    for job, p, target in placed:
        rules.schedule(job, p, target, NOW)
        out[job.name].add(target.name)
    return out


def pending(job: JobRuntime) -> int:
    return len(job.pending)


def test_by_default_two_running_jobs_of_a_workflow_never_share_an_instance() -> None:
    # Given a workflow whose two jobs run at once (Helix's default: no overlap), one instance
    wf = two_jobs()
    assert wf.stored.config.allow_overlap_job_assignment is False
    # When a pass places their tasks
    got = place(wf, ["i"], overlap_of(wf))
    # Then the first job takes the instance and the second waits, its tasks all pending
    assert got == {"a": {"i"}, "b": set()}
    assert pending(wf.jobs["b"]) == 2
    # and the next pass still keeps it off while the first job's attempts are active
    assert place(wf, ["i"], overlap_of(wf)) == {"a": set(), "b": set()}


def test_the_second_job_takes_an_instance_the_first_does_not_use() -> None:
    # Given one task per job and two instances
    wf = two_jobs(tasks=1)
    # When placed in one pass
    got = place(wf, ["i1", "i2"], overlap_of(wf))
    # Then each job is on its own instance
    assert got["a"] and got["b"] and not got["a"] & got["b"]


def test_an_instance_is_free_again_once_the_other_job_is_not_in_progress() -> None:
    wf = two_jobs()
    place(wf, ["i"], overlap_of(wf))
    # When the first job leaves IN_PROGRESS (its attempts still listed, as while STOPPING)
    wf.jobs["a"].state = S.STOPPING
    # Then Helix no longer counts its attempts: the second job may use the instance
    assert place(wf, ["i"], overlap_of(wf))["b"] == {"i"}


def test_allow_overlap_lets_both_jobs_share_one_instance() -> None:
    wf = two_jobs(allow=True)
    got = place(wf, ["i"], overlap_of(wf))
    assert got == {"a": {"i"}, "b": {"i"}}
    # (and without a guard at all, as for callers that pass none)
    wf = two_jobs()
    assert place(wf, ["i"], None) == {"a": {"i"}, "b": {"i"}}


def test_targeted_placements_respect_the_guard_too() -> None:
    wf = two_jobs(tasks=1)
    instances = {n: inst(n) for n in ("i1", "i2")}
    jobs = [wf.jobs["a"], wf.jobs["b"]]
    # Given both jobs' tasks allowed only on i1 (as a targeted task's host)
    placed = rules.assign(
        jobs,
        instances,
        {},
        allowed=lambda job, p: frozenset({"i1"}),
        overlap=overlap_of(wf),
    )
    # Then only the first is placed there; the second waits for its host
    assert [(j.name, t.name) for j, p, t in placed] == [("a", "i1")]
