"""Delete, force delete, expiry, orphan clean-up, and finished state left alone."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow, WorkflowConfig
from helixpy.errors import NotFound
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_for_line, wait_gone, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def long_job(seconds: str = "60") -> JobConfig:
    return JobConfig(command="Record", num_tasks=1, command_config={"seconds": seconds})


def test_delete_cancels_running_tasks_and_removes_every_znode(zk_address: str) -> None:
    wf = (
        Workflow.builder("doomed")
        .add_job("w", JobConfig(command="WriteContent", num_tasks=1))
        .add_job("slow", long_job())
        .add_parent_child_dependency("w", "slow")
        .build()
    )
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(wf)
        wait_job(cluster, "doomed", "slow", lambda c: count(c, P.RUNNING) == 1, "running")
        assert driver.get_workflow_user_content_map("doomed") == {"written_by": "w"}
        # When it is deleted while a task runs
        driver.delete_and_wait("doomed", timeout=30)
        # Then the task was cancelled on its participant and nothing of it is left
        wait_for_line(
            cluster.log_dir / f"{cluster.instances[0]}.log",
            "doomed/slow/0 attempt 1 cancelled",
            timeout=30,
        )
        zk = connect(cluster.zk_address)
        try:
            assert zk.exists(cluster.paths.workflow("doomed")) is None
        finally:
            zk.stop()
            zk.close()
        for read in (
            lambda: driver.get_workflow_context("doomed"),
            lambda: driver.get_job_context("doomed", "slow"),
            lambda: driver.get_workflow_user_content_map("doomed"),
        ):
            with pytest.raises(NotFound):
                read()


def test_force_delete_works_without_a_controller(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(Workflow.builder("forced").add_job("j", long_job()).build())
        wait_job(cluster, "forced", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # Given no controller at all
        cluster.kill_controller()
        # When the workflow is force-deleted
        driver.delete("forced", force=True)
        # Then it is gone at once, a controller coming back does not resurrect it, and its
        # task is cancelled once that controller recomputes the assignments
        with pytest.raises(NotFound):
            driver.get_workflow_context("forced")
        cluster.start_controller()
        wait_for_line(
            cluster.log_dir / f"{cluster.instances[0]}.log",
            "forced/j/0 attempt 1 cancelled",
            timeout=60,
        )
        assert "forced" not in driver.get_workflows()
        # and the name is free again
        driver.start(
            Workflow.builder("forced").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        )
        assert wait_final(driver, "forced") is S.COMPLETED


def test_finished_workflows_expire(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        wf = (
            Workflow.builder("brief")
            .set_config(WorkflowConfig(expiry=1.0))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "brief") is S.COMPLETED
        # Then it is purged about a second after finishing, without anyone asking
        wait_gone(cluster, cluster.paths.workflow("brief"), timeout=30)
        assert "brief" not in cluster.driver.get_workflows()


def test_finished_state_is_never_rewritten(zk_address: str) -> None:
    with LocalCluster(participants=2, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(
            # (j small enough to keep its records in its header, k chunked)
            Workflow.builder("done")
            .add_job("j", JobConfig(command="Noop", num_tasks=3))
            .add_job("k", JobConfig(command="Noop", num_tasks=12))
            .build()
        )
        assert wait_final(driver, "done") is S.COMPLETED
        zk = connect(cluster.zk_address)
        try:
            paths = [
                cluster.paths.workflow_context("done"),
                cluster.paths.job_context("done", "j"),
                cluster.paths.job_context("done", "k"),
                cluster.paths.job_context_chunk("done", "k", 0),
                cluster.paths.workflow_config("done"),
            ]
            before = [zk.exists(p).version for p in paths]
            # When the leader changes and other work runs
            old = cluster.kill_controller()
            cluster.wait_for_leader(exclude=old)
            driver.start(
                Workflow.builder("other")
                .add_job(
                    "j",
                    JobConfig(command="Noop", num_tasks=20, num_concurrent_tasks_per_instance=5),
                )
                .build()
            )
            assert wait_final(driver, "other") is S.COMPLETED
            # Then the finished workflow's znodes kept their versions
            assert [zk.exists(p).version for p in paths] == before
        finally:
            zk.stop()
            zk.close()


def test_orphaned_job_contexts_are_collected_on_takeover(zk_address: str) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(Workflow.builder("host").add_job("j", long_job("5")).build())
        zk = connect(cluster.zk_address)
        try:
            # Given a job directory that belongs to no job of the workflow
            orphan = cluster.paths.job("host", "ghost")
            zk.create(orphan + "/CONTEXT", b"{}", makepath=True)
            # When a new leader loads the workflow
            old = cluster.kill_controller()
            cluster.wait_for_leader(exclude=old)
            # Then the orphan is removed and the workflow itself is untouched
            wait_gone(cluster, orphan, timeout=30)
            assert wait_final(driver, "host") is S.COMPLETED
            assert driver.get_job_user_content_map("host", "j") == {}
            assert driver.get_task_user_content_map("host", "j", "0")["attempt"] == "1"
        finally:
            zk.stop()
            zk.close()


def test_force_delete_under_a_running_leader_cancels_at_once(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(Workflow.builder("yanked").add_job("j", long_job()).build())
        wait_job(cluster, "yanked", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # When it is removed from ZooKeeper directly while the leader runs
        driver.delete("yanked", force=True)
        # Then the leader notices, its task is cancelled long before it would have ended,
        # and the name is usable again
        wait_for_line(
            cluster.log_dir / f"{cluster.instances[0]}.log",
            "yanked/j/0 attempt 1 cancelled",
            timeout=20,
        )
        driver.start(
            Workflow.builder("yanked").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        )
        assert wait_final(driver, "yanked") is S.COMPLETED
