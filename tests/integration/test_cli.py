"""The command line, run as a user would: real processes, real ZooKeeper."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import grpc
import pytest

from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from helixpy.testing.zookeeper import free_port
from tests.integration.helpers import helixpy_cli as helixpy
from tests.integration.helpers import leader_endpoint, wait_final

pytestmark = pytest.mark.cluster


WORKFLOW_YAML = """\
name: from-yaml
jobs:
  first:
    command: Noop
    num_tasks: 3
  second:
    command: Record
    num_tasks: 2
    parents: [first]
"""


def test_workflow_start_and_status_from_yaml(zk_address: str, tmp_path: Path) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        spec = tmp_path / "wf.yaml"
        spec.write_text(WORKFLOW_YAML)
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        # When a user starts a workflow from YAML (zk and cluster from the environment)
        out = helixpy("workflow", "start", str(spec), env=env)
        assert out.returncode == 0, out.stderr
        assert "started from-yaml" in out.stdout
        wait_final(cluster.driver, "from-yaml")
        # Then status shows it and its jobs
        # (here with --zk and --cluster on the command itself)
        status = helixpy(
            "workflow",
            "status",
            "from-yaml",
            "--zk",
            cluster.zk_address,
            "--cluster",
            cluster.cluster,
        )
        assert status.returncode == 0, status.stderr
        assert "workflow from-yaml: COMPLETED" in status.stdout
        assert "second" in status.stdout and "2/2 tasks completed" in status.stdout
        # and a bad file is refused with the line and field named, changing nothing
        spec.write_text(WORKFLOW_YAML.replace("num_tasks: 3", "num_tasks: -3"))
        bad = helixpy("workflow", "start", str(spec), env=env)
        assert bad.returncode != 0
        assert "jobs.first.num_tasks (line 5)" in bad.stderr
        missing = helixpy("workflow", "status", "nope", env=env)
        assert missing.returncode != 0 and "nope" in missing.stderr


def test_controller_rejects_invalid_specs_and_keeps_running(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        endpoint = leader_endpoint(cluster)
        bad_specs = [
            "not json",
            json.dumps({"name": "x", "jobs": {"j": {"num_tasks": 1}}}),
            json.dumps({"name": "../etc", "jobs": {}}),
            json.dumps(
                {"name": "x", "jobs": {"j": {"command": "Noop", "num_tasks": 1, "parents": ["zz"]}}}
            ),
        ]
        with grpc.insecure_channel(endpoint) as channel:
            stub = pb_grpc.ControllerStub(channel)
            for spec in bad_specs:
                # When a raw client sends an invalid spec (bypassing the driver's checks)
                reply = stub.StartWorkflow(
                    pb.StartWorkflowRequest(request_id=uuid.uuid4().hex, workflow_json=spec),
                    timeout=30,
                )
                # Then the controller answers INVALID_CONFIG naming the field
                assert reply.code == pb.INVALID_CONFIG, spec
                assert reply.field
            # and a request id that is not a valid name is refused too
            reply = stub.StartWorkflow(
                pb.StartWorkflowRequest(
                    request_id="../../x",
                    workflow_json=json.dumps(
                        {"name": "x", "jobs": {"j": {"command": "Noop", "num_tasks": 1}}}
                    ),
                ),
                timeout=30,
            )
            assert reply.code == pb.INVALID_CONFIG and reply.field == "request_id"
        # and it still serves
        from helixpy import JobConfig, TaskState, Workflow

        wf = Workflow.builder("ok").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "ok") is TaskState.COMPLETED


def test_zk_start_runs_a_server_in_the_foreground(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "helixpy.cli",
            "zk",
            "start",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "zk"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = connect(f"127.0.0.1:{port}", connect_timeout=30)
        client.create("/hello", b"world")
        assert client.get("/hello")[0] == b"world"
        client.stop()
        client.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def test_demo_runs_a_dag_and_exits_zero() -> None:
    out = helixpy("demo", timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "summary: workflow demo COMPLETED" in out.stdout
    assert "publish" in out.stdout


def test_up_runs_a_cluster_until_interrupted() -> None:
    # Given `helixpy up` with its own ZooKeeper
    proc = subprocess.Popen(
        [sys.executable, "-m", "helixpy.cli", "--cluster", "upc", "up", "--participants", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = ""
        for line in proc.stdout:  # blocks until the cluster prints its address
            if line.startswith("export "):
                break
        env = dict(kv.split("=", 1) for kv in line.split()[1:])
        # When a workflow is started against it
        from helixpy import JobConfig, TaskState, Workflow
        from helixpy.driver import TaskDriver

        with TaskDriver(env["HELIXPY_ZK"], env["HELIXPY_CLUSTER"]) as driver:
            driver.start(
                Workflow.builder("up").add_job("j", JobConfig(command="Noop", num_tasks=4)).build()
            )
            assert wait_final(driver, "up") is TaskState.COMPLETED
        # Then Ctrl-C stops everything and it exits cleanly
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_workflow_and_instance_commands(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        from helixpy import JobConfig, TaskState, Workflow

        cluster.driver.start(
            Workflow.builder("cli")
            .add_job("j", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "60"}))
            .build()
        )
        cluster.driver.poll_for_workflow_state("cli", TaskState.IN_PROGRESS, timeout=30)
        # stop (waiting), list, resume, watch nothing final yet, delete
        out = helixpy("workflow", "stop", "cli", "--wait", "30", env=env)
        assert out.returncode == 0 and "stopped cli" in out.stdout, out.stderr
        listed = helixpy("workflow", "list", env=env)
        assert "cli" in listed.stdout and "STOPPED" in listed.stdout
        assert helixpy("workflow", "resume", "cli", env=env).returncode == 0
        assert (
            cluster.driver.poll_for_workflow_state("cli", TaskState.IN_PROGRESS, timeout=30)
            is TaskState.IN_PROGRESS
        )
        watch = helixpy("workflow", "watch", "cli", "--timeout", "1", env=env)
        assert watch.returncode == 0 and "workflow cli: IN_PROGRESS" in watch.stdout
        deleted = helixpy("workflow", "delete", "cli", env=env)
        assert deleted.returncode == 0 and "deleted cli" in deleted.stdout
        assert "cli" not in cluster.driver.get_workflows()
        # instances: list, disable, enable
        inst = cluster.instances[0]
        assert inst in helixpy("instance", "list", env=env).stdout
        assert helixpy("instance", "disable", inst, env=env).returncode == 0
        assert "disabled" in helixpy("instance", "list", env=env).stdout
        assert helixpy("instance", "enable", inst, env=env).returncode == 0
        assert cluster.driver.get_instances()[inst]["enabled"] is True
        missing = helixpy("instance", "disable", "nobody", env=env)
        assert missing.returncode != 0 and "nobody" in missing.stderr


def test_queue_commands(zk_address: str, tmp_path: Path) -> None:
    from helixpy import TaskState

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        out = helixpy("queue", "create", "cq", "--parallel-jobs", "1", "--capacity", "5", env=env)
        assert out.returncode == 0 and "created queue cq" in out.stdout, out.stderr
        jobs = tmp_path / "jobs.yaml"
        jobs.write_text(
            "first: {command: Noop, num_tasks: 1}\nsecond: {command: Noop, num_tasks: 2}\n"
        )
        out = helixpy("queue", "enqueue", "cq", str(jobs), env=env)
        assert out.returncode == 0 and "enqueued first, second to cq" in out.stdout, out.stderr
        assert (
            cluster.driver.poll_for_job_state("cq", "second", TaskState.COMPLETED, timeout=60)
            is TaskState.COMPLETED
        )
        assert helixpy("queue", "flush", "cq", env=env).returncode == 0
        assert cluster.driver.get_workflow_context("cq").job_states == {}
        out = helixpy("queue", "cleanup", "cq", env=env)  # Helix's cleanupQueue: the alias
        assert out.returncode == 0 and "cleaned up cq" in out.stdout, out.stderr
        bad = helixpy("queue", "delete-job", "cq", "nope", env=env)
        assert bad.returncode != 0 and "nope" in bad.stderr
        jobs.write_text("x: {command: Noop, num_tasks: -1}\n")
        bad = helixpy("queue", "enqueue", "cq", str(jobs), env=env)
        assert bad.returncode != 0 and "jobs.x.num_tasks" in bad.stderr
        # A recurring queue with overlapping jobs, from the command line
        args = ["queue", "create", "rq", "--recurrence", "3600", "--allow-overlap-job-assignment"]
        out = helixpy(*args, "--start-time", "2030-01-01T00:00:00+00:00", env=env)
        assert out.returncode == 0 and "recurring every 3600s" in out.stdout, out.stderr
        cfg = cluster.driver.get_workflow_config("rq")
        assert cfg.allow_overlap_job_assignment is True and cfg.schedule is not None
        assert cfg.schedule.recurrence_interval == 3600
        assert cfg.schedule.start_time is not None and cfg.schedule.start_time.year == 2030
        bad = helixpy("queue", "create", "rq2", "--recurrence", "5", env=env)
        assert bad.returncode != 0 and "schedule.recurrence_interval" in bad.stderr
        bad = helixpy(
            "queue", "create", "rq3", "--start-time", "2030-01-01T00:00:00+00:00", env=env
        )
        assert bad.returncode != 0 and "--start-time" in bad.stderr


def test_job_task_commands(zk_address: str) -> None:
    from helixpy import JobConfig, TaskConfig, TaskState, Workflow

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        cluster.driver.start(
            Workflow.builder("dyn")
            .add_job(
                "j", JobConfig(command="Sleep", tasks=[TaskConfig(id="a", config={"seconds": "1"})])
            )
            .build()
        )
        out = helixpy("job", "add-task", "dyn", "j", "b", "--config", "seconds=0.1", env=env)
        assert out.returncode == 0 and "added task b to dyn/j" in out.stdout, out.stderr
        out = helixpy("job", "delete-task", "dyn", "j", "a", env=env)
        assert out.returncode == 0 and "deleted task a" in out.stdout, out.stderr
        assert (
            cluster.driver.poll_for_workflow_state("dyn", TaskState.COMPLETED, timeout=60)
            is TaskState.COMPLETED
        )
        ctx = cluster.driver.get_job_context("dyn", "j")
        assert [t.task_id for t in ctx.tasks.values()] == ["b"]
        bad = helixpy("job", "add-task", "dyn", "j", "c", "--config", "oops", env=env)
        assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_partition_commands(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        inst = cluster.instances[0]
        assert "(no partitions)" in helixpy("instance", "partitions", env=env).stdout
        # When a partition record is set, it is listed (for all instances and for this one)
        out = helixpy("instance", "set-partition", inst, "db", "db_0", "MASTER", env=env)
        assert out.returncode == 0, out.stderr
        for args in (("instance", "partitions"), ("instance", "partitions", inst)):
            listed = helixpy(*args, env=env)
            assert listed.returncode == 0, listed.stderr
            assert f"{inst} db db_0 MASTER" in listed.stdout
        assert cluster.driver.get_partitions() == {inst: {"db": {"db_0": "MASTER"}}}
        # Then removing it empties the list, and removing it again fails cleanly
        out = helixpy("instance", "remove-partition", inst, "db", "db_0", env=env)
        assert out.returncode == 0, out.stderr
        assert "(no partitions)" in helixpy("instance", "partitions", env=env).stdout
        again = helixpy("instance", "remove-partition", inst, "db", "db_0", env=env)
        assert again.returncode != 0
        assert "db_0" in again.stderr and "Traceback" not in again.stderr
        # and a bad name is refused before anything is sent
        bad = helixpy("instance", "set-partition", inst, "db", "../x", "MASTER", env=env)
        assert bad.returncode != 0 and "partition" in bad.stderr


def test_locks_list_shows_holders_types_intervals_priorities_and_revocation(
    zk_address: str,
) -> None:
    from helixpy.model.locks import LockType
    from helixpy.store.client import connect
    from helixpy.store.locks import LockBox

    with LocalCluster(participants=0, zk=zk_address) as cluster:
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        assert "(no locks)" in helixpy("locks", "list", env=env).stdout
        zk = connect(cluster.zk_address)
        try:
            low = LockBox(zk, cluster.cluster, "low-task", priority=25)
            assert low.try_acquire("tbl", (0, 10), LockType.SHARED).ok
            high = LockBox(zk, cluster.cluster, "high-task", priority=75)
            assert high.try_acquire("tbl", (5, 20), LockType.EXCLUSIVE).ok
            out = helixpy("locks", "list", "--resource", "tbl", env=env)
            assert out.returncode == 0, out.stderr
            lines = out.stdout.splitlines()
            assert any(
                "[0.0, 10.0)" in ln
                and "SHARED" in ln
                and "prio=25" in ln
                and "holders=low-task" in ln
                and ln.endswith("revoked")
                for ln in lines
            )
            assert any(
                "[5.0, 20.0)" in ln
                and "EXCLUSIVE" in ln
                and "prio=75" in ln
                and "holders=high-task" in ln
                and "revoked" not in ln
                for ln in lines
            )
        finally:
            zk.stop()
            zk.close()
