"""Cancel always converges: a task that ignores its cancel is ended after ``cancel_grace``.

A thread attempt is abandoned (reported in its cancel's state, its slot busy until its thread
ends, its late result ignored); a process-isolated attempt's worker gets SIGTERM, then SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import (
    count,
    record_job,
    task_records,
    telemetry_address,
    wait_final,
    wait_for_data,
    wait_for_line,
    wait_for_metric,
    wait_job,
)

pytestmark = pytest.mark.cluster
P = TaskPartitionState


@contextlib.contextmanager
def client(cluster: LocalCluster) -> Iterator[KazooClient]:
    zk = connect(cluster.zk_address)
    try:
        yield zk
    finally:
        zk.stop()
        zk.close()


def stubborn(seconds: float, grace: float, *, ignore_sigterm: bool = False, **kw: Any) -> JobConfig:
    """One Stubborn task (it ignores cancel for ``seconds``), one attempt, ``grace``."""
    config = {"seconds": str(seconds)}
    if ignore_sigterm:
        config["ignore_sigterm"] = "1"
    return JobConfig(
        command="Stubborn",
        num_tasks=1,
        command_config=config,
        cancel_grace=grace,
        max_attempts_per_task=1,
        **kw,
    )


def test_a_thread_ignoring_its_stop_is_abandoned_and_holds_its_slot_until_it_ends(
    zk_address: str,
) -> None:
    with (
        LocalCluster(
            participants=0, zk=zk_address, controller_args=["--metrics-port", "0"]
        ) as cluster,
        client(cluster) as zk,
    ):
        driver = cluster.driver
        first = cluster.add_participant(tags=("first",), capacity=1)
        other = cluster.add_participant(capacity=1)
        controller = telemetry_address(cluster.log_dir / f"{cluster.leader()}.log")
        live = cluster.paths.live_instance(first)
        # Given a task on `first` that ignores cancel for 8 s, with a 0.5 s cancel grace
        wf = Workflow.builder("stuck").add_job("j", stubborn(8, 0.5, instance_group_tag="first"))
        driver.start(wf.build())
        wait_job(cluster, "stuck", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # When the workflow is stopped
        driver.wait_to_stop("stuck", timeout=20)
        # Then it is STOPPED without waiting for the task: the attempt was abandoned
        task = driver.get_job_context("stuck", "j").tasks[0]
        assert task.state is P.STOPPED
        assert "abandoned" in task.info and "cancel_grace" in task.info
        wait_for_line(cluster.log_dir / f"{first}.log", "stuck/j/0 attempt 1 abandoned", 10)
        # and its slot stays busy: `first` advertises it, and the controller counts it
        wait_for_data(zk, live, lambda b: b.get("abandoned") == 1, timeout=10)
        assert driver.get_instances()[first]["abandoned"] == 1
        wait_for_metric(controller, rf'helixpy_instance_free_slots{{instance="{first}"}} 0\.0')
        # so new work goes to the other instance, none of it waits behind the stuck thread
        driver.start(Workflow.builder("after").add_job("j", record_job(2, 0.1)).build())
        assert wait_final(driver, "after", timeout=30) is TaskState.COMPLETED
        assert {r["instance"] for r in task_records(driver, "after", "j")} == {other}
        # When the thread finally ends, Then the slot is free again
        wait_for_line(cluster.log_dir / f"{first}.log", "its abandoned thread ended", 30)
        wait_for_data(zk, live, lambda b: "abandoned" not in b, timeout=10)
        pinned = record_job(1, 0.1, instance_group_tag="first")
        driver.start(Workflow.builder("again").add_job("j", pinned).build())
        assert wait_final(driver, "again", timeout=30) is TaskState.COMPLETED
        assert task_records(driver, "again", "j")[0]["instance"] == first
        # and the late result ("finished regardless") was ignored
        task = driver.get_job_context("stuck", "j").tasks[0]
        assert (task.state, task.num_attempts) == (P.STOPPED, 1)
        assert driver.get_workflow_context("stuck").state is TaskState.STOPPED


def test_a_thread_ignoring_its_timeout_is_timed_out_after_its_grace(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a task past its 0.5 s timeout_per_task that ignores the cancel
        job = stubborn(60, 0.5, timeout_per_task=0.5)
        driver.start(Workflow.builder("late").add_job("j", job).build())
        # Then it is TIMED_OUT once the grace is over, and its job FAILED (no attempts left)
        assert wait_final(driver, "late", timeout=30) is TaskState.FAILED
        task = driver.get_job_context("late", "j").tasks[0]
        assert task.state is P.TIMED_OUT
        assert "abandoned" in task.info


def test_a_worker_process_ignoring_cancel_and_sigterm_is_killed(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster, client(cluster) as zk:
        driver = cluster.driver
        inst = cluster.instances[0]
        # Given a process-isolated task that ignores its cancel and SIGTERM
        job = stubborn(600, 0.5, isolation="process", ignore_sigterm=True)
        driver.start(Workflow.builder("proc").add_job("j", job).build())
        wait_job(cluster, "proc", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        ctx = driver.get_job_context("proc", "j")
        path = cluster.paths.task_content("proc", "j", ctx.tasks[0].task_id)
        wait_for_data(zk, path, lambda b: "pid" in b, timeout=30)
        pid = int(driver.get_task_user_content_map("proc", "j", ctx.tasks[0].task_id)["pid"])
        assert pid != cluster.pid(inst)  # it runs in a worker process
        # When the workflow is stopped
        driver.wait_to_stop("proc", timeout=30)
        # Then the worker got SIGTERM, then SIGKILL, and the task ended STOPPED
        task = driver.get_job_context("proc", "j").tasks[0]
        assert task.state is P.STOPPED
        assert "did not end within its cancel grace" in task.info
        assert "SIGKILL" in task.info
        log = cluster.log_dir / f"{inst}.log"
        wait_for_line(log, "still there after SIGTERM: SIGKILL", 10)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        # and the participant runs the next process-isolated task in a new worker
        again = JobConfig(command="Sleep", num_tasks=1, isolation="process")
        driver.start(Workflow.builder("next").add_job("j", again).build())
        assert wait_final(driver, "next", timeout=60) is TaskState.COMPLETED
