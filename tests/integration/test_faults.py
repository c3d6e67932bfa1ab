"""Faults below helixpy: a ZooKeeper that stops answering."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

import pytest
from kazoo.exceptions import ConnectionLoss

from helixpy import TaskPartitionState, TaskState, Workflow
from helixpy.controller.daemon import Controller
from helixpy.controller.membership import Membership
from helixpy.controller.runtime import LiveInstance
from helixpy.store.fencing import FencedWriter
from helixpy.store.ops import Op
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
    with (
        ZooKeeperServer(tick_time=0.5) as server,
        LocalCluster(participants=1, zk=server.connection_string, session_timeout=3.0) as cluster,
    ):
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


def test_a_killed_participants_attempts_run_elsewhere_and_nothing_is_lost(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address, session_timeout=4.0) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("death")
            .add_job("j", record_job(6, 2.0, num_concurrent_tasks_per_instance=3))
            .build()
        )
        driver.start(wf)
        ctx = wait_job(cluster, "death", "j", lambda c: count(c, P.RUNNING) == 6, "running")
        victim, survivor = cluster.instances
        on_victim = {p for p, t in ctx.tasks.items() if t.assigned_participant == victim}
        assert len(on_victim) == 3
        # When one participant is SIGKILLed with three attempts running
        cluster.kill_participant(victim)
        # Then after its session expires they run again on the other one, and all complete
        assert wait_final(driver, "death", timeout=90) is TaskState.COMPLETED
        ctx = driver.get_job_context("death", "j")
        for p, t in ctx.tasks.items():
            assert t.state is P.COMPLETED
            expected = (2, survivor) if p in on_victim else (1, survivor)
            assert (t.num_attempts, t.assigned_participant) == expected, (p, t)
        assert {r["instance"] for r in task_records(driver, "death", "j")} == {survivor}


def test_a_frozen_participant_is_replaced_and_rejoins_under_a_new_incarnation(
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, zk=zk_address, session_timeout=4.0) as cluster:
        driver = cluster.driver
        frozen, other = cluster.instances
        first_incarnation = cluster.incarnation(frozen)
        wf = Workflow.builder("freeze").add_job("j", record_job(2, 3.0)).build()
        driver.start(wf)
        ctx = wait_job(cluster, "freeze", "j", lambda c: count(c, P.RUNNING) == 2, "running")
        (mine,) = [p for p, t in ctx.tasks.items() if t.assigned_participant == frozen]
        # When it is frozen (SIGSTOP) past its session timeout
        cluster.send_signal(frozen, signal.SIGSTOP)
        try:
            # Then its task runs again on the other participant and completes there
            wait_job(
                cluster,
                "freeze",
                "j",
                lambda c: c.tasks[mine].state is P.COMPLETED,
                "rerun elsewhere",
                timeout=90,
            )
        finally:
            cluster.send_signal(frozen, signal.SIGCONT)
        assert wait_final(driver, "freeze", timeout=60) is TaskState.COMPLETED
        # and when it wakes it fences itself: its zombie attempt's report is ignored
        wait_for_line(cluster.log_dir / f"{frozen}.log", "fences itself", timeout=30)
        task = driver.get_job_context("freeze", "j").tasks[mine]
        assert (task.state, task.num_attempts, task.assigned_participant) == (P.COMPLETED, 2, other)
        assert task_records(driver, "freeze", "j")[mine]["instance"] == other
        # and it rejoins under a new incarnation and takes new work
        assert cluster.wait_registered(frozen, other_than=first_incarnation, timeout=30) != (
            first_incarnation
        )
        driver.set_instance_enabled(other, False)
        driver.start(Workflow.builder("after").add_job("j", record_job(1)).build())
        assert wait_final(driver, "after", timeout=60) is TaskState.COMPLETED
        assert driver.get_job_context("after", "j").tasks[0].assigned_participant == frozen


def test_an_ensemble_survives_leader_and_follower_loss_and_a_short_quorum_loss() -> None:
    from helixpy.testing import local_ensemble

    with (
        local_ensemble(3) as ensemble,
        LocalCluster(
            participants=2, controllers=2, zk=ensemble.connection_string, session_timeout=8.0
        ) as cluster,
    ):
        driver = cluster.driver
        pids = {name: cluster.pid(name) for name in cluster.instances}
        # When the ZooKeeper leader dies while work runs, nothing stops
        driver.start(Workflow.builder("zl").add_job("j", record_job(20, 0.2)).build())
        ensemble.kill(ensemble.leader())
        assert wait_final(driver, "zl", timeout=120) is TaskState.COMPLETED
        # and after it is back, losing a follower stops nothing either
        dead = next(i for i, s in enumerate(ensemble.servers) if not s.running)
        ensemble.start(dead)
        leader = ensemble.leader()
        follower = next(i for i in range(3) if i != leader)
        driver.start(Workflow.builder("zf").add_job("j", record_job(20, 0.2)).build())
        ensemble.kill(follower)
        assert wait_final(driver, "zf", timeout=120) is TaskState.COMPLETED
        ensemble.start(follower)
        # When quorum is lost for a moment (two of three down), the daemons wait it out
        down = [i for i in range(3) if i != ensemble.leader()]
        for i in down:
            ensemble.kill(i)
        for i in down:
            ensemble.start(i)
        driver.start(Workflow.builder("zq").add_job("j", record_job(10, 0.2)).build())
        assert wait_final(driver, "zq", timeout=120) is TaskState.COMPLETED
        # and no participant process was restarted
        assert {name: cluster.pid(name) for name in cluster.instances} == pids
        assert all(cluster.exit_code(name, 0) is None for name in cluster.instances)


@contextlib.contextmanager
def in_process_controller(zk_address: str) -> Iterator[LocalCluster]:
    """A cluster whose one controller runs in this process (so a test can patch its code)
    and whose participant is a real process."""
    cluster_name = f"c{uuid.uuid4().hex[:8]}"
    controller = Controller(zk_address, cluster_name, "in-process", session_timeout=6.0)
    controller.start()
    try:
        with LocalCluster(
            participants=1, controllers=0, zk=zk_address, cluster=cluster_name
        ) as cluster:
            yield cluster
    finally:
        controller.stop()


def test_a_pass_that_loses_the_connection_mid_fold_reads_those_reports_again(
    zk_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a controller in this process whose next instance-report read fails with a
    # connection loss (as when the ZooKeeper server it talks to dies mid-pass); the failed
    # read arms no watch, so only the pipeline's own bookkeeping can bring it back
    failures: list[str] = []
    armed = threading.Event()
    fold = Membership.fold

    def flaky_fold(self: Membership, insts: list[LiveInstance], now: datetime) -> None:
        if armed.is_set() and insts:
            armed.clear()
            failures.extend(inst.name for inst in insts)
            raise ConnectionLoss()
        fold(self, insts, now)

    monkeypatch.setattr(Membership, "fold", flaky_fold)
    with in_process_controller(zk_address) as cluster:
        # When the fold of the first report after the start fails
        armed.set()
        cluster.driver.start(Workflow.builder("lost").add_job("j", record_job(3)).build())
        # Then the next pass reads that instance again and the workflow completes
        assert wait_final(cluster.driver, "lost", timeout=30) is TaskState.COMPLETED
        assert failures == cluster.instances


def test_a_start_whose_answer_was_lost_runs_when_the_driver_retries(
    zk_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a controller whose next start multi lands in ZooKeeper but whose answer is lost
    # (a connection blip after the commit): the driver retries with the same request id
    armed = threading.Event()
    commit, commit_async = FencedWriter.commit, FencedWriter.commit_async

    def starts_lost(ops: Sequence[Op]) -> bool:
        return armed.is_set() and any(op.path.endswith("/WORKFLOWS/lost/CONFIG") for op in ops)

    def lossy_commit(self: FencedWriter, ops: Sequence[Op]) -> None:
        commit(self, ops)
        if starts_lost(ops):
            armed.clear()
            raise ConnectionLoss()

    def lossy_commit_async(self: FencedWriter, ops: Sequence[Op]) -> Callable[[], None] | None:
        # A start goes through the group commit's sent-ahead multi: its wait loses the answer.
        wait = commit_async(self, ops)
        if wait is None or not starts_lost(ops):
            return wait

        def lost() -> None:
            assert wait is not None
            wait()
            armed.clear()
            raise ConnectionLoss()

        return lost

    monkeypatch.setattr(FencedWriter, "commit", lossy_commit)
    monkeypatch.setattr(FencedWriter, "commit_async", lossy_commit_async)
    with in_process_controller(zk_address) as cluster:
        armed.set()
        # When the workflow is started (the first answer is lost, the retry gets OK)
        cluster.driver.start(Workflow.builder("lost").add_job("j", record_job(2)).build())
        assert not armed.is_set()  # the loss really happened
        # Then it runs: the retry made the leader adopt what its first attempt wrote
        assert wait_final(cluster.driver, "lost", timeout=30) is TaskState.COMPLETED
