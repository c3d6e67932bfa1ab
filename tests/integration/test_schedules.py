"""Schedules: one-time delayed starts and recurring templates cloned each period."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from helixpy import JobConfig, JobQueue, ScheduleConfig, TaskState, Workflow, WorkflowConfig
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import WorkflowContext
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import task_records, wait_final, wait_gone

pytestmark = pytest.mark.cluster
S = TaskState
FAST = {"min_recurrence_interval": 0.5}


def wait_context(
    cluster: LocalCluster, name: str, ok: object, timeout: float = 60.0
) -> WorkflowContext:
    """Block until ``ok(context)`` of workflow ``name``, woken by a watch on its context."""
    zk = connect(cluster.zk_address)
    event = threading.Event()
    deadline = time.monotonic() + timeout
    try:
        while True:
            event.clear()
            zk.exists(cluster.paths.workflow_context(name), watch=lambda _e: event.set())
            ctx = cluster.driver.get_workflow_context(name)
            if ok(ctx):  # type: ignore[operator]
                return ctx
            left = deadline - time.monotonic()
            assert left > 0, f"{name}: condition not met; last context {ctx}"
            event.wait(min(left, 1.0))
    finally:
        zk.stop()
        zk.close()


def test_one_time_delayed_start(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        when = datetime.now(UTC) + timedelta(seconds=2)
        wf = (
            Workflow.builder("later")
            .set_schedule_config(ScheduleConfig.one_time_delayed_start(when))
            .add_job("j", JobConfig(command="Record", num_tasks=1))
            .build()
        )
        cluster.driver.start(wf)
        assert cluster.driver.get_workflow_context("later").state is S.NOT_STARTED
        assert wait_final(cluster.driver, "later") is S.COMPLETED
        (record,) = task_records(cluster.driver, "later", "j")
        assert float(record["start"]) >= when.timestamp()


def test_recurring_template_clones_itself_each_period(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, cluster_config=FAST) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("tick")
            .set_schedule_config(ScheduleConfig.recurring_from_now(1.0))
            .add_job("j", JobConfig(command="Noop", num_tasks=2))
            .build()
        )
        driver.start(wf)
        # poll_for_job_state on the template follows its last clone
        assert driver.poll_for_job_state("tick", "j", S.COMPLETED, timeout=30) is S.COMPLETED
        ctx = wait_context(cluster, "tick", lambda c: len(c.scheduled_workflows) >= 3)
        names = list(ctx.scheduled_workflows)
        assert all(re.fullmatch(r"tick_\d{8}T\d{6}", n) for n in names)
        assert names == sorted(names) and len(set(names)) == len(names)
        for name in names[:2]:
            assert wait_final(driver, name) is S.COMPLETED
        # the template itself runs nothing
        assert driver.get_job_context("tick", "j").tasks[0].num_attempts == 0
        # When the template is deleted, its clones go with it
        driver.delete("tick")
        for name in names:
            with pytest.raises(NotFound):
                driver.get_workflow_context(name)


def test_a_clone_starts_only_after_the_previous_one_finished(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, cluster_config=FAST) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("slow")
            .set_schedule_config(ScheduleConfig.recurring_from_now(0.5))
            .add_job(
                "j", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "1.5"})
            )
            .build()
        )
        driver.start(wf)
        ctx = wait_context(cluster, "slow", lambda c: len(c.scheduled_workflows) >= 3)
        first, second, third = ctx.scheduled_workflows[:3]
        a, b = driver.get_workflow_context(first), driver.get_workflow_context(second)
        wait_final(driver, second)
        b = driver.get_workflow_context(second)
        assert a.finish_time is not None and b.start_time is not None
        assert b.start_time >= a.finish_time
        # and stopping the template stops its last clone and the schedule
        driver.stop("slow")
        last = driver.get_workflow_context("slow").last_scheduled_workflow
        assert last is not None
        assert driver.poll_for_workflow_state(last, S.STOPPED, S.COMPLETED, timeout=30) in (
            S.STOPPED,
            S.COMPLETED,
        )
        assert driver.poll_for_workflow_state("slow", S.STOPPED, timeout=30) is S.STOPPED
        count = len(driver.get_workflow_context("slow").scheduled_workflows)
        time.sleep(1.5)  # two more periods pass while stopped (a fault window, not a sync)
        assert len(driver.get_workflow_context("slow").scheduled_workflows) == count
        assert third in driver.get_workflow_context("slow").scheduled_workflows


def test_recurrence_below_the_cluster_minimum_is_refused(zk_address: str) -> None:
    with LocalCluster(participants=0, zk=zk_address) as cluster:
        wf = (
            Workflow.builder("toofast")
            .set_schedule_config(ScheduleConfig.recurring_from_now(5.0))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        with pytest.raises(InvalidConfig) as exc:
            cluster.driver.start(wf)
        assert exc.value.field == "schedule.recurrence_interval" and "60" in exc.value.rule
        # and so is a recurring queue's
        queue = (
            JobQueue.builder("sq")
            .set_config(WorkflowConfig(schedule=ScheduleConfig.recurring_from_now(5.0)))
            .build()
        )
        with pytest.raises(InvalidConfig) as exc:
            cluster.driver.create_queue(queue)
        assert exc.value.field == "schedule.recurrence_interval"
        # and a queue takes no one-time delayed start (only a recurring schedule)
        later = datetime.now(UTC) + timedelta(hours=1)
        queue = (
            JobQueue.builder("sq")
            .set_config(WorkflowConfig(schedule=ScheduleConfig.one_time_delayed_start(later)))
            .build()
        )
        with pytest.raises(InvalidConfig) as exc:
            cluster.driver.create_queue(queue)
        assert exc.value.field == "queue.config.schedule"


def test_a_recurring_queue_runs_its_jobs_in_order_each_period(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, cluster_config=FAST) as cluster:
        driver = cluster.driver
        # Given a recurring queue (Helix's usual recurring template) with two jobs, held
        # stopped so that the third job enqueued below is in every run
        schedule = ScheduleConfig.recurring_from_now(1.0)
        queue = (
            JobQueue.builder("nightly")
            .set_config(WorkflowConfig(schedule=schedule, target_state="STOP"))
            .enqueue_job("extract", JobConfig(command="Record", num_tasks=1))
            .enqueue_job("load", JobConfig(command="Record", num_tasks=1))
            .build()
        )
        driver.create_queue(queue)
        driver.enqueue_job("nightly", "report", JobConfig(command="Record", num_tasks=1))
        # (its jobs are edited at any time: they never run in the template itself)
        driver.enqueue_job("nightly", "scratch", JobConfig(command="Noop", num_tasks=1))
        driver.delete_job("nightly", "scratch")
        assert not driver.get_workflow_context("nightly").scheduled_workflows
        # When it is resumed
        driver.resume("nightly")
        # Then each period runs the queue's jobs, in queue order, as a run that completes
        ctx = wait_context(cluster, "nightly", lambda c: len(c.scheduled_workflows) >= 2)
        first = ctx.scheduled_workflows[0]
        assert re.fullmatch(r"nightly_\d{8}T\d{6}", first)
        assert wait_final(driver, first) is S.COMPLETED
        run = driver.get_workflow_context(first)
        assert list(run.job_states) == ["extract", "load", "report"]
        assert set(run.job_states.values()) == {S.COMPLETED}
        starts = [float(task_records(driver, first, j)[0]["start"]) for j in run.job_states]
        assert starts == sorted(starts)
        assert driver.get_workflow_config(first).terminable is True
        # and poll_for_job_state on the queue follows its last run
        assert driver.poll_for_job_state("nightly", "report", S.COMPLETED, timeout=60) is (
            S.COMPLETED
        )
        # and the queue itself stays a recurring template: it keeps its jobs, never runs them
        assert driver.get_workflow_context("nightly").state is S.IN_PROGRESS
        template = driver.get_job_context("nightly", "extract")
        assert [t.state for t in template.tasks.values()] == [None]
        # and its config is updated like a template's (it keeps a recurring schedule)
        with pytest.raises(InvalidConfig) as exc:
            driver.update_workflow("nightly", WorkflowConfig())
        assert exc.value.field == "config.schedule"
        # (and the cluster's minimum interval holds for an update as for a start)
        with pytest.raises(InvalidConfig) as exc:
            too_fast = ScheduleConfig.recurring_from_now(0.1)
            driver.update_workflow("nightly", WorkflowConfig(schedule=too_fast))
        assert exc.value.field == "schedule.recurrence_interval"
        driver.update_workflow("nightly", WorkflowConfig(schedule=schedule, parallel_jobs=3))
        assert driver.get_workflow_config("nightly").parallel_jobs == 3
        driver.delete("nightly")
        for name in ctx.scheduled_workflows:
            wait_gone(cluster, cluster.paths.workflow(name))


def test_deleting_a_recurring_queues_job_also_takes_it_from_the_running_run(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address, cluster_config=FAST) as cluster:
        driver = cluster.driver
        # Given a recurring queue (one run now, the next a minute later) whose run is busy
        queue = (
            JobQueue.builder("hourly")
            .set_config(WorkflowConfig(schedule=ScheduleConfig.recurring_from_now(60)))
            .enqueue_job(
                "slow", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "60"})
            )
            .enqueue_job("after", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        driver.create_queue(queue)
        run = wait_context(cluster, "hourly", lambda c: c.scheduled_workflows).scheduled_workflows[
            0
        ]
        driver.poll_for_job_state(run, "slow", S.IN_PROGRESS, timeout=30)
        # When a job is enqueued to the queue and deleted again while the queue runs
        driver.enqueue_job("hourly", "extra", JobConfig(command="Noop", num_tasks=1))
        driver.delete_job("hourly", "extra")
        # Then that works at once: the queue's own jobs never run (its runs' do)
        assert "extra" not in driver.get_workflow_context("hourly").job_states
        # and deleting a job the running run has is refused as for any running queue
        with pytest.raises(InvalidConfig) as exc:
            driver.delete_job("hourly", "after")
        assert exc.value.field == "queue.state" and run in str(exc.value)
        # and with force it leaves the queue and the run (as Helix's deleteJob does)
        driver.delete_job("hourly", "after", force=True)
        assert list(driver.get_workflow_context("hourly").job_states) == ["slow"]
        assert list(driver.get_workflow_context(run).job_states) == ["slow"]
        driver.delete("hourly")


def test_a_template_keeps_at_most_twenty_clones(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, cluster_config=FAST) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("many")
            .set_schedule_config(ScheduleConfig.recurring_from_now(0.5))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        driver.start(wf)
        first = wait_context(
            cluster, "many", lambda c: len(c.scheduled_workflows) >= 1
        ).scheduled_workflows[0]
        # When more than twenty periods have passed
        ctx = wait_context(
            cluster, "many", lambda c: first not in c.scheduled_workflows, timeout=90
        )
        # Then twenty are kept and the oldest is gone from ZooKeeper too
        assert len(ctx.scheduled_workflows) == 20
        with pytest.raises(NotFound):
            driver.get_workflow_context(first)
        driver.delete("many")


def test_update_workflow_changes_a_templates_future_clones(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, cluster_config=FAST) as cluster:
        driver = cluster.driver
        schedule = ScheduleConfig.recurring_from_now(0.5)
        wf = (
            Workflow.builder("evolve")
            .set_schedule_config(schedule)
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        driver.start(wf)
        wait_context(cluster, "evolve", lambda c: len(c.scheduled_workflows) >= 1)
        # When the template's config changes
        driver.update_workflow("evolve", WorkflowConfig(failure_threshold=7, schedule=schedule))
        before = set(driver.get_workflow_context("evolve").scheduled_workflows)
        ctx = wait_context(
            cluster, "evolve", lambda c: any(n not in before for n in c.scheduled_workflows)
        )
        # Then the clones made afterwards carry it
        newest = ctx.scheduled_workflows[-1]
        assert driver.get_workflow_config(newest).failure_threshold == 7
        assert driver.get_workflow_config(newest).schedule is None
        driver.delete("evolve")
