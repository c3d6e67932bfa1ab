"""Process isolation: tasks in worker processes the participant owns."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def test_cpu_bound_tasks_in_worker_processes_keep_the_session_alive(zk_address: str) -> None:
    # (Spin holds the GIL in 0.4 s C calls: run in the participant's threads instead, the
    # same job starves the session thread, the participant fences itself and the job FAILS.)
    # Given one participant with a 4 s session and 8 slots
    with LocalCluster(participants=0, zk=zk_address, session_timeout=4.0) as cluster:
        inst = cluster.add_participant(capacity=8)
        incarnation = cluster.incarnation(inst)
        # When 8 tasks burn CPU for longer than the session timeout, in worker processes
        wf = (
            Workflow.builder("cpu")
            .add_job(
                "spin",
                JobConfig(
                    command="Spin",
                    num_tasks=8,
                    num_concurrent_tasks_per_instance=8,
                    max_attempts_per_task=1,
                    isolation="process",
                    command_config={"seconds": "6"},
                ),
            )
            .build()
        )
        cluster.driver.start(wf)
        # Then all complete on their first attempt, under the same incarnation (the session
        # never expired), each in a process other than the participant's
        assert wait_final(cluster.driver, "cpu", timeout=120) is S.COMPLETED
        ctx = cluster.driver.get_job_context("cpu", "spin")
        assert {(t.state, t.num_attempts) for t in ctx.tasks.values()} == {(P.COMPLETED, 1)}
        assert cluster.incarnation(inst) == incarnation
        pids = {
            cluster.driver.get_task_user_content_map("cpu", "spin", t.task_id)["pid"]
            for t in ctx.tasks.values()
        }
        assert len(pids) == 8


def test_a_crashing_worker_process_fails_only_its_attempt(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        # Given a job whose task kills its worker process, next to one that is fine
        wf = (
            Workflow.builder("crash")
            .add_job(
                "boom",
                JobConfig(
                    command="Crash",
                    num_tasks=1,
                    max_attempts_per_task=2,
                    isolation="process",
                    command_config={"code": "3"},
                ),
            )
            .add_job(
                "fine",
                JobConfig(
                    command="Record",
                    num_tasks=2,
                    isolation="process",
                    num_concurrent_tasks_per_instance=2,
                ),
            )
            .add_parent_child_dependency("fine", "boom")  # (a failed workflow aborts jobs)
            .build()
        )
        cluster.driver.start(wf)
        # Then the crash is the attempt's TASK_ERROR naming the exit, retried, and then the
        # job fails; the other job completes, and the participant never restarted
        assert wait_final(cluster.driver, "crash") is S.FAILED
        boom = cluster.driver.get_job_context("crash", "boom").tasks[0]
        assert (boom.state, boom.num_attempts) == (P.TASK_ERROR, 2)
        assert boom.info == "the worker process running this task exited with code 3"
        fine = cluster.driver.get_job_context("crash", "fine")
        assert count(fine, P.COMPLETED) == 2
        records = [
            cluster.driver.get_task_user_content_map("crash", "fine", t.task_id)
            for t in fine.tasks.values()
        ]
        assert {r["instance"] for r in records} == {cluster.instances[0]}
        assert cluster.incarnation(cluster.instances[0]) == 1


def test_cancelling_reaches_the_task_in_its_worker_process(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("stopme")
            .add_job(
                "j",
                JobConfig(
                    command="Sleep",
                    num_tasks=1,
                    isolation="process",
                    command_config={"seconds": "60"},
                ),
            )
            .build()
        )
        driver.start(wf)
        wait_job(cluster, "stopme", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # When the workflow is stopped, the task in the child sees ctx.cancelled and returns
        driver.wait_to_stop("stopme", timeout=30)
        task = driver.get_job_context("stopme", "j").tasks[0]
        assert task.state is P.STOPPED
