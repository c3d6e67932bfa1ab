"""Targeted jobs: one task per partition of a resource, run where the partition is hosted."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, task_records, wait_final, wait_for_line, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def _targeted(seconds: float = 0.05, **kw: object) -> JobConfig:
    return JobConfig(
        command="Record", target_resource="db", command_config={"seconds": str(seconds)}, **kw
    )  # type: ignore[arg-type]


def test_a_targeted_job_runs_one_task_per_partition_where_it_is_in_a_target_state(
    zk_address: str,
) -> None:
    with LocalCluster(participants=3, zk=zk_address) as cluster:
        driver = cluster.driver
        p0, p1, p2 = cluster.instances
        # Given a resource of four partitions, each MASTER on one instance, SLAVE on another
        masters = {"db_0": p0, "db_1": p1, "db_2": p2, "db_10": p0}
        for part, inst in masters.items():
            driver.set_partition_state(inst, "db", part, "MASTER")
            slave = cluster.instances[(cluster.instances.index(inst) + 1) % 3]
            driver.set_partition_state(slave, "db", part, "SLAVE")
        assert driver.get_partitions(p0)[p0]["db"] == {
            "db_0": "MASTER",
            "db_10": "MASTER",
            "db_2": "SLAVE",
        }
        # When a job targets the MASTER replicas
        wf = (
            Workflow.builder("tgt")
            .add_job(
                "j",
                _targeted(target_partition_states=["MASTER"], num_concurrent_tasks_per_instance=2),
            )
            .build()
        )
        driver.start(wf)
        # Then it has one task per partition (natural order), each run on the MASTER's host
        assert wait_final(driver, "tgt") is S.COMPLETED
        ctx = driver.get_job_context("tgt", "j")
        assert [t.task_id for _, t in sorted(ctx.tasks.items())] == [
            "db_0",
            "db_1",
            "db_2",
            "db_10",
        ]
        assert {t.task_id: t.assigned_participant for t in ctx.tasks.values()} == masters
        assert [r["instance"] for r in task_records(driver, "tgt", "j")] == list(masters.values())
        cfg = driver.get_job_config("tgt", "j")
        assert [t.target_partition for t in cfg.tasks] == ["db_0", "db_1", "db_2", "db_10"]


def test_target_partitions_choose_the_tasks_and_any_state_counts_when_none_is_named(
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        p0, p1 = cluster.instances
        driver.set_partition_state(p0, "db", "db_0", "ONLINE")
        driver.set_partition_state(p1, "db", "db_1", "OFFLINE")
        driver.set_partition_state(p1, "db", "db_2", "ONLINE")
        # When a job names two partitions and no states
        wf = (
            Workflow.builder("some")
            .add_job("j", _targeted(target_partitions=["db_1", "db_0"]))
            .build()
        )
        driver.start(wf)
        # Then exactly those two run, each where its partition is, whatever its state
        assert wait_final(driver, "some") is S.COMPLETED
        ctx = driver.get_job_context("some", "j")
        assert {t.task_id: t.assigned_participant for t in ctx.tasks.values()} == {
            "db_1": p1,
            "db_0": p0,
        }


def test_a_task_follows_its_partition_when_it_moves(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        p0, p1 = cluster.instances
        driver.set_partition_state(p0, "db", "db_0", "MASTER")
        driver.set_partition_state(p1, "db", "db_0", "SLAVE")
        wf = (
            Workflow.builder("follow")
            .add_job("j", _targeted(seconds=3, target_partition_states=["MASTER"]))
            .build()
        )
        driver.start(wf)
        ctx = wait_job(cluster, "follow", "j", lambda c: count(c, P.RUNNING) == 1, "running")
        assert ctx.tasks[0].assigned_participant == p0
        # When the MASTER moves to the other instance
        driver.set_partition_state(p0, "db", "db_0", "SLAVE")
        driver.set_partition_state(p1, "db", "db_0", "MASTER")
        # Then the attempt there is cancelled and the task runs again where the MASTER is now
        wait_for_line(
            cluster.log_dir / f"{p0}.log", "follow/j/0 attempt 1 cancelled: MOVED", timeout=30
        )
        assert wait_final(driver, "follow") is S.COMPLETED
        task = driver.get_job_context("follow", "j").tasks[0]
        assert (task.state, task.num_attempts, task.assigned_participant) == (P.COMPLETED, 2, p1)
        assert task_records(driver, "follow", "j")[0]["instance"] == p1


def test_a_partition_counts_as_hosted_only_while_its_instance_is_live(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        p0, p1 = cluster.instances
        # Given the only host of db_0 is down (its record stays)
        driver.set_partition_state(p0, "db", "db_0", "MASTER")
        cluster.stop_participant(p0)
        assert driver.get_partitions()[p0]["db"]["db_0"] == "MASTER"
        wf = (
            Workflow.builder("down")
            .add_job("j", _targeted(target_partition_states=["MASTER"]))
            .build()
        )
        driver.start(wf)
        wait_job(cluster, "down", "j", lambda c: len(c.tasks) == 1, "tasks fixed")
        # When the partition comes up on a live instance
        driver.set_partition_state(p1, "db", "db_0", "MASTER")
        # Then the task runs there, on its first attempt: the dead host was never tried
        assert wait_final(driver, "down") is S.COMPLETED
        task = driver.get_job_context("down", "j").tasks[0]
        assert (task.state, task.num_attempts, task.assigned_participant) == (P.COMPLETED, 1, p1)


def test_a_missing_or_too_wide_target_resource_fails_the_job_with_a_clear_info(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.set_partition_state(cluster.instances[0], "db", "db_0", "MASTER")
        wf = (
            Workflow.builder("nores")
            .add_job("j", JobConfig(command="Noop", target_resource="nosuch"))
            .build()
        )
        driver.start(wf)
        assert wait_final(driver, "nores") is S.FAILED
        ctx = driver.get_job_context("nores", "j")
        assert ctx.state is S.FAILED
        assert "target resource 'nosuch' has no partition on any instance" in ctx.info
        assert ctx.tasks == {}
        # and one that targets more partitions than the cluster's max_tasks_per_job fails so
        driver.set_partition_state(cluster.instances[0], "db", "db_1", "MASTER")
        driver.set_cluster_config(max_tasks_per_job=1)
        driver.start(
            Workflow.builder("wide")
            .add_job("j", JobConfig(command="Noop", target_resource="db"))
            .build()
        )
        assert wait_final(driver, "wide") is S.FAILED
        ctx = driver.get_job_context("wide", "j")
        assert "targets 2 partitions, over the cluster's max_tasks_per_job=1" in ctx.info
        assert ctx.tasks == {}


def test_partition_records_survive_a_controller_change_and_bad_ones_are_refused(
    zk_address: str,
) -> None:
    from helixpy.errors import InvalidConfig, NotFound

    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        p0 = cluster.instances[0]
        driver.set_partition_state(p0, "db", "db_0", "MASTER")
        with pytest.raises(NotFound, match="never registered"):
            driver.set_partition_state("ghost", "db", "db_0", "MASTER")
        with pytest.raises(InvalidConfig, match="state"):
            driver.set_partition_state(p0, "db", "db_0", "bad state")
        # When the leader dies, the new one still knows where db_0 is
        cluster.wait_for_leader(exclude=cluster.kill_controller())
        wf = Workflow.builder("after").add_job("j", _targeted()).build()
        driver.start(wf)
        assert wait_final(driver, "after") is S.COMPLETED
        assert driver.get_job_context("after", "j").tasks[0].assigned_participant == p0
        # And removing the last record empties the instance's map
        driver.remove_partition(p0, "db", "db_0")
        assert driver.get_partitions(p0) == {}
        with pytest.raises(NotFound):
            driver.remove_partition(p0, "db", "db_0")
