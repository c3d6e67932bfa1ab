"""Job queues: order, parallel_jobs, atomic enqueue, failures, delete/flush, purge, failover."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, JobQueue, TaskState, WorkflowConfig
from helixpy.errors import AlreadyExists, InvalidConfig
from helixpy.testing import LocalCluster
from tests.integration.helpers import task_records, wait_gone

pytestmark = pytest.mark.cluster
S = TaskState


def rec(seconds: float, **kw: object) -> JobConfig:
    return JobConfig(command="Record", num_tasks=1, command_config={"seconds": str(seconds)}, **kw)  # type: ignore[arg-type]


def span(cluster: LocalCluster, queue: str, job: str) -> tuple[float, float]:
    (r,) = task_records(cluster.driver, queue, job)
    return float(r["start"]), float(r["finish"])


def test_queue_runs_jobs_in_enqueue_order_and_never_completes(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("q").build())
        with pytest.raises(AlreadyExists):
            driver.create_queue(JobQueue.builder("q").build())
        driver.enqueue_jobs("q", {"c": rec(0.2), "a": rec(0.2), "b": rec(0.2)})
        for job in ("c", "a", "b"):
            assert driver.poll_for_job_state("q", job, S.COMPLETED, timeout=60) is S.COMPLETED
        # one at a time (parallel_jobs 1), in enqueue order, not name order
        spans = [span(cluster, "q", j) for j in ("c", "a", "b")]
        assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
        # and the queue itself stays IN_PROGRESS, ready for more
        assert driver.get_workflow_context("q").state is S.IN_PROGRESS
        driver.enqueue_job("q", "d", rec(0.1))
        assert driver.poll_for_job_state("q", "d", S.COMPLETED, timeout=60) is S.COMPLETED


def test_parallel_jobs_lets_queue_jobs_overlap(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(
            JobQueue.builder("par").set_config(WorkflowConfig(parallel_jobs=2)).build()
        )
        driver.enqueue_jobs("par", {"one": rec(1.5), "two": rec(1.5)})
        for job in ("one", "two"):
            assert driver.poll_for_job_state("par", job, S.COMPLETED, timeout=60) is S.COMPLETED
        first_finish = span(cluster, "par", "one")[1]
        second_start = span(cluster, "par", "two")[0]
        assert second_start < first_finish  # the second started before the first finished


def test_enqueue_is_atomic_and_respects_capacity(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("cap").set_config(WorkflowConfig(capacity=2)).build())
        driver.enqueue_job("cap", "a", rec(0.1))
        # a batch with a duplicate writes nothing
        with pytest.raises(AlreadyExists):
            driver.enqueue_jobs("cap", {"b": rec(0.1), "a": rec(0.1)})
        assert set(driver.get_workflow_context("cap").job_states) == {"a"}
        # a batch that does not fit writes nothing, and says why
        with pytest.raises(InvalidConfig) as exc:
            driver.enqueue_jobs("cap", {"b": rec(0.1), "c": rec(0.1)})
        assert exc.value.field == "queue.capacity" and "full" in exc.value.rule
        assert set(driver.get_workflow_context("cap").job_states) == {"a"}
        driver.enqueue_job("cap", "b", rec(0.1))
        assert driver.poll_for_job_state("cap", "b", S.COMPLETED, timeout=60) is S.COMPLETED


def test_a_failed_job_fails_the_next_unless_it_ignores_that(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("fq").build())
        driver.enqueue_jobs(
            "fq",
            {
                "bad": JobConfig(command="Fail", num_tasks=1, max_attempts_per_task=1),
                "next": rec(0.1),
                "tolerant": rec(0.1, ignore_dependent_job_failure=True),
            },
        )
        assert driver.poll_for_job_state("fq", "next", S.FAILED, timeout=60) is S.FAILED
        assert driver.poll_for_job_state("fq", "tolerant", S.COMPLETED, timeout=60) is S.COMPLETED
        # the queue ignores its failure threshold: still IN_PROGRESS
        assert driver.get_workflow_context("fq").state is S.IN_PROGRESS


def test_delete_job_and_flush(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("dq").build())
        driver.enqueue_jobs("dq", {"done": rec(0.1), "slow": rec(60), "later": rec(0.1)})
        driver.poll_for_job_state("dq", "slow", S.IN_PROGRESS, timeout=60)
        # refused while the queue runs
        with pytest.raises(InvalidConfig) as exc:
            driver.delete_job("dq", "slow")
        assert exc.value.field == "queue.state"
        # forced: the running job goes, and the next one is re-linked behind "done"
        driver.delete_job("dq", "slow", force=True)
        assert driver.poll_for_job_state("dq", "later", S.COMPLETED, timeout=60) is S.COMPLETED
        assert list(driver.get_workflow_context("dq").job_states) == ["done", "later"]
        # flush removes finished jobs
        driver.flush_queue("dq")
        assert driver.get_workflow_context("dq").job_states == {}
        wait_gone(cluster, cluster.paths.job("dq", "done"))
        # and so does Helix's cleanupQueue, its alias
        driver.enqueue_job("dq", "again", rec(0.1))
        assert driver.poll_for_job_state("dq", "again", S.COMPLETED, timeout=60) is S.COMPLETED
        driver.cleanup_queue("dq")
        assert driver.get_workflow_context("dq").job_states == {}
        wait_gone(cluster, cluster.paths.job("dq", "again"))


def test_finished_queue_jobs_are_purged_after_their_expiry(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("pq").build())
        driver.enqueue_jobs("pq", {"brief": rec(0.1, expiry=1.0), "kept": rec(0.1)})
        assert driver.poll_for_job_state("pq", "kept", S.COMPLETED, timeout=60) is S.COMPLETED
        wait_gone(cluster, cluster.paths.job("pq", "brief"), timeout=30)
        assert list(driver.get_workflow_context("pq").job_states) == ["kept"]


def test_queue_purges_are_batched_at_most_once_per_job_purge_interval(zk_address: str) -> None:
    import time

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(
            JobQueue.builder("bq").set_config(WorkflowConfig(job_purge_interval=3.0)).build()
        )
        # Given a first expired job purged as soon as it is due
        driver.enqueue_job("bq", "a", rec(0.05, expiry=0.0))
        wait_gone(cluster, cluster.paths.job("bq", "a"), timeout=30)
        purged_a = time.monotonic()
        # When a second one expires at once right after
        driver.enqueue_job("bq", "b", rec(0.05, expiry=0.0))
        wait_gone(cluster, cluster.paths.job("bq", "b"), timeout=30)
        # Then it waits for the next purge, an interval after the first (minus watch lag)
        assert time.monotonic() - purged_a >= 2.5


def test_a_queue_keeps_its_order_across_a_controller_restart(zk_address: str) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("fo").build())
        driver.enqueue_jobs("fo", {"z": rec(1.0), "y": rec(0.1), "x": rec(0.1)})
        driver.poll_for_job_state("fo", "z", S.IN_PROGRESS, timeout=60)
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        for job in ("z", "y", "x"):
            assert driver.poll_for_job_state("fo", job, S.COMPLETED, timeout=60) is S.COMPLETED
        spans = [span(cluster, "fo", j) for j in ("z", "y", "x")]
        assert spans[0][1] <= spans[1][0] and spans[1][1] <= spans[2][0]
        assert list(driver.get_workflow_context("fo").job_states) == ["z", "y", "x"]


def test_update_workflow_changes_a_running_queue(zk_address: str) -> None:
    from helixpy import Workflow

    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue.builder("upq").build())
        # When a queue of parallel_jobs 1 is updated to 2
        driver.update_workflow("upq", WorkflowConfig(parallel_jobs=2))
        assert driver.get_workflow_config("upq").parallel_jobs == 2
        assert driver.get_workflow_config("upq").terminable is False  # still a queue
        # Then its jobs overlap
        driver.enqueue_jobs("upq", {"one": rec(1.5), "two": rec(1.5)})
        for job in ("one", "two"):
            assert driver.poll_for_job_state("upq", job, S.COMPLETED, timeout=60) is S.COMPLETED
        assert span(cluster, "upq", "two")[0] < span(cluster, "upq", "one")[1]
        # and a plain workflow cannot be updated
        driver.start(Workflow.builder("plain").add_job("j", rec(0.1)).build())
        with pytest.raises(InvalidConfig) as exc:
            driver.update_workflow("plain", WorkflowConfig(parallel_jobs=3))
        assert exc.value.field == "workflow"
