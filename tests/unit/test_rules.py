"""The controller's decisions as pure functions: no ZooKeeper, no threads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from helixpy.controller import rules
from helixpy.controller.loader import new_workflow_runtime
from helixpy.controller.runtime import JobRuntime, LiveInstance, WorkflowRuntime
from helixpy.model import JobConfig, TaskPartitionState, TaskState, Workflow, WorkflowConfig
from helixpy.store.records import StoredWorkflow

P = TaskPartitionState
S = TaskState
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def runtime(wf: Workflow) -> WorkflowRuntime:
    stored = StoredWorkflow(name=wf.name, config=wf.config, parents=wf.parents, uid="u")
    return new_workflow_runtime(stored, dict(wf.jobs))


def inst(name: str, capacity: int = 40, tags: tuple[str, ...] = (), inc: int = 1) -> LiveInstance:
    return LiveInstance(
        name=name, incarnation=inc, session=1, tags=frozenset(tags), capacity=capacity
    )


def run_all(job: JobRuntime, instances: dict[str, LiveInstance], now: datetime = NOW) -> None:
    for j, p, target in rules.assign([job], instances, rules.instance_load([job])):
        rules.schedule(j, p, target, now)


def report(job: JobRuntime, p: int, state: P, now: datetime = NOW) -> bool:
    t = job.tasks[p]
    assert t.assigned_participant is not None and t.incarnation is not None
    return rules.apply_report(
        job, p, t.assigned_participant, t.incarnation, t.num_attempts, state, "", None, now
    )


def chain(n_tasks: int = 2, **job_kw: object) -> WorkflowRuntime:
    job_kw.setdefault("num_concurrent_tasks_per_instance", 10)
    b = Workflow.builder("w")
    b.add_job("a", JobConfig(command="x", num_tasks=n_tasks, **job_kw))  # type: ignore[arg-type]
    b.add_job("b", JobConfig(command="x", num_tasks=n_tasks))
    b.add_parent_child_dependency("a", "b")
    return runtime(b.build())


def test_attempts_are_counted_when_scheduled() -> None:
    # Given a started job and one instance
    wf = chain()
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    # When its tasks are assigned
    run_all(job, {"i": inst("i")})
    # Then each task has one attempt, INIT, on that instance, before anything ran
    assert [(t.state, t.num_attempts, t.assigned_participant) for t in job.tasks] == [
        (P.INIT, 1, "i"),
        (P.INIT, 1, "i"),
    ]


def test_child_starts_only_after_parent_completes() -> None:
    wf = chain()
    rules.evaluate_workflow(wf, NOW)
    assert wf.jobs["a"].state is S.IN_PROGRESS and wf.jobs["b"].state is S.NOT_STARTED
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i", capacity=10)})
    report(job, 0, P.COMPLETED)
    rules.evaluate_workflow(wf, NOW)
    assert wf.jobs["b"].state is S.NOT_STARTED
    report(job, 1, P.COMPLETED)
    rules.evaluate_workflow(wf, NOW)
    assert wf.jobs["a"].state is S.COMPLETED and wf.jobs["b"].state is S.IN_PROGRESS


def test_failed_task_is_retried_until_attempts_are_exhausted() -> None:
    wf = chain(n_tasks=1, max_attempts_per_task=3)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    for attempt in (1, 2, 3):
        run_all(job, {"i": inst("i")})
        assert job.tasks[0].num_attempts == attempt
        report(job, 0, P.TASK_ERROR)
    # Then it is given up after the third attempt: nothing pending, the job fails (threshold 0)
    assert not job.pending and job.given_up == 1
    rules.evaluate_workflow(wf, NOW)
    assert job.state is S.FAILED
    assert wf.jobs["b"].state is S.FAILED  # child of a failed job
    assert wf.state is S.FAILED


def test_fatal_and_error_are_never_retried() -> None:
    for state in (P.TASK_ABORTED, P.ERROR):
        wf = chain(n_tasks=1)
        rules.evaluate_workflow(wf, NOW)
        job = wf.jobs["a"]
        run_all(job, {"i": inst("i")})
        report(job, 0, state)
        assert job.tasks[0].num_attempts == 1 and not job.pending and job.given_up == 1


def test_failure_threshold_tolerates_given_up_tasks() -> None:
    wf = chain(n_tasks=3, failure_threshold=1)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i", capacity=10), "j": inst("j", capacity=10)})
    run_all(job, {"i": inst("i", capacity=10), "j": inst("j", capacity=10)})
    run_all(job, {"i": inst("i", capacity=10), "j": inst("j", capacity=10)})
    report(job, 0, P.ERROR)
    report(job, 1, P.COMPLETED)
    report(job, 2, P.COMPLETED)
    rules.evaluate_workflow(wf, NOW)
    assert job.state is S.COMPLETED


def test_job_over_threshold_goes_failing_and_aborts_running_tasks() -> None:
    wf = chain(n_tasks=2)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i", capacity=10), "j": inst("j", capacity=10)})
    report(job, 0, P.ERROR)
    rules.evaluate_workflow(wf, NOW)
    # Then FAILING while task 1 still runs; it is being aborted
    assert job.state is S.FAILING and job.aborting == {1}
    report(job, 1, P.TASK_ERROR)
    assert job.tasks[1].state is P.TASK_ABORTED  # cancelled because the job is failing
    rules.evaluate_workflow(wf, NOW)
    assert job.state is S.FAILED


def test_ignore_dependent_job_failure_lets_child_run() -> None:
    b = Workflow.builder("w").set_config(WorkflowConfig(failure_threshold=1))
    b.add_job("a", JobConfig(command="x", num_tasks=1, max_attempts_per_task=1))
    b.add_job("b", JobConfig(command="x", num_tasks=1, ignore_dependent_job_failure=True))
    wf = runtime(b.add_parent_child_dependency("a", "b").build())
    rules.evaluate_workflow(wf, NOW)
    run_all(wf.jobs["a"], {"i": inst("i")})
    report(wf.jobs["a"], 0, P.TASK_ERROR)
    rules.evaluate_workflow(wf, NOW)
    assert wf.jobs["a"].state is S.FAILED and wf.jobs["b"].state is S.IN_PROGRESS
    assert wf.state is S.IN_PROGRESS


def test_stale_reports_are_ignored() -> None:
    wf = chain(n_tasks=1)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i")})
    # a report for another attempt, instance or incarnation changes nothing
    assert not rules.apply_report(job, 0, "i", 1, 2, P.COMPLETED, "", None, NOW)
    assert not rules.apply_report(job, 0, "other", 1, 1, P.COMPLETED, "", None, NOW)
    assert not rules.apply_report(job, 0, "i", 7, 1, P.COMPLETED, "", None, NOW)
    assert job.tasks[0].state is P.INIT
    assert report(job, 0, P.RUNNING)
    assert not report(job, 0, P.RUNNING)  # already folded
    assert report(job, 0, P.COMPLETED)
    assert not report(job, 0, P.COMPLETED)


def test_dropped_instance_tasks_are_retried_on_new_attempts() -> None:
    wf = chain(n_tasks=2)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i", capacity=10)})
    # When the instance restarts (new incarnation)
    assert rules.drop_instance([job], "i", keep_incarnation=2, now=NOW) == 2
    assert [t.state for t in job.tasks] == [P.DROPPED, P.DROPPED]
    run_all(job, {"i": inst("i", capacity=10, inc=2)})
    assert [(t.num_attempts, t.incarnation) for t in job.tasks] == [(2, 2), (2, 2)]


def test_assignment_honours_concurrency_capacity_and_tags() -> None:
    b = Workflow.builder("w")
    b.add_job("a", JobConfig(command="x", num_tasks=20, num_concurrent_tasks_per_instance=2))
    b.add_job("t", JobConfig(command="x", num_tasks=5, instance_group_tag="gpu"))
    wf = runtime(b.build())
    wf.stored = StoredWorkflow(
        name="w", config=WorkflowConfig(parallel_jobs=2), parents=wf.stored.parents, uid="u"
    )
    rules.evaluate_workflow(wf, NOW)
    instances = {"i": inst("i", capacity=3), "j": inst("j", capacity=40, tags=("gpu",))}
    placed = rules.assign(rules.schedulable_jobs([wf]), instances, {})
    per = {(j.name, i.name): 0 for j, _, i in placed}
    for j, _, i in placed:
        per[(j.name, i.name)] += 1
    # job a: at most 2 per instance; job t only on the tagged instance
    assert per[("a", "i")] == 2 and per[("a", "j")] == 2
    assert ("t", "i") not in per and per[("t", "j")] == 1
    # capacity: instance i (capacity 3) already has 2; one more fits at most
    assert sum(1 for _, _, i in placed if i.name == "i") <= 3


def test_assignment_prefers_the_instance_with_most_free_capacity() -> None:
    wf = chain(n_tasks=1)
    rules.evaluate_workflow(wf, NOW)
    instances = {"busy": inst("busy", capacity=5), "idle": inst("idle", capacity=5)}
    placed = rules.assign([wf.jobs["a"]], instances, {"busy": 3})
    assert [i.name for _, _, i in placed] == ["idle"]


def test_retry_delay_holds_retry_until_due() -> None:
    wf = chain(n_tasks=1, task_retry_delay=10.0)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i")})
    report(job, 0, P.TASK_ERROR, NOW)
    assert not job.pending and 0 in job.delayed
    wake = rules.evaluate_workflow(wf, NOW + timedelta(seconds=5))
    assert wake == (NOW + timedelta(seconds=10)).timestamp() and not job.pending
    rules.evaluate_workflow(wf, NOW + timedelta(seconds=10))
    assert list(job.pending) == [0]


def test_parallel_jobs_limits_concurrent_jobs() -> None:
    b = Workflow.builder("w")
    for name in "abc":
        b.add_job(name, JobConfig(command="x", num_tasks=1))
    wf = runtime(b.build())
    rules.evaluate_workflow(wf, NOW)
    assert [j.state for j in wf.jobs.values()].count(S.IN_PROGRESS) == 1


def test_disabled_instances_get_no_new_attempts() -> None:
    wf = chain(n_tasks=4)
    rules.evaluate_workflow(wf, NOW)
    off = LiveInstance(
        name="off", incarnation=1, session=1, tags=frozenset(), capacity=40, enabled=False
    )
    placed = rules.assign([wf.jobs["a"]], {"off": off, "on": inst("on")}, {})
    assert {i.name for _, _, i in placed} == {"on"}


def with_config(wf: WorkflowRuntime, **cfg: object) -> WorkflowRuntime:
    from dataclasses import replace

    wf.stored = replace(wf.stored, config=replace(wf.stored.config, **cfg))  # type: ignore[arg-type]
    return wf


def test_stop_moves_jobs_through_stopping_to_stopped_and_resume_runs_them_again() -> None:
    wf = chain(n_tasks=2)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i")})
    # When stopped: the job is STOPPING while its attempts run, nothing new is scheduled
    with_config(wf, target_state="STOP")
    rules.evaluate_workflow(wf, NOW)
    assert (job.state, wf.state) == (S.STOPPING, S.STOPPING)
    assert rules.schedulable_jobs([wf]) == []
    report(job, 0, P.STOPPED)
    report(job, 1, P.COMPLETED)  # a task finishing while stopping stays COMPLETED
    rules.evaluate_workflow(wf, NOW)
    assert (job.state, wf.state) == (S.STOPPED, S.STOPPED)
    # When resumed: the stopped task is pending again
    with_config(wf, target_state="START")
    rules.evaluate_workflow(wf, NOW)
    assert job.state is S.IN_PROGRESS and list(job.pending) == [0]


def test_job_timeout_goes_timing_out_then_timed_out() -> None:
    wf = chain(n_tasks=1, timeout=10.0)
    rules.evaluate_workflow(wf, NOW)
    job = wf.jobs["a"]
    run_all(job, {"i": inst("i")})
    wake = rules.evaluate_workflow(wf, NOW + timedelta(seconds=1))
    assert wake == (NOW + timedelta(seconds=10)).timestamp()
    rules.evaluate_workflow(wf, NOW + timedelta(seconds=10))
    assert job.state is S.TIMING_OUT and job.aborting == {0}
    report(job, 0, P.TASK_ERROR, NOW + timedelta(seconds=11))
    rules.evaluate_workflow(wf, NOW + timedelta(seconds=11))
    assert job.state is S.TIMED_OUT and job.tasks[0].state is P.TASK_ABORTED
    assert wf.jobs["b"].state is S.FAILED


def test_workflow_timeout_of_zero_times_out_at_once() -> None:
    wf = with_config(chain(n_tasks=1), timeout=0.0)
    rules.evaluate_workflow(wf, NOW)
    assert wf.state is S.TIMED_OUT


def test_quota_shares_and_types() -> None:
    from helixpy.controller.quota import DEFAULT, Quotas

    q = Quotas({"A": 3, "B": 1})
    assert (q.share(40, "A"), q.share(40, "B"), q.share(40, DEFAULT)) == (30, 10, 0)
    assert q.share(2, "B") == 1  # a positive ratio always gets a slot
    assert q.type_of("A", "B") == "A"  # the workflow's type wins
    assert q.type_of(None, "B") == "B"
    assert q.type_of(None, "Z") == DEFAULT  # unknown types count as DEFAULT
    assert Quotas().share(40, DEFAULT) == 40


def test_a_type_without_quota_never_blocks_other_types() -> None:
    from helixpy.controller.quota import Quotas

    b = Workflow.builder("w").set_config(WorkflowConfig(parallel_jobs=2))
    b.add_job(
        "none",
        JobConfig(command="x", num_tasks=3, job_type="Z", num_concurrent_tasks_per_instance=3),
    )
    b.add_job(
        "b", JobConfig(command="x", num_tasks=3, job_type="B", num_concurrent_tasks_per_instance=3)
    )
    wf = runtime(b.build())
    rules.evaluate_workflow(wf, NOW)
    quotas = Quotas({"B": 1})
    placed = rules.assign(
        rules.schedulable_jobs([wf]),
        {"i": inst("i", capacity=4)},
        {},
        quotas,
        lambda j: quotas.type_of(None, j.config.job_type),
        {},
    )
    assert [j.name for j, _, _ in placed] == ["b", "b", "b"]


def test_schedules_round_trip_through_yaml_and_validate() -> None:
    from helixpy.errors import InvalidConfig
    from helixpy.model import ScheduleConfig

    start = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    wf = (
        Workflow.builder("s")
        .set_schedule_config(ScheduleConfig.recurring_from_date(start, 90))
        .add_job("j", JobConfig(command="x", num_tasks=1))
        .build()
    )
    text = wf.to_yaml()
    assert "recurrence_interval: 90" in text
    assert Workflow.from_yaml(text) == wf
    bad = text.replace("recurrence_interval: 90", "recurrence_interval: -1")
    try:
        Workflow.from_yaml(bad)
    except InvalidConfig as exc:
        assert exc.field.startswith("config.schedule.recurrence_interval")
    else:
        raise AssertionError("a negative interval was accepted")


def test_a_one_time_schedule_holds_the_start_and_a_template_runs_nothing() -> None:
    from helixpy.model import ScheduleConfig

    later = with_config(
        chain(n_tasks=1),
        schedule=ScheduleConfig.one_time_delayed_start(NOW + timedelta(seconds=30)),
    )
    assert rules.evaluate_workflow(later, NOW) == (NOW + timedelta(seconds=30)).timestamp()
    assert later.state is S.NOT_STARTED
    rules.evaluate_workflow(later, NOW + timedelta(seconds=30))
    assert later.state is S.IN_PROGRESS
    template = with_config(chain(n_tasks=1), schedule=ScheduleConfig.recurring_from_now(60))
    assert rules.evaluate_workflow(template, NOW) is None
    assert template.state is S.IN_PROGRESS and rules.schedulable_jobs([template]) == []


def test_higher_priority_jobs_are_assigned_first_when_capacity_is_short() -> None:
    # Given a low-priority workflow started before a high-priority one, and one free slot
    low = runtime(
        Workflow.builder("low")
        .add_job("j", JobConfig(command="x", num_tasks=2, job_type="compaction"))
        .build()
    )
    high = runtime(
        Workflow.builder("high")
        .add_job("j", JobConfig(command="x", num_tasks=2, priority=90))
        .build()
    )
    rules.evaluate_workflow(low, NOW)
    rules.evaluate_workflow(high, NOW + timedelta(seconds=1))
    order = rules.schedulable_jobs([low, high])
    assert [j.workflow for j in order] == ["high", "low"]
    placed = rules.assign(order, {"i": inst("i", capacity=1)}, {})
    # Then the one slot goes to the high-priority job; equal priorities keep their order
    assert [(j.workflow, p) for j, p, _ in placed] == [("high", 0)]
    same = runtime(
        Workflow.builder("same")
        .add_job("j", JobConfig(command="x", num_tasks=1, job_type="compaction"))
        .build()
    )
    rules.evaluate_workflow(same, NOW + timedelta(seconds=2))
    assert [j.workflow for j in rules.schedulable_jobs([same, low])] == ["low", "same"]


def queue_runtime(n: int, parallel_jobs: int, **job_kw: object) -> WorkflowRuntime:
    jobs = {f"j{i:05d}": JobConfig(command="x", num_tasks=1, **job_kw) for i in range(n)}  # type: ignore[arg-type]
    stored = StoredWorkflow(
        name="q",
        config=WorkflowConfig(parallel_jobs=parallel_jobs),
        parents={},
        uid="u",
        queue=tuple(jobs),
    )
    return new_workflow_runtime(stored, jobs)


def test_a_long_queue_starts_jobs_in_order_up_to_parallel_jobs() -> None:
    # Given a queue of 5,000 jobs that may run 3 at a time
    q = queue_runtime(5000, parallel_jobs=3)
    # When it is evaluated
    rules.evaluate_workflow(q, NOW)
    # Then exactly its first 3 jobs started, the rest wait
    states = [q.jobs[n].state for n in q.order]
    assert states[:3] == [S.IN_PROGRESS] * 3
    assert set(states[3:]) == {S.NOT_STARTED}
    # When the first finishes, the 4th (and only it) starts
    first = q.jobs[q.order[0]]
    run_all(first, {"i": inst("i")})
    assert report(first, 0, P.COMPLETED)
    rules.evaluate_workflow(q, NOW)
    assert [q.jobs[n].state for n in q.order[:5]] == [
        S.COMPLETED,
        S.IN_PROGRESS,
        S.IN_PROGRESS,
        S.IN_PROGRESS,
        S.NOT_STARTED,
    ]


def test_a_failed_queue_job_fails_every_later_job_that_has_not_started() -> None:
    # Given a queue running one job at a time, whose first job gives up
    q = queue_runtime(4, parallel_jobs=1, max_attempts_per_task=1)
    rules.evaluate_workflow(q, NOW)
    first = q.jobs[q.order[0]]
    run_all(first, {"i": inst("i")})
    assert report(first, 0, P.TASK_ERROR)
    # When the queue is evaluated
    rules.evaluate_workflow(q, NOW)
    # Then the failure reaches every job after it, each naming its predecessor
    assert [q.jobs[n].state for n in q.order] == [S.FAILED] * 4
    assert q.jobs[q.order[3]].info == f"parent job {q.order[2]} failed"
