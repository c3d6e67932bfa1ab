"""Controllers and participants failing: takeover, fencing, restarts, graceful stops."""

from __future__ import annotations

import json
import signal
import time
import uuid
from typing import Any

import grpc
import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import (
    count,
    leader_endpoint,
    record_job,
    task_records,
    wait_final,
    wait_for_line,
    wait_job,
)

pytestmark = pytest.mark.cluster
P = TaskPartitionState


def test_standby_finishes_the_workflow_after_the_leader_is_killed(zk_address: str) -> None:
    with LocalCluster(participants=3, controllers=2, zk=zk_address) as cluster:
        wf = (
            Workflow.builder("failover")
            .add_job("j", record_job(30, 0.2, num_concurrent_tasks_per_instance=2))
            .build()
        )
        cluster.driver.start(wf)
        wait_job(cluster, "failover", "j", lambda c: count(c, P.COMPLETED) >= 5, "5 completed")
        # When the leader is SIGKILLed mid-workflow
        old = cluster.kill_controller()
        # Then the standby takes over and finishes it; no task ran twice
        assert cluster.wait_for_leader(exclude=old) != old
        assert wait_final(cluster.driver, "failover") is TaskState.COMPLETED
        ctx = cluster.driver.get_job_context("failover", "j")
        assert {(t.state, t.num_attempts) for t in ctx.tasks.values()} == {(P.COMPLETED, 1)}


def test_frozen_leader_that_wakes_after_takeover_cannot_write(zk_address: str) -> None:
    with LocalCluster(participants=2, controllers=2, zk=zk_address, session_timeout=4.0) as cluster:
        wf = (
            Workflow.builder("frozen")
            .add_job("j", record_job(20, 0.2, num_concurrent_tasks_per_instance=2))
            .build()
        )
        cluster.driver.start(wf)
        wait_job(cluster, "frozen", "j", lambda c: count(c, P.COMPLETED) >= 2, "2 completed")
        zk = connect(cluster.zk_address)
        try:
            _, epoch_before = zk.get(cluster.paths.epoch)
            # Given the leader frozen (SIGSTOP) until a standby took over
            old = cluster.leader()
            cluster.freeze_controller(old)
            new = cluster.wait_for_leader(exclude=old)
            _, epoch_after = zk.get(cluster.paths.epoch)
            assert epoch_after.version > epoch_before.version
            # When the old leader wakes up
            cluster.thaw_controller(old)
            # Then the workflow still completes, each task exactly once, under the new leader
            assert wait_final(cluster.driver, "frozen") is TaskState.COMPLETED
            ctx = cluster.driver.get_job_context("frozen", "j")
            assert {(t.state, t.num_attempts) for t in ctx.tasks.values()} == {(P.COMPLETED, 1)}
            assert cluster.leader() == new
            # and a write fenced with the old epoch is refused by ZooKeeper
            from helixpy.errors import Fenced
            from helixpy.store.fencing import FencedWriter
            from helixpy.store.ops import SetData

            stale = FencedWriter(zk, cluster.paths.epoch, epoch_before.version)
            before, _ = zk.get(cluster.paths.workflow_context("frozen"))
            with pytest.raises(Fenced):
                stale.commit([SetData(cluster.paths.workflow_context("frozen"), b"{}")])
            assert zk.get(cluster.paths.workflow_context("frozen"))[0] == before
        finally:
            zk.stop()
            zk.close()
        # and the old leader stood down when it woke (session expired, or fenced on a write)
        log_path = cluster.log_dir / f"{old}.log"
        wait_for_line(log_path, ("leadership term ended", "fenced, stepping down"), timeout=30)
        assert log_path.read_text().count("leads with epoch") == 1


