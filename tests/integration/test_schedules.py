"""Schedules: one-time delayed starts and recurring templates cloned each period."""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from helixpy import JobConfig, ScheduleConfig, TaskState, Workflow
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import WorkflowContext
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import task_records, wait_final

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
        # and a job queue cannot be scheduled at all
        from helixpy import JobQueue, WorkflowConfig

        queue = (
            JobQueue.builder("sq")
            .set_config(WorkflowConfig(schedule=ScheduleConfig.recurring_from_now(120)))
            .build()
        )
        with pytest.raises(InvalidConfig) as exc:
            cluster.driver.create_queue(queue)
        assert exc.value.field == "queue.config.schedule"


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
    from helixpy import WorkflowConfig

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
