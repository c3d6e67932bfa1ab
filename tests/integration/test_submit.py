"""start_many, start_async, enqueue_many and enqueue_job_async against a real cluster."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from helixpy import JobConfig, JobQueue, ScheduleConfig, TaskState, Workflow, WorkflowConfig
from helixpy.errors import AlreadyExists, InvalidConfig
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final, wait_gone

pytestmark = pytest.mark.cluster
S = TaskState


def one_task(name: str) -> Workflow:
    return Workflow.builder(name).add_job("j", JobConfig(command="Noop", num_tasks=1)).build()


def test_start_many_starts_the_good_items_and_names_the_bad_field(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(one_task("taken"))
        too_often = (
            Workflow.builder("too-often")
            .set_config(WorkflowConfig(schedule=ScheduleConfig.recurring_from_now(1.0)))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        items: list[object] = [one_task(f"ok-{i}") for i in range(50)]
        # Given a batch with a duplicate name, a start the controller refuses (its interval
        # is below the cluster's minimum), and something that is no workflow at all
        items[10] = one_task("taken")
        items[20] = too_often
        items[30] = {"name": "a dict"}
        # When it is sent as one start_many
        outcomes = driver.start_many(items)  # type: ignore[arg-type]
        # Then every item has its own outcome, in order
        assert len(outcomes) == 50
        assert outcomes[10].status == "exists" and outcomes[10].name == "taken"
        assert outcomes[20].status == "invalid"
        assert outcomes[20].field == "schedule.recurrence_interval"
        assert outcomes[30].status == "invalid" and outcomes[30].field == "workflows[30]"
        good = [o for i, o in enumerate(outcomes) if i not in (10, 20, 30)]
        assert all(o.ok for o in good), [o for o in good if not o.ok]
        # and the good ones all ran, the bad ones left nothing behind
        for o in good:
            assert wait_final(driver, o.name, timeout=60) is S.COMPLETED
        assert "too-often" not in driver.get_workflows()


def test_a_retried_start_many_applies_each_item_once(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        request = pb.StartManyRequest(
            request_id="retried-batch",
            items=[
                pb.StartItem(workflow_json=json.dumps(one_task(f"r-{i}").to_dict()))
                for i in range(5)
            ],
        )
        # Given a batch that was applied, but whose answer the client never saw
        first = driver._leader.call("StartMany", request)
        assert [r.code for r in first.replies] == [pb.OK] * 5
        # When the client sends it again (same request id, as the driver's retry does)
        again = driver._leader.call("StartMany", request)
        # Then each item answers OK from its stored reply instead of "already exists"
        assert [r.code for r in again.replies] == [pb.OK] * 5
        assert sorted(n for n in driver.get_workflows() if n.startswith("r-")) == [
            f"r-{i}" for i in range(5)
        ]


def test_a_burst_written_without_reads_still_refuses_taken_names_and_repairs_half_starts(
    zk_address: str,
) -> None:
    # A burst's starts of workflows the leader does not hold are written without reading
    # first; this covers every way such a name can be taken in ZooKeeper all the same.
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a finished workflow that has left the hot set (retired, still stored),
        driver.start(one_task("retired"))
        assert wait_final(driver, "retired") is S.COMPLETED
        wait_gone(cluster, cluster.paths.active_entry("retired"))
        # a start whose first attempt wrote only its directory (a leader died mid-start),
        zk = connect(cluster.zk_address)
        try:
            zk.create(cluster.paths.jobs("half"), makepath=True)
        finally:
            zk.stop()
            zk.close()
        # and a batch that was applied and retired, whose answer the client never saw
        request = pb.StartManyRequest(
            request_id="seen-before",
            items=[pb.StartItem(workflow_json=json.dumps(one_task("answered").to_dict()))],
        )
        assert [r.code for r in driver._leader.call("StartMany", request).replies] == [pb.OK]
        assert wait_final(driver, "answered") is S.COMPLETED
        wait_gone(cluster, cluster.paths.active_entry("answered"))
        # When the retired and half-started names come in one burst with new ones (their
        # shared multi fails on the taken names), and the answered batch is sent again
        items = [one_task(f"new-{i}") for i in range(3)]
        items[1:1] = [one_task("retired"), one_task("half")]
        outcomes = driver.start_many(items)
        again = driver._leader.call("StartMany", request)
        # Then the retired name is refused, the half start is repaired and started, the
        # new ones start, and the retried batch answers from its stored reply
        assert [(o.name, o.status) for o in outcomes] == [
            ("new-0", "started"),
            ("retired", "exists"),
            ("half", "started"),
            ("new-1", "started"),
            ("new-2", "started"),
        ]
        assert [r.code for r in again.replies] == [pb.OK]
        for name in ("new-0", "half", "new-1", "new-2"):
            assert wait_final(driver, name) is S.COMPLETED
        # and nothing of the refused or retried starts changed what was stored before
        assert driver.get_workflow_context("retired").state is S.COMPLETED
        assert driver.get_workflow_context("answered").state is S.COMPLETED


def test_start_async_futures_report_each_start(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # When one thread submits 200 starts without waiting, one of them a duplicate
        futures = [driver.start_async(one_task(f"a-{i}")) for i in range(200)]
        duplicate = driver.start_async(one_task("a-7"))
        bad = driver.start_async("not a workflow")  # type: ignore[arg-type]
        # Then each future settles: the good ones durable, the duplicate refused as start
        # refuses it, the bad one with the field named
        for f in futures:
            assert f.result(timeout=60) is None
        with pytest.raises(AlreadyExists):
            duplicate.result(timeout=60)
        with pytest.raises(InvalidConfig) as info:
            bad.result(timeout=1)
        assert info.value.field == "workflow"
        for i in (0, 99, 199):
            assert wait_final(driver, f"a-{i}", timeout=60) is S.COMPLETED


def test_enqueue_many_and_async_enqueues_run_every_good_job(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.create_queue(JobQueue(name="q", config=WorkflowConfig(parallel_jobs=16)))
        noop = JobConfig(command="Noop", num_tasks=1)
        driver.enqueue_job("q", "first", noop)
        # When jobs are enqueued one by one in a batch, one name already taken
        jobs = {f"m-{i}": noop for i in range(40)}
        jobs["first"] = noop
        outcomes = driver.enqueue_many("q", jobs)
        # and more through futures, one to a queue that does not exist
        futures = [driver.enqueue_job_async("q", f"f-{i}", noop) for i in range(40)]
        missing = driver.enqueue_job_async("no-such-queue", "x", noop)
        # Then the taken name alone is refused, and every other job runs
        by_name = {o.name: o for o in outcomes}
        assert by_name["first"].status == "exists"
        assert all(by_name[f"m-{i}"].ok for i in range(40))
        for f in futures:
            assert f.result(timeout=60) is None
        with pytest.raises(Exception, match="no-such-queue"):
            missing.result(timeout=60)
        names = ["first", *(f"m-{i}" for i in range(40)), *(f"f-{i}" for i in range(40))]
        for job in names:
            state = driver.poll_for_job_state("q", job, S.COMPLETED, timeout=60)
            assert state is S.COMPLETED


def test_a_start_is_created_in_its_first_state_and_not_rewritten_for_it(
    zk_address: str,
) -> None:
    with LocalCluster(participants=0, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a cluster with no participant (nothing will run, so nothing else changes
        # the contexts), and a start of a one-task workflow and a delayed one
        in_an_hour = datetime.now(UTC) + timedelta(hours=1)
        later = (
            Workflow.builder("later")
            .set_config(WorkflowConfig(schedule=ScheduleConfig.one_time_delayed_start(in_an_hour)))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        # When they are started (one sync start, one start_many)
        driver.start(one_task("now"))
        assert all(o.ok for o in driver.start_many([later, one_task("many")]))
        # Then the sync start's answer already shows the workflow IN_PROGRESS with its job
        # (the controller evaluated it before creating it), the delayed one NOT_STARTED
        # with its jobs listed
        ctx = driver.get_workflow_context("now")
        assert ctx.state is S.IN_PROGRESS and ctx.start_time is not None
        assert ctx.job_states == {"j": S.IN_PROGRESS}
        assert driver.get_workflow_context("many").state is S.IN_PROGRESS
        delayed = driver.get_workflow_context("later")
        assert delayed.state is S.NOT_STARTED and delayed.job_states == {"j": S.NOT_STARTED}
        # And a later start's pass has not rewritten them (version 0: written once, by
        # the start's own multi), so a start costs no context write of its own
        driver.start(one_task("after"))
        zk = connect(zk_address)
        try:
            for name in ("now", "many", "later"):
                _, stat = zk.get(cluster.paths.workflow_context(name))
                assert stat.version == 0, name
                _, stat = zk.get(cluster.paths.job_context(name, "j"))
                assert stat.version == 0, name
        finally:
            zk.stop()
            zk.close()
