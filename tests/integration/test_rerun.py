"""``rerun_failed``: a FAILED or STOPPED workflow's unfinished jobs run again from attempt 1,
while completed jobs keep their results and every job its user content."""

from __future__ import annotations

from pathlib import Path

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow, WorkflowConfig
from helixpy.errors import InvalidConfig, NoResult
from helixpy.testing import LocalCluster
from tests.integration.helpers import helixpy_cli, wait_final, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState


def test_a_failed_workflow_reruns_what_failed_and_keeps_what_completed(
    zk_address: str, tmp_path: Path
) -> None:
    flag = tmp_path / "fixed"
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a workflow whose first job completes (a value, user content), whose second
        # fails until a file exists, and whose third never ran
        wf = Workflow.builder("rr")
        wf.add_job(
            "a",
            JobConfig(command="Return", num_tasks=1, command_config={"value": "A", "hold": 0.01}),
        )
        wf.add_job(
            "b",
            JobConfig(
                command="Return",
                num_tasks=1,
                command_config={"need_file": str(flag)},
                max_attempts_per_task=2,
            ),
        )
        wf.add_job("c", JobConfig(command="Gather", num_tasks=1, command_config={"from": "b"}))
        wf.add_parent_child_dependency("a", "b").add_parent_child_dependency("b", "c")
        driver.start(wf.build())
        assert wait_final(driver, "rr") is TaskState.FAILED
        a_before = driver.get_job_context("rr", "a")
        b_before = driver.get_job_context("rr", "b")
        assert {t.num_attempts for t in b_before.tasks.values()} == {2}
        assert driver.get_job_context("rr", "c").state is TaskState.FAILED
        # When the cause is fixed and what failed is run again
        flag.write_text("ok")
        driver.rerun_failed("rr")
        # Then the workflow completes: the failed job ran again from attempt 1, the job that
        # never ran ran, and the completed one was left as it was
        assert wait_final(driver, "rr") is TaskState.COMPLETED
        b_after = driver.get_job_context("rr", "b")
        assert {(t.state, t.num_attempts) for t in b_after.tasks.values()} == {(P.COMPLETED, 1)}
        assert driver.get_job_context("rr", "a") == a_before
        assert driver.get_task_result("rr", "a", 0) == "A"
        assert driver.get_task_user_content_map("rr", "a", 0) == {"returned": "1"}
        # and the next job read the rerun job's new results
        assert driver.get_task_result("rr", "c", 0) == driver.get_job_results("rr", "b")
        assert driver.get_task_result("rr", "b", 0)["attempt"] == 1
        # and the old attempts' error texts went with them
        assert driver.get_task_error("rr", "b", 0) is None
        # When asked again of a workflow that completed, Then it is refused saying why
        with pytest.raises(InvalidConfig, match="only a FAILED, TIMED_OUT or STOPPED"):
            driver.rerun_failed("rr")
        where = ["--zk", cluster.zk_address, "--cluster", cluster.cluster]
        cli = helixpy_cli("workflow", "rerun", "rr", *where)
        assert cli.returncode != 0 and "is COMPLETED" in cli.stderr


def test_a_stopped_workflow_reruns_from_attempt_one_and_a_running_one_is_refused(
    zk_address: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a running workflow whose task waits for a file
        job = JobConfig(command="Return", num_tasks=1, command_config={"wait_file": str(flag)})
        driver.start(Workflow.builder("st").add_job("j", job).build())
        wait_job(
            cluster,
            "st",
            "j",
            lambda c: c.tasks.get(0) is not None and c.tasks[0].state is P.RUNNING,
            "running",
        )
        # Then a rerun is refused while it runs
        with pytest.raises(InvalidConfig, match="is IN_PROGRESS"):
            driver.rerun_failed("st")
        with pytest.raises(NoResult):
            driver.get_task_result("st", "j", 0)
        # When it is stopped, and then rerun once the file exists
        driver.stop("st")
        driver.poll_for_workflow_state("st", TaskState.STOPPED, timeout=60)
        flag.write_text("go")
        cli = helixpy_cli(
            "workflow", "rerun", "st", "--zk", cluster.zk_address, "--cluster", cluster.cluster
        )
        assert cli.returncode == 0, cli.stderr
        # Then it runs again, from attempt 1, and completes
        assert wait_final(driver, "st") is TaskState.COMPLETED
        task = driver.get_job_context("st", "j").tasks[0]
        assert (task.state, task.num_attempts) == (P.COMPLETED, 1)


def test_a_workflow_that_timed_out_on_its_own_timeout_reruns_with_the_clock_restarted(
    zk_address: str, tmp_path: Path
) -> None:
    flag = tmp_path / "go"
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a workflow with a 2 s timeout whose task waits for a file that is not there
        job = JobConfig(command="Return", num_tasks=1, command_config={"wait_file": str(flag)})
        wf = Workflow.builder("late").set_config(WorkflowConfig(timeout=2.0)).add_job("j", job)
        driver.start(wf.build())
        assert wait_final(driver, "late") is TaskState.TIMED_OUT
        # and its aborted attempt has ended
        wait_job(cluster, "late", "j", lambda c: not c.tasks[0].state.is_active, "aborted")
        # When the file exists and the workflow reruns
        flag.write_text("go")
        driver.rerun_failed("late")
        # Then its timeout counts from the rerun: the job runs and the workflow completes
        assert wait_final(driver, "late") is TaskState.COMPLETED
        task = driver.get_job_context("late", "j").tasks[0]
        assert (task.state, task.num_attempts) == (P.COMPLETED, 1)
