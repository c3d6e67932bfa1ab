"""Dynamic tasks: add_task and delete_task on a running generic job."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskConfig, TaskPartitionState, TaskState, Workflow, WorkflowConfig
from helixpy.errors import AlreadyExists, InvalidConfig, NotFound
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_for_line, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def sleepy(*ids: str, seconds: str = "1.5") -> JobConfig:
    return JobConfig(
        command="Sleep",
        tasks=[TaskConfig(id=i) for i in ids],
        num_concurrent_tasks_per_instance=4,
        command_config={"seconds": seconds},
    )


def ids(cluster: LocalCluster, wf: str, job: str) -> dict[str, tuple[P | None, int]]:
    ctx = cluster.driver.get_job_context(wf, job)
    return {t.task_id: (t.state, t.num_attempts) for t in ctx.tasks.values()}


def test_a_task_added_to_a_running_job_runs_and_counts(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(Workflow.builder("grow").add_job("j", sleepy("t1", "t2")).build())
        wait_job(cluster, "grow", "j", lambda c: count(c, P.RUNNING) == 2, "running")
        # When a task is added while the job runs
        driver.add_task("grow", "j", TaskConfig(id="t3"))
        # Then it is visible at once, and runs before the job completes
        assert "t3" in ids(cluster, "grow", "j")
        assert [t.id for t in driver.get_job_config("grow", "j").tasks] == ["t1", "t2", "t3"]
        assert wait_final(driver, "grow") is S.COMPLETED
        assert ids(cluster, "grow", "j") == {i: (P.COMPLETED, 1) for i in ("t1", "t2", "t3")}


def test_helix_rules_for_adding_tasks(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(
            Workflow.builder("rules")
            .add_job("j", sleepy("t1", seconds="30"))
            .add_job("fan", JobConfig(command="Noop", expand="j"))
            .add_job("t", JobConfig(command="Noop", target_resource="db"))
            .add_job("done", JobConfig(tasks=[TaskConfig(id="x", command="Noop")]))
            .add_parent_child_dependency("j", "fan")
            .build()
        )
        with pytest.raises(AlreadyExists):
            driver.add_task("rules", "j", TaskConfig(id="t1"))
        with pytest.raises(InvalidConfig) as exc:
            driver.add_task("rules", "j", TaskConfig(id="t9", command="Noop"))
        assert exc.value.field == "task.command"  # the job has a command already
        for fixed, kind in (("fan", "a fan-out job"), ("t", "a targeted job")):
            with pytest.raises(InvalidConfig) as exc:
                driver.add_task("rules", fixed, TaskConfig(id="t9"))
            assert exc.value.field == "job.tasks" and kind in str(exc.value)
            with pytest.raises(InvalidConfig) as exc:
                driver.delete_task("rules", fixed, "0")
            assert exc.value.field == "job.tasks"
        with pytest.raises(NotFound):
            driver.delete_task("rules", "j", "nope")
        driver.poll_for_job_state("rules", "done", S.COMPLETED, timeout=30)
        with pytest.raises(InvalidConfig) as exc:
            driver.add_task("rules", "done", TaskConfig(id="y", command="Noop"))
        assert exc.value.field == "job.state"  # terminal
        driver.delete("rules")


def test_a_num_tasks_job_takes_added_and_deleted_tasks(zk_address: str) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a job of three tasks defined by num_tasks (ids "0", "1", "2"), held stopped
        job = JobConfig(
            command="Sleep",
            num_tasks=3,
            num_concurrent_tasks_per_instance=4,
            command_config={"seconds": "0.2"},
        )
        wf = (
            Workflow.builder("numbered")
            .set_config(WorkflowConfig(target_state="STOP"))
            .add_job("j", job)
            .build()
        )
        driver.start(wf)
        # When a task is added (as in Helix, any job but a targeted one takes tasks) and
        # task "1" is deleted
        driver.add_task("numbered", "j", TaskConfig(id="more", config={"seconds": "0.1"}))
        with pytest.raises(InvalidConfig) as exc:
            driver.add_task("numbered", "j", TaskConfig(id="x", command="Noop"))
        assert exc.value.field == "task.command"  # the job's command serves every task
        with pytest.raises(AlreadyExists):
            driver.add_task("numbered", "j", TaskConfig(id="2"))
        driver.delete_task("numbered", "j", "1")
        # Then the job is now defined by its task configs, the old ids kept
        assert [t.id for t in driver.get_job_config("numbered", "j").tasks] == ["0", "2", "more"]
        assert set(ids(cluster, "numbered", "j")) == {"0", "2", "more"}
        # and a new leader sees the same job; it runs to the end without task "1"
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        driver.resume("numbered")
        assert wait_final(driver, "numbered") is S.COMPLETED
        assert ids(cluster, "numbered", "j") == {i: (P.COMPLETED, 1) for i in ("0", "2", "more")}


def test_a_deleted_task_is_cancelled_and_gone_even_after_failover(zk_address: str) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        job = JobConfig(
            command="Sleep",
            num_concurrent_tasks_per_instance=2,
            tasks=[
                TaskConfig(id="long", config={"seconds": "60"}),
                TaskConfig(id="short", config={"seconds": "2"}),
            ],
        )
        driver.start(Workflow.builder("shrink").add_job("j", job).build())
        wait_job(cluster, "shrink", "j", lambda c: count(c, P.RUNNING) == 2, "running")
        # When the long task is deleted while it runs
        driver.delete_task("shrink", "j", "long")
        # Then it is gone from the context when the call returns
        assert set(ids(cluster, "shrink", "j")) == {"short"}
        # and its attempt is cancelled; it stays gone from the context and the config
        wait_for_line(
            cluster.log_dir / f"{cluster.instances[0]}.log",
            "shrink/j/0 attempt 1 cancelled",
            timeout=30,
        )
        assert set(ids(cluster, "shrink", "j")) == {"short"}
        assert [t.id for t in driver.get_job_config("shrink", "j").tasks] == ["short"]
        # and a new leader keeps it deleted; the job completes without it
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        assert wait_final(driver, "shrink") is S.COMPLETED
        assert ids(cluster, "shrink", "j") == {"short": (P.COMPLETED, 1)}


def test_added_tasks_cross_chunk_boundaries(zk_address: str) -> None:
    def noops(n: int) -> JobConfig:
        return JobConfig(
            command="Noop",
            num_concurrent_tasks_per_instance=40,
            tasks=[TaskConfig(id=f"t{i}") for i in range(n)],
        )

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given jobs that exactly fill a context chunk (160) and a task-config chunk (200),
        # held stopped so they cannot finish first
        wf = (
            Workflow.builder("edges")
            .set_config(WorkflowConfig(parallel_jobs=2, target_state="STOP"))
            .add_job("ctx", noops(160))
            .add_job("cfg", noops(200))
            .build()
        )
        driver.start(wf)
        # When one more task is added to each (a new chunk of each kind is created)
        driver.add_task("edges", "ctx", TaskConfig(id="extra"))
        driver.add_task("edges", "cfg", TaskConfig(id="extra"))
        # (visible at once, in the new chunk)
        assert ids(cluster, "edges", "ctx")["extra"] == (None, 0)
        assert ids(cluster, "edges", "cfg")["extra"] == (None, 0)
        driver.resume("edges")
        # Then every task, the added ones included, completes
        assert wait_final(driver, "edges", timeout=120) is S.COMPLETED
        for job, n in (("ctx", 161), ("cfg", 201)):
            got = ids(cluster, "edges", job)
            assert len(got) == n and got["extra"] == (P.COMPLETED, 1)
