"""A long queue: its jobs' states in CONTEXT chunks, readable whole, across a takeover."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, JobQueue, TaskState, WorkflowConfig
from helixpy.store.client import connect
from helixpy.store.codec import decode
from helixpy.store.paths import JOB_STATES_CHUNK
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_for_data, wait_gone

pytestmark = pytest.mark.cluster
S = TaskState
NOOP = JobConfig(command="Noop", num_tasks=1)


def test_a_long_queue_keeps_every_job_state_in_chunks_across_a_takeover(
    zk_address: str,
) -> None:
    n = 2 * JOB_STATES_CHUNK + 500  # three chunks
    names = [f"j{i:05d}" for i in range(n)]
    with LocalCluster(participants=2, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        paths = cluster.paths
        driver.create_queue(
            JobQueue.builder("long").set_config(WorkflowConfig(parallel_jobs=32)).build()
        )
        # Given a queue holding more jobs than one context chunk, some of them finished
        half = n // 2
        assert all(o.ok for o in driver.enqueue_many("long", {j: NOOP for j in names[:half]}))
        assert driver.poll_for_job_state("long", names[200], S.COMPLETED, timeout=60)
        # When its leader is killed while the jobs run, and more are enqueued after
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        assert all(o.ok for o in driver.enqueue_many("long", {j: NOOP for j in names[half:]}))
        for job in names[-64:]:  # the last ones finish after everything before them started
            assert driver.poll_for_job_state("long", job, S.COMPLETED, timeout=120)
        zk = connect(cluster.zk_address)
        try:
            wait_for_data(
                zk, paths.workflow_context("long"), lambda body: body.get("job_chunks") == 3, 30
            )
            # Then the stored context is three chunks, and reads back as every job in order
            assert sorted(zk.get_children(paths.workflow_context("long"))) == ["0", "1", "2"]
            last = decode(zk.get(paths.workflow_context_chunk("long", 2))[0])
            assert list(last["jobs"]) == names[2 * JOB_STATES_CHUNK :]
            ctx = driver.get_workflow_context("long")
            assert list(ctx.job_states) == names
            assert set(ctx.job_states.values()) == {S.COMPLETED}
            assert ctx.state is S.IN_PROGRESS
            # When the queue is flushed
            driver.flush_queue("long")
            # Then every job's tree is gone (removed in shared multis before the answer),
            # its states go back inline (none left) and the chunks are removed
            assert zk.get_children(paths.jobs("long")) == []
            for i in range(3):
                wait_gone(cluster, paths.workflow_context_chunk("long", i))
            wait_for_data(
                zk,
                paths.workflow_context("long"),
                lambda body: "job_chunks" not in body and body.get("jobs") == {},
                30,
            )
            assert driver.get_workflow_context("long").job_states == {}
        finally:
            zk.stop()
            zk.close()
