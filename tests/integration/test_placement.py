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
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("moved")
            .add_job("j", JobConfig(command="Record", num_tasks=1, command_config={"seconds": "2"}))
            .build()
        )
        driver.start(wf)
        ctx = wait_job(cluster, "moved", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        first = ctx.tasks[0].assigned_participant
        assert first is not None
        other = next(i for i in cluster.instances if i != first)
        # When its instance is disabled
        driver.set_instance_enabled(first, False)
        assert driver.get_instances()[first]["enabled"] is False
        # Then the attempt is cancelled there, and only then a second one runs elsewhere
        wait_for_line(
            cluster.log_dir / f"{first}.log", "moved/j/0 attempt 1 cancelled: DISABLED", timeout=30
        )
        assert wait_final(driver, "moved") is S.COMPLETED
        task = driver.get_job_context("moved", "j").tasks[0]
        assert (task.state, task.num_attempts, task.assigned_participant) == (P.COMPLETED, 2, other)
        driver.set_instance_enabled(first, True)
        assert driver.get_instances()[first]["enabled"] is True


def test_a_task_ignoring_cancel_on_a_disabled_instance_is_never_run_twice(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("once")
            .add_job(
                "j", JobConfig(command="Stubborn", num_tasks=1, command_config={"seconds": "2"})
            )
            .build()
        )
        driver.start(wf)
        ctx = wait_job(cluster, "once", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        first = ctx.tasks[0].assigned_participant
        assert first is not None
        # When its instance is disabled while the task ignores the cancel
        driver.set_instance_enabled(first, False)
        # Then no second attempt starts while the first still runs: it completes where it was
        assert wait_final(driver, "once") is S.COMPLETED
        task = driver.get_job_context("once", "j").tasks[0]
        assert (task.state, task.num_attempts, task.assigned_participant) == (P.COMPLETED, 1, first)


def test_running_tasks_stay_put_when_an_instance_joins(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("stay")
            .add_job(
                "j",
                JobConfig(
                    command="Record",
                    num_tasks=2,
                    num_concurrent_tasks_per_instance=2,
                    command_config={"seconds": "1.5"},
                ),
            )
            .build()
        )
        driver.start(wf)
        wait_job(cluster, "stay", "j", lambda c: count(c, P.RUNNING) == 2, "running")
        cluster.add_participant()
        assert wait_final(driver, "stay") is S.COMPLETED
        ctx = driver.get_job_context("stay", "j")
        assert {(t.num_attempts, t.assigned_participant) for t in ctx.tasks.values()} == {
            (1, cluster.instances[0])
        }


def test_quota_types_split_capacity_and_an_unserved_type_blocks_nothing(zk_address: str) -> None:
    from helixpy import WorkflowConfig
    from tests.integration.helpers import task_records

    with LocalCluster(
        participants=1, zk=zk_address, cluster_config={"quota_types": {"A": 1, "B": 1}}
    ) as cluster:
        # Given an instance of capacity 4 shared by types A and B, and a job of a type
        # that has no quota at all
        inst = cluster.add_participant(capacity=4)
        cluster.driver.set_instance_enabled(cluster.instances[0], False)
        wf = (
            Workflow.builder("quota")
            .set_config(WorkflowConfig(parallel_jobs=3))
            .add_job("unserved", JobConfig(command="Noop", num_tasks=2, job_type="Z"))
            .add_job(
                "a",
                JobConfig(
                    command="Record",
                    num_tasks=6,
                    job_type="A",
                    num_concurrent_tasks_per_instance=6,
                    command_config={"seconds": "0.3"},
                ),
            )
            .add_job(
                "b",
                JobConfig(
                    command="Noop", num_tasks=3, job_type="B", num_concurrent_tasks_per_instance=3
                ),
            )
            .build()
        )
        cluster.driver.start(wf)
        # Then A never runs more than its half, B completes, and Z waits without blocking
        for job in ("a", "b"):
            assert (
                cluster.driver.poll_for_job_state("quota", job, S.COMPLETED, timeout=60)
                is S.COMPLETED
            )
        assert (
            max(int(r["max_concurrent"]) for r in task_records(cluster.driver, "quota", "a")) <= 2
        )
        assert {r["instance"] for r in task_records(cluster.driver, "quota", "a")} == {inst}
        unserved = cluster.driver.get_job_context("quota", "unserved")
        assert {(t.state, t.num_attempts) for t in unserved.tasks.values()} == {(None, 0)}


def test_removing_a_tag_lets_running_tasks_finish_and_sends_no_new_ones(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        gpu = cluster.add_participant(tags=("gpu",))
        wf = (
            Workflow.builder("retag")
            .add_job(
                "j",
                JobConfig(
                    command="Record",
                    num_tasks=4,
                    instance_group_tag="gpu",
                    num_concurrent_tasks_per_instance=2,
                    command_config={"seconds": "1"},
                ),
            )
            .build()
        )
        driver.start(wf)
        wait_job(cluster, "retag", "j", lambda c: count(c, P.RUNNING) == 2, "2 running")
        # When the tag is removed from the instance running them
        driver.set_instance_tags(gpu, [])
        assert driver.get_instances()[gpu]["tags"] == []
        # Then the two running ones finish there, and the other two are not sent anywhere
        ctx = wait_job(cluster, "retag", "j", lambda c: count(c, P.COMPLETED) == 2, "2 done")
        assert {
            (t.num_attempts, t.assigned_participant)
            for t in ctx.tasks.values()
            if t.state is P.COMPLETED
        } == {(1, gpu)}
        assert count(ctx, P.INIT) + count(ctx, P.RUNNING) == 0
        # and once another instance carries the tag, the rest run there
        other = cluster.instances[0]
        driver.set_instance_tags(other, ["gpu"])
        assert wait_final(driver, "retag") is S.COMPLETED
        ctx = driver.get_job_context("retag", "j")
        assert sorted(t.assigned_participant or "" for t in ctx.tasks.values()) == sorted(
            [gpu, gpu, other, other]
        )
        # and an operator's tags survive a restart of the participant with the same flags
        cluster.stop_participant(other)
        cluster.start_participant(other)
        assert driver.get_instances()[other]["tags"] == ["gpu"]


def test_jobs_running_at_once_stay_off_each_others_instances_unless_overlap_is_allowed(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver

        def two_jobs(name: str, seconds: str, allow: str) -> Workflow:
            # (from YAML, as a user would write it; jobs a and b run at once)
            return Workflow.from_yaml(
                f"""
name: {name}
config: {{parallel_jobs: 2{allow}}}
jobs:
  a: {{command: Sleep, num_tasks: 2, num_concurrent_tasks_per_instance: 4,
       command_config: {{seconds: "{seconds}"}}}}
  b: {{command: Sleep, num_tasks: 2, num_concurrent_tasks_per_instance: 4,
       command_config: {{seconds: "{seconds}"}}}}
"""
            )

        # Given a workflow of two jobs that run at once, overlap not set (Helix's default:
        # false), and one participant
        driver.start(two_jobs("apart", "1.5", ""))
        assert driver.get_workflow_config("apart").allow_overlap_job_assignment is False
        # When the first job's tasks run
        first = wait_job(cluster, "apart", "a", lambda c: count(c, P.RUNNING) == 2, "running")
        # Then the other job has nothing on that instance meanwhile
        other = driver.get_job_context("apart", "b")
        assert [t.assigned_participant for t in other.tasks.values()] == [None, None]
        # and it runs once the first is done: no moment had both jobs on the instance
        assert wait_final(driver, "apart") is S.COMPLETED
        first = driver.get_job_context("apart", "a")
        other = driver.get_job_context("apart", "b")
        a_done = max(t.finish_time for t in first.tasks.values() if t.finish_time)
        b_began = min(t.start_time for t in other.tasks.values() if t.start_time)
        assert b_began >= a_done

        # Given the same workflow with allow_overlap_job_assignment: true
        driver.start(two_jobs("shared", "60", ", allow_overlap_job_assignment: true"))
        # Then all four tasks run at once on the one instance
        for job in ("a", "b"):
            wait_job(cluster, "shared", job, lambda c: count(c, P.RUNNING) == 2, "running")
        assert count(driver.get_job_context("shared", "a"), P.RUNNING) == 2
        driver.delete("shared")
