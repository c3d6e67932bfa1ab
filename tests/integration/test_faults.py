"""Faults below helixpy: a ZooKeeper that stops answering."""

from __future__ import annotations

import os
import signal

import pytest

from helixpy import TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster
from helixpy.testing.zookeeper import ZooKeeperServer
from tests.integration.helpers import (
    count,
    record_job,
    task_records,
    wait_final,
    wait_for_line,
    wait_job,
)

pytestmark = pytest.mark.cluster
P = TaskPartitionState


def test_participant_fences_itself_when_zookeeper_goes_silent() -> None:
    with ZooKeeperServer(tick_time=0.5) as server, LocalCluster(
            participants=1, zk=server.connection_string, session_timeout=3.0) as cluster:
        inst = cluster.instances[0]
        wf = Workflow.builder("silent").add_job("j", record_job(1, 3.0)).build()
        cluster.driver.start(wf)
        wait_job(cluster, "silent", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        first_incarnation = cluster.incarnation(inst)
        # Given ZooKeeper frozen while a task runs
        assert server.pid is not None
        os.kill(server.pid, signal.SIGSTOP)
        try:
            # When the participant hears nothing for 2/3 of its session timeout
            wait_for_line(cluster.log_dir / f"{inst}.log", "fences itself", timeout=20)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        # Then it cancelled its attempt and came back under a new incarnation, and the task
        # ran again as a new attempt instead of the fenced one reporting
        assert wait_final(cluster.driver, "silent", timeout=90) is TaskState.COMPLETED
        task = cluster.driver.get_job_context("silent", "j").tasks[0]
        assert (task.state, task.num_attempts) == (P.COMPLETED, 2)
        assert [r["attempt"] for r in task_records(cluster.driver, "silent", "j")] == ["2"]
        assert cluster.incarnation(inst) != first_incarnation
