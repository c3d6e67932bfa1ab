"""Full error details: a failed attempt's traceback is kept (bounded) beside its short info,
read through the driver, the CLI and the dashboard, and purged with its workflow."""

from __future__ import annotations

import json
import urllib.request

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.errors import NotFound
from helixpy.model.context import INFO_CAP
from helixpy.testing import LocalCluster
from tests.integration.helpers import dashboard_url, helixpy_cli, wait_final, wait_gone

pytestmark = pytest.mark.cluster
P = TaskPartitionState
LONG = "x" * 3000 + " the end of a long message"


def raising(isolation: str) -> JobConfig:
    return JobConfig(
        command="Raise",
        num_tasks=1,
        command_config={"message": LONG},
        max_attempts_per_task=2,
        isolation=isolation,
    )


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_failed_attempts_traceback_is_kept_and_purged_with_its_workflow(
    zk_address: str, isolation: str
) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        driver = cluster.driver
        # Given a task that raises a long message on both of its attempts, and one that works
        wf = Workflow.builder("fails").add_job("bad", raising(isolation))
        wf.add_job("good", JobConfig(command="Noop", num_tasks=1))
        driver.start(wf.build())
        assert wait_final(driver, "fails") is TaskState.FAILED
        # Then the context's info is short, and the full error has the traceback and all of it
        task = driver.get_job_context("fails", "bad").tasks[0]
        assert (task.state, task.num_attempts) == (P.TASK_ERROR, 2)
        assert len(task.info.encode()) <= INFO_CAP and LONG not in task.info
        error = driver.get_task_error("fails", "bad", 0)
        assert error is not None
        assert "Traceback (most recent call last)" in error and f"RuntimeError: {LONG}" in error
        # for each attempt, and none for an attempt that never ran or a task that did not fail
        first = driver.get_task_error("fails", "bad", "0", attempt=1)
        assert first is not None and LONG in first
        assert driver.get_task_error("fails", "bad", 0, attempt=7) is None
        assert driver.get_task_error("fails", "good", 0) is None
        with pytest.raises(NotFound, match="fails/nope"):
            driver.get_task_error("fails", "nope", 0)
        # and the CLI and the dashboard show it too
        where = ["--zk", cluster.zk_address, "--cluster", cluster.cluster]
        cli = helixpy_cli("job", "task-error", "fails", "bad", "0", *where, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert "Traceback (most recent call last)" in cli.stdout and LONG in cli.stdout
        api = f"{dashboard_url(cluster)}/api/workflows/fails/jobs/bad/tasks/0/error"
        with urllib.request.urlopen(api, timeout=10) as reply:
            shown = json.loads(reply.read())["errors"]
        assert sorted(shown) == ["1", "2"] and LONG in shown["2"]
        # When the workflow is deleted, Then its errors go with it
        driver.delete("fails")
        wait_gone(cluster, cluster.paths.workflow("fails"))
        with pytest.raises(NotFound):
            driver.get_task_error("fails", "bad", 0)
