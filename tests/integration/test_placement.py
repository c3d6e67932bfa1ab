"""Placement: disabling instances, joins that move nothing, deaths that retry elsewhere."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_for_line, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def test_disabling_an_instance_cancels_its_tasks_there_then_retries_them_elsewhere(
        zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = Workflow.builder("moved").add_job("j", JobConfig(
            command="Record", num_tasks=1, command_config={"seconds": "2"})).build()
        driver.start(wf)
        ctx = wait_job(cluster, "moved", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        first = ctx.tasks[0].assigned_participant
        assert first is not None
        other = next(i for i in cluster.instances if i != first)
        # When its instance is disabled
        driver.set_instance_enabled(first, False)
        assert driver.get_instances()[first]["enabled"] is False
        # Then the attempt is cancelled there, and only then a second one runs elsewhere
        wait_for_line(cluster.log_dir / f"{first}.log", "moved/j/0 attempt 1 cancelled: DISABLED",
                      timeout=30)
        assert wait_final(driver, "moved") is S.COMPLETED
        task = driver.get_job_context("moved", "j").tasks[0]
        assert (task.state, task.num_attempts, task.assigned_participant) == (
            P.COMPLETED, 2, other)
        driver.set_instance_enabled(first, True)
        assert driver.get_instances()[first]["enabled"] is True


def test_a_task_ignoring_cancel_on_a_disabled_instance_is_never_run_twice(
        zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = Workflow.builder("once").add_job("j", JobConfig(
            command="Stubborn", num_tasks=1, command_config={"seconds": "2"})).build()
        driver.start(wf)
        ctx = wait_job(cluster, "once", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        first = ctx.tasks[0].assigned_participant
        assert first is not None
        # When its instance is disabled while the task ignores the cancel
        driver.set_instance_enabled(first, False)
        # Then no second attempt starts while the first still runs: it completes where it was
        assert wait_final(driver, "once") is S.COMPLETED
        task = driver.get_job_context("once", "j").tasks[0]
        assert (task.state, task.num_attempts, task.assigned_participant) == (
            P.COMPLETED, 1, first)


def test_running_tasks_stay_put_when_an_instance_joins(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = Workflow.builder("stay").add_job("j", JobConfig(
            command="Record", num_tasks=2, num_concurrent_tasks_per_instance=2,
            command_config={"seconds": "1.5"})).build()
        driver.start(wf)
        wait_job(cluster, "stay", "j", lambda c: count(c, P.RUNNING) == 2, "running")
        cluster.add_participant()
        assert wait_final(driver, "stay") is S.COMPLETED
        ctx = driver.get_job_context("stay", "j")
        assert {(t.num_attempts, t.assigned_participant) for t in ctx.tasks.values()} == {
            (1, cluster.instances[0])}
