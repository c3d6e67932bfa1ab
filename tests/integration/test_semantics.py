"""Helix task-framework semantics, one test per rule: failures, timeouts, stop/resume."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskConfig, TaskPartitionState, TaskState, Workflow, WorkflowConfig
from helixpy.errors import PollTimeout
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def states(cluster: LocalCluster, wf: str, job: str) -> dict[str, tuple[P | None, int]]:
    ctx = cluster.driver.get_job_context(wf, job)
    return {t.task_id: (t.state, t.num_attempts) for t in ctx.tasks.values()}


def test_failure_and_retry_figures(zk_address: str) -> None:
    # Given 5 tasks, max attempts 5, a threshold that tolerates every failure
    tasks = [
        TaskConfig(id="fatal", command="Fatal"),
        TaskConfig(id="fails", command="Fail"),
        TaskConfig(id="raises", command="Raise"),
        TaskConfig(id="ok1", command="Noop"),
        TaskConfig(id="ok2", command="Noop"),
    ]
    wf = (
        Workflow.builder("figures")
        .add_job(
            "j",
            JobConfig(
                tasks=tasks,
                max_attempts_per_task=5,
                failure_threshold=5,
                num_concurrent_tasks_per_instance=5,
            ),
        )
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        cluster.driver.start(wf)
        # Then FATAL is aborted after 1 attempt, the failing two exhaust 5, the rest complete
        assert wait_final(cluster.driver, "figures") is S.COMPLETED
        assert states(cluster, "figures", "j") == {
            "fatal": (P.TASK_ABORTED, 1),
            "fails": (P.TASK_ERROR, 5),
            "raises": (P.TASK_ERROR, 5),
            "ok1": (P.COMPLETED, 1),
            "ok2": (P.COMPLETED, 1),
        }


def test_fatal_failures_over_the_threshold_fail_job_and_workflow(zk_address: str) -> None:
    wf = (
        Workflow.builder("fatal")
        .add_job("j", JobConfig(command="Fatal", num_tasks=5, failure_threshold=1))
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "fatal") is S.FAILED
        assert cluster.driver.get_job_context("fatal", "j").state is S.FAILED
        # one at a time on one instance: the second abort crosses the threshold, and the
        # job fails without starting the rest
        got = sorted(states(cluster, "fatal", "j").values(), key=str)
        assert got == [(P.TASK_ABORTED, 1)] * 2 + [(None, 0)] * 3


def test_per_task_timeout_is_timed_out_and_retried(zk_address: str) -> None:
    # Given a task that sleeps far past its per-task timeout
    wf = (
        Workflow.builder("slow")
        .add_job(
            "j",
            JobConfig(
                command="Sleep",
                num_tasks=1,
                timeout_per_task=0.5,
                max_attempts_per_task=2,
                command_config={"seconds": "60"},
            ),
        )
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        cluster.driver.start(wf)
        # Then each attempt is cancelled and TIMED_OUT, retried until attempts run out
        assert wait_final(cluster.driver, "slow") is S.FAILED
        assert states(cluster, "slow", "j") == {"0": (P.TIMED_OUT, 2)}


def test_job_timeout_aborts_running_tasks_and_fails_children(zk_address: str) -> None:
    wf = (
        Workflow.builder("jobtimeout")
        .set_config(WorkflowConfig(failure_threshold=5))
        .add_job(
            "slow",
            JobConfig(
                command="Sleep",
                num_tasks=2,
                timeout=1.0,
                num_concurrent_tasks_per_instance=2,
                command_config={"seconds": "60"},
            ),
        )
        .add_job("child", JobConfig(command="Noop", num_tasks=1))
        .add_parent_child_dependency("slow", "child")
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        cluster.driver.start(wf)
        assert (
            cluster.driver.poll_for_job_state("jobtimeout", "slow", S.TIMED_OUT, timeout=30)
            is S.TIMED_OUT
        )
        assert {s for s, _ in states(cluster, "jobtimeout", "slow").values()} == {P.TASK_ABORTED}
        # TIMED_OUT counts as a failure for the child
        assert (
            cluster.driver.poll_for_job_state("jobtimeout", "child", S.FAILED, timeout=30)
            is S.FAILED
        )
        assert wait_final(cluster.driver, "jobtimeout") is S.COMPLETED  # threshold 5


def test_workflow_timeout(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        slow = (
            Workflow.builder("wftimeout")
            .set_config(WorkflowConfig(timeout=1.0))
            .add_job("j", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "60"}))
            .build()
        )
        cluster.driver.start(slow)
        assert wait_final(cluster.driver, "wftimeout") is S.TIMED_OUT
        assert cluster.driver.get_job_context("wftimeout", "j").state is S.ABORTED
        # a timeout of 0 times out at once
        zero = (
            Workflow.builder("zero")
            .set_config(WorkflowConfig(timeout=0.0))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        cluster.driver.start(zero)
        assert wait_final(cluster.driver, "zero") is S.TIMED_OUT


def test_stop_then_resume_reruns_stopped_tasks(zk_address: str) -> None:
    wf = (
        Workflow.builder("stopme")
        .add_job(
            "j",
            JobConfig(
                command="Sleep",
                num_tasks=4,
                num_concurrent_tasks_per_instance=2,
                command_config={"seconds": "2"},
            ),
        )
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(wf)
        wait_job(cluster, "stopme", "j", lambda c: count(c, P.RUNNING) == 2, "2 running")
        # When it is stopped
        driver.wait_to_stop("stopme", timeout=30)
        # Then the running tasks were cancelled as STOPPED and nothing new started
        assert driver.get_job_context("stopme", "j").state is S.STOPPED
        before = states(cluster, "stopme", "j")
        assert sorted(s for s, _ in before.values() if s is not None) == [P.STOPPED, P.STOPPED]
        assert sum(1 for s, _ in before.values() if s is None) == 2
        # When resumed, Then everything runs, the stopped two as second attempts
        driver.resume("stopme")
        assert wait_final(driver, "stopme") is S.COMPLETED
        after = states(cluster, "stopme", "j")
        assert {s for s, _ in after.values()} == {P.COMPLETED}
        assert sorted(n for _, n in after.values()) == [1, 1, 2, 2]


def test_a_task_ignoring_cancel_keeps_its_job_stopping_within_its_cancel_grace(
    zk_address: str,
) -> None:
    wf = (
        Workflow.builder("stubborn")
        .add_job("j", JobConfig(command="Stubborn", num_tasks=1, command_config={"seconds": "120"}))
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(wf)
        wait_job(cluster, "stubborn", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # When stopped while its task ignores cancel
        with pytest.raises(PollTimeout) as exc:
            driver.wait_to_stop("stubborn", timeout=2)
        # Then the wait names what it saw, and the job stays STOPPING, visibly
        assert exc.value.last_state == "STOPPING"
        assert driver.get_job_context("stubborn", "j").state is S.STOPPING
        # and when the task's participant dies, the task is DROPPED and the job STOPPED
        cluster.kill_participant(cluster.instances[0])
        assert driver.poll_for_workflow_state("stubborn", S.STOPPED, timeout=30) is S.STOPPED
        assert states(cluster, "stubborn", "j") == {"0": (P.DROPPED, 1)}


def test_stop_wins_over_completion(zk_address: str) -> None:
    wf = (
        Workflow.builder("wins")
        .add_job("j", JobConfig(command="Stubborn", num_tasks=1, command_config={"seconds": "1.5"}))
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(wf)
        wait_job(cluster, "wins", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # When stopped while a task that ignores cancel goes on to complete
        driver.wait_to_stop("wins", timeout=30)
        # Then the task is COMPLETED but the job is STOPPED
        assert states(cluster, "wins", "j") == {"0": (P.COMPLETED, 1)}
        assert driver.get_job_context("wins", "j").state is S.STOPPED
        # and COMPLETED once resumed, with nothing left to run
        driver.resume("wins")
        assert wait_final(driver, "wins") is S.COMPLETED
        assert states(cluster, "wins", "j") == {"0": (P.COMPLETED, 1)}
