"""End-to-end workflows on a real cluster: processes, ZooKeeper, gRPC."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from helixpy import (
    JobConfig,
    TaskConfig,
    TaskPartitionState,
    TaskState,
    Workflow,
    WorkflowConfig,
)
from helixpy.errors import AlreadyExists, InvalidConfig, NotFound
from helixpy.testing import LocalCluster
from tests.integration.helpers import record_job, task_records, wait_final

pytestmark = pytest.mark.cluster
P = TaskPartitionState


@pytest.mark.smoke
def test_diamond_dag_completes_in_dependency_order(zk_address: str) -> None:
    # Given a diamond a -> (b, c) -> d of 10 tasks each, at most 2 per instance per job
    b = Workflow.builder("diamond").set_config(WorkflowConfig(parallel_jobs=2))
    for name in "abcd":
        b.add_job(name, record_job(10, 0.1, num_concurrent_tasks_per_instance=2))
    for parent, child in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
        b.add_parent_child_dependency(parent, child)
    with LocalCluster(participants=3, zk=zk_address) as cluster:
        driver = cluster.driver
        # When it runs
        driver.start(b.build())
        # Then it completes, every task COMPLETED on its first attempt
        assert wait_final(driver, "diamond") is TaskState.COMPLETED
        records = {job: task_records(driver, "diamond", job) for job in "abcd"}
        for job in "abcd":
            ctx = driver.get_job_context("diamond", job)
            assert ctx.state is TaskState.COMPLETED
            assert len(ctx.tasks) == 10
            assert {(t.state, t.num_attempts) for t in ctx.tasks.values()} == {(P.COMPLETED, 1)}
            assert {t.assigned_participant for t in ctx.tasks.values()} <= set(cluster.instances)
            # and never more than 2 of the job's tasks ran at once on one instance
            assert max(int(r["max_concurrent"]) for r in records[job]) <= 2
        # and each job's tasks started only after all its parents' tasks finished
        for parent, child in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
            last_parent = max(float(r["finish"]) for r in records[parent])
            first_child = min(float(r["start"]) for r in records[child])
            assert first_child >= last_parent, (parent, child)
        wctx = driver.get_workflow_context("diamond")
        assert wctx.job_states == dict.fromkeys("abcd", TaskState.COMPLETED)
        assert wctx.start_time is not None and wctx.finish_time is not None
        assert wctx.finish_time >= wctx.start_time


def test_tagged_job_runs_only_on_tagged_instances(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        # Given one tagged instance among untagged ones
        gpu = cluster.add_participant(tags=("gpu",))
        wf = (
            Workflow.builder("tagged")
            .add_job(
                "t", record_job(6, instance_group_tag="gpu", num_concurrent_tasks_per_instance=3)
            )
            .build()
        )
        # When a job for that tag runs
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "tagged") is TaskState.COMPLETED
        # Then every task ran on the tagged instance
        ctx = cluster.driver.get_job_context("tagged", "t")
        assert {t.assigned_participant for t in ctx.tasks.values()} == {gpu}
        assert {r["instance"] for r in task_records(cluster.driver, "tagged", "t")} == {gpu}


def test_unknown_command_fails_the_workflow_without_retry(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        wf = (
            Workflow.builder("unknown")
            .add_job("j", JobConfig(command="NoSuchCommand", num_tasks=1))
            .build()
        )
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "unknown") is TaskState.FAILED
        task = cluster.driver.get_job_context("unknown", "j").tasks[0]
        assert task.state is P.ERROR and task.num_attempts == 1
        assert "NoSuchCommand" in task.info


def test_raising_task_is_retried_and_its_message_is_in_info(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        wf = (
            Workflow.builder("raising")
            .add_job(
                "j",
                JobConfig(
                    command="Raise",
                    num_tasks=1,
                    max_attempts_per_task=2,
                    command_config={"message": "disk on fire"},
                ),
            )
            .build()
        )
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "raising") is TaskState.FAILED
        task = cluster.driver.get_job_context("raising", "j").tasks[0]
        assert task.state is P.TASK_ERROR and task.num_attempts == 2
        assert "disk on fire" in task.info


def test_user_content_is_shared_across_jobs_and_visible_to_the_driver(zk_address: str) -> None:
    # Given a writer job and a reader job after it
    wf = (
        Workflow.builder("content")
        .add_job("writer", JobConfig(command="WriteContent", num_tasks=2))
        .add_job("reader", JobConfig(command="ReadContent", num_tasks=1))
        .add_parent_child_dependency("writer", "reader")
        .build()
    )
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(wf)
        assert wait_final(driver, "content") is TaskState.COMPLETED
        # Then the later job saw the workflow-scope value
        reader_task = driver.get_job_context("content", "reader").tasks[0]
        assert driver.get_task_user_content_map("content", "reader", reader_task.task_id) == {
            "saw": "writer"
        }
        # and the driver sees every scope
        assert driver.get_workflow_user_content_map("content") == {"written_by": "writer"}
        assert driver.get_job_user_content_map("content", "writer") == {"job": "writer"}
        for t in driver.get_job_context("content", "writer").tasks.values():
            assert driver.get_task_user_content_map("content", "writer", t.task_id) == {
                "task": t.task_id
            }


def test_driver_rejects_bad_input_and_duplicates(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = Workflow.builder("dup").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        driver.start(wf)
        with pytest.raises(AlreadyExists):
            driver.start(wf)
        with pytest.raises(NotFound):
            driver.get_workflow_context("never-started")
        with pytest.raises(NotFound):
            driver.delete("never-started")
        with pytest.raises(InvalidConfig) as exc:
            driver.set_cluster_config(no_such_setting=1)
        assert exc.value.field == "cluster_config.no_such_setting"
        driver.set_cluster_config(default_capacity=8)
        assert driver.get_cluster_config()["default_capacity"] == 8
        assert wait_final(driver, "dup") is TaskState.COMPLETED
        assert "dup" in driver.get_workflows()
        # When it is deleted, every trace goes
        driver.delete("dup")
        assert "dup" not in driver.get_workflows()
        with pytest.raises(NotFound):
            driver.get_workflow_context("dup")
        # and the name can be used again
        driver.start(wf)
        assert wait_final(driver, "dup") is TaskState.COMPLETED


def test_a_burst_of_starts_runs_every_new_workflow_and_refuses_an_existing_name(
    zk_address: str,
) -> None:
    # Given a cluster where workflow "w-old" already exists
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(Workflow.builder("w-old").add_job("j", record_job(1)).build())
        names = [f"w{i}" for i in range(40)] + ["w-old", "w-big"]

        def start(name: str) -> str:
            # "w-big" needs more than one multi (its task configs alone pass 512 KB), so it
            # is written the one-multi-at-a-time way even inside a burst
            job = (
                JobConfig(
                    command="Noop",
                    num_concurrent_tasks_per_instance=100,
                    tasks=[TaskConfig(config={"pad": os.urandom(250).hex()}) for _ in range(2000)],
                )
                if name == "w-big"
                else record_job(1)
            )
            try:
                driver.start(Workflow.builder(name).add_job("j", job).build())
            except AlreadyExists:
                return "exists"
            return "started"

        # When 42 starts arrive at once (the controller takes them in a few passes, their
        # reads sent ahead together and their multis sent back to back)
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            outcome = dict(zip(names, pool.map(start, names), strict=True))
        # Then each new one started and completes; the existing name is refused
        assert outcome.pop("w-old") == "exists"
        assert set(outcome.values()) == {"started"}
        for name in outcome:
            assert wait_final(driver, name, timeout=60) is TaskState.COMPLETED
        assert len(driver.get_job_context("w-big", "j").tasks) == 2000