def test_restarted_participant_does_not_rerun_stale_assignments(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, session_timeout=20.0) as cluster:
        inst = cluster.instances[0]
        # Given long tasks running on the only participant
        wf = (
            Workflow.builder("restart")
            .add_job(
                "j",
                JobConfig(
                    command="Record",
                    num_tasks=2,
                    num_concurrent_tasks_per_instance=2,
                    command_config={"seconds": "3"},
                ),
            )
            .build()
        )
        cluster.driver.start(wf)
        driver = cluster.driver
        wait_job(cluster, "restart", "j", lambda c: count(c, P.RUNNING) == 2, "2 running")
        old_inc = cluster.incarnation(inst)
        # When it is killed and restarted under the same id before its session expires
        cluster.kill_participant(inst)
        cluster.start_participant(inst)
        assert cluster.incarnation(inst) != old_inc
        # Then the old attempts were DROPPED and each task ran again as attempt 2, never
        # re-running attempt 1 from the stale assignment
        assert wait_final(driver, "restart", timeout=60) is TaskState.COMPLETED
        ctx = driver.get_job_context("restart", "j")
        assert {(t.state, t.num_attempts) for t in ctx.tasks.values()} == {(P.COMPLETED, 2)}
        assert {r["attempt"] for r in task_records(driver, "restart", "j")} == {"2"}


def test_graceful_stop_lets_running_tasks_finish(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        inst = cluster.instances[0]
        wf = (
            Workflow.builder("graceful")
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
        cluster.driver.start(wf)
        wait_job(cluster, "graceful", "j", lambda c: count(c, P.RUNNING) == 2, "2 running")
        # When the participant gets SIGTERM while both run
        cluster.stop_participant(inst)
        # Then both finished and reported before it left: COMPLETED, first attempt
        ctx = cluster.driver.get_job_context("graceful", "j")
        assert {(t.state, t.num_attempts) for t in ctx.tasks.values()} == {(P.COMPLETED, 1)}
        assert cluster.driver.get_workflow_context("graceful").state is TaskState.COMPLETED


def test_a_retried_request_id_applies_once_across_a_leader_change(zk_address: str) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        wf = Workflow.builder("once").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        request = pb.StartWorkflowRequest(
            request_id=uuid.uuid4().hex, workflow_json=json.dumps(wf.to_dict())
        )

        def send() -> Any:
            with grpc.insecure_channel(leader_endpoint(cluster)) as channel:
                return pb_grpc.ControllerStub(channel).StartWorkflow(request, timeout=30)

        # Given a start applied by the first leader
        assert send().code == pb.OK
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        # When the same request is retried against the new leader
        reply = send()
        # Then it answers OK (not ALREADY_EXISTS) and the workflow exists once
        assert reply.code == pb.OK, reply
        assert wait_final(cluster.driver, "once") is TaskState.COMPLETED
        # while a new request for the same name is refused
        request = pb.StartWorkflowRequest(
            request_id=uuid.uuid4().hex, workflow_json=json.dumps(wf.to_dict())
        )
        assert send().code == pb.ALREADY_EXISTS


def test_a_second_sigterm_exits_at_once(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        inst = cluster.instances[0]
        # Given a task that would keep a graceful stop waiting for its whole grace period
        wf = (
            Workflow.builder("impatient")
            .add_job(
                "j", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "120"})
            )
            .build()
        )
        cluster.driver.start(wf)
        wait_job(cluster, "impatient", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        # When the participant gets SIGTERM (grace 30 s) and then a second SIGTERM
        cluster.send_signal(inst, signal.SIGTERM)
        assert cluster.exit_code(inst, timeout=1.0) is None  # still draining
        cluster.send_signal(inst, signal.SIGTERM)
        # Then it exits at once, with a failure code
        assert cluster.exit_code(inst, timeout=10.0) not in (None, 0)


def test_a_leader_stopped_with_sigterm_hands_over_before_its_session_expires(
    zk_address: str,
) -> None:
    # Given two controllers with a long session timeout (a killed leader would hold on
    # to leadership for 20 s)
    with LocalCluster(
        participants=1, controllers=2, zk=zk_address, session_timeout=20.0
    ) as cluster:
        old = cluster.leader()
        # When the leader gets SIGTERM
        started = time.monotonic()
        cluster.send_signal(old, signal.SIGTERM)
        # Then it resigns and the standby leads well before the session would expire
        new = cluster.wait_for_leader(exclude=old, timeout=10.0)
        assert new != old and time.monotonic() - started < 10.0
        assert cluster.exit_code(old, timeout=15.0) == 0
        # and the new leader runs work
        cluster.driver.start(Workflow.builder("after").add_job("j", record_job(2)).build())
        assert wait_final(cluster.driver, "after") is TaskState.COMPLETED
