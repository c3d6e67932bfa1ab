"""The store on a real ZooKeeper: fencing, chunked contexts, user content, bad znodes."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from helixpy import JobConfig, Scope, TaskPartitionState, TaskState, Workflow
from helixpy.errors import Fenced, NotFound
from helixpy.model import TaskContextInfo
from helixpy.participant.registration import incarnation_fence, register
from helixpy.store.acl import OpenAclProvider
from helixpy.store.client import connect
from helixpy.store.content import get_content_map, put_content
from helixpy.store.fencing import FencedWriter
from helixpy.store.ops import Check, Create, SetData
from helixpy.store.paths import Paths
from helixpy.store.records import job_context_ops, read_job_context
from helixpy.store.task_errors import ERROR_CAP, put_task_error, read_task_errors
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_job

pytestmark = pytest.mark.cluster


@pytest.fixture
def zk(zk_address: str) -> Iterator[KazooClient]:
    client = connect(zk_address)
    yield client
    client.stop()
    client.close()


def test_a_stale_epoch_cannot_write_and_a_current_one_can(zk: KazooClient) -> None:
    # Given EPOCH bumped once after writer A got its version
    zk.ensure_path("/fence-test")
    zk.create("/fence-test/EPOCH", b"0")
    zk.create("/fence-test/data", b"old")
    a = FencedWriter(zk, "/fence-test/EPOCH", 0)
    zk.set("/fence-test/EPOCH", b"1")
    b = FencedWriter(zk, "/fence-test/EPOCH", 1)
    # When A writes, Then it is fenced and nothing changes
    with pytest.raises(Fenced):
        a.commit([SetData("/fence-test/data", b"from A"), Create("/fence-test/new")])
    assert zk.get("/fence-test/data")[0] == b"old"
    assert zk.exists("/fence-test/new") is None
    # while B's write lands
    b.commit([SetData("/fence-test/data", b"from B")])
    assert zk.get("/fence-test/data")[0] == b"from B"


def test_a_participant_whose_session_ended_is_fenced_before_it_registers_again(
    zk: KazooClient, zk_address: str
) -> None:
    # Given a participant registered on one session (its live node is that session's)
    paths = Paths("livefence")
    session = connect(zk_address)
    incarnation = register(session, paths, "p0", OpenAclProvider(), ("t",), 4)
    zk.ensure_path(paths.job_config("w", "j"))
    fence = incarnation_fence(paths, "p0", incarnation)
    # and its process, woken on a new session (here: another client), writing under it
    writer = FencedWriter(zk, fence[0].path, incarnation, also=fence[1:])
    writer.commit([Create("/livefence/before")])
    put_content(zk, paths, OpenAclProvider(), fence, Scope.TASK, "w", "j", "t", "k", "v")
    # When the session that registered it ends, before any newer incarnation registers
    session.stop()
    session.close()
    assert zk.exists(paths.live_instance("p0")) is None
    assert int(zk.get(paths.incarnation("p0"))[1].version) == incarnation
    # Then none of its writes land: the live node check fails
    with pytest.raises(Fenced, match="is gone"):
        writer.commit([Create("/livefence/after")])
    with pytest.raises(Fenced, match="is gone"):
        put_content(zk, paths, OpenAclProvider(), fence, Scope.TASK, "w", "j", "t", "k", "late")
    assert zk.exists("/livefence/after") is None
    assert get_content_map(zk, paths, Scope.TASK, "w", "j", "t") == {"k": "v"}


def test_a_100k_task_context_stores_and_loads(zk: KazooClient) -> None:
    # Given a job context of 100,000 tasks with varied records
    paths = Paths("ctx100k")
    zk.ensure_path(paths.job("w", "j"))
    zk.ensure_path("/ctx100k/EPOCH")
    tasks = [
        TaskContextInfo(
            task_id=f"t{p}",
            state=TaskPartitionState.COMPLETED,
            num_attempts=1 + p % 3,
            assigned_participant=f"p{p % 7}",
            info=f"done {p}",
        )
        for p in range(100_000)
    ]
    writer = FencedWriter(zk, "/ctx100k/EPOCH", 0)
    # When it is written in fenced, size-split multis
    writer.commit(
        job_context_ops(paths, "w", "j", {"state": "COMPLETED"}, tasks, None, create=True)
    )
    # Then it loads back identical, and took several multis
    ctx = read_job_context(zk, paths, "w", "j")
    assert ctx.state is TaskState.COMPLETED
    assert [ctx.tasks[p] for p in range(100_000)] == tasks
    assert writer.multis >= 1


def test_a_small_job_keeps_its_records_in_its_header_until_it_grows(zk: KazooClient) -> None:
    # Given a one-task job context written the way a start writes it
    paths = Paths("inline")
    zk.ensure_path(paths.job("w", "j"))
    zk.ensure_path("/inline/EPOCH")
    writer = FencedWriter(zk, "/inline/EPOCH", 0)
    one = [TaskContextInfo(task_id="t0", state=TaskPartitionState.RUNNING, num_attempts=1)]
    writer.commit(
        job_context_ops(paths, "w", "j", {"state": "IN_PROGRESS"}, one, None, create=True)
    )
    # Then it is one node, with no chunk children, and reads back whole
    assert zk.get_children(paths.job_context("w", "j")) == []
    assert read_job_context(zk, paths, "w", "j").tasks == {0: one[0]}
    # When a change to its task alone is written (the header not dirty)
    done = [TaskContextInfo(task_id="t0", state=TaskPartitionState.COMPLETED, num_attempts=1)]
    ops = job_context_ops(
        paths,
        "w",
        "j",
        {"state": "IN_PROGRESS"},
        done,
        {0},
        create=False,
        include_header=False,
        existing_chunks=0,
    )
    writer.commit(ops)
    # Then the header node carries it
    assert [op.path for op in ops] == [paths.job_context("w", "j")]
    assert read_job_context(zk, paths, "w", "j").tasks == {0: done[0]}
    # When tasks are added past the inline size
    grown = done + [TaskContextInfo(task_id=f"t{p}") for p in range(1, 12)]
    writer.commit(
        job_context_ops(
            paths,
            "w",
            "j",
            {"state": "IN_PROGRESS"},
            grown,
            {0},
            create=False,
            include_header=False,
            existing_chunks=0,
        )
    )
    # Then the records move to a created chunk and the header names it
    assert zk.get_children(paths.job_context("w", "j")) == ["0"]
    ctx = read_job_context(zk, paths, "w", "j")
    assert [ctx.tasks[p] for p in range(12)] == grown


def test_a_finished_one_task_workflow_keeps_six_znodes(zk_address: str) -> None:
    # Given a running cluster
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        # When a one-task workflow runs to COMPLETED
        cluster.driver.start(
            Workflow.builder("lean").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        )
        assert wait_final(cluster.driver, "lean") is TaskState.COMPLETED
        # Then its directory holds only configs and contexts: no empty content nodes, no
        # context chunk (a task writing content creates its node then)
        client = connect(cluster.zk_address)
        try:
            root = Paths(cluster.cluster).workflow("lean")
            found: list[str] = []
            todo = [root]
            while todo:
                path = todo.pop()
                found.append(path[len(root) :] or "/")
                todo += [f"{path}/{c}" for c in client.get_children(path)]
        finally:
            client.stop()
            client.close()
        assert sorted(found) == [
            "/",
            "/CONFIG",
            "/CONTEXT",
            "/JOBS",
            "/JOBS/j",
            "/JOBS/j/CONFIG",
            "/JOBS/j/CONTEXT",
        ]
        assert cluster.driver.get_job_user_content_map("lean", "j") == {}


def test_user_content_cas_keeps_every_concurrent_write(zk: KazooClient, zk_address: str) -> None:
    # Given a workflow and a job (their CONFIGs) with no content node yet, and a fence
    paths = Paths("content")
    zk.ensure_path(paths.workflow_config("w"))
    zk.ensure_path(paths.job_config("w", "j"))
    zk.ensure_path("/content/INC")
    fence = (Check("/content/INC", 0),)
    assert get_content_map(zk, paths, Scope.JOB, "w", "j") == {}
    assert get_content_map(zk, paths, Scope.WORKFLOW, "w") == {}
    assert zk.exists(paths.job_content("w", "j")) is None
    clients = [connect(zk_address) for _ in range(4)]
    try:
        # When four writers each put 25 keys into the same JOB map at once (racing to
        # create it)
        def writer(i: int) -> None:
            for k in range(25):
                put_content(
                    clients[i],
                    paths,
                    OpenAclProvider(),
                    fence,
                    Scope.JOB,
                    "w",
                    "j",
                    None,
                    f"k{i}-{k}",
                    str(k),
                )

        threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # Then no write was lost
        assert len(get_content_map(zk, paths, Scope.JOB, "w", "j")) == 100
    finally:
        for c in clients:
            c.stop()
            c.close()
    # and task scope starts empty and is sharded under TASKS/, created by the first write
    assert get_content_map(zk, paths, Scope.TASK, "w", "j", "t1") == {}
    assert zk.exists(paths.task_contents("w", "j")) is None
    put_content(zk, paths, OpenAclProvider(), fence, Scope.TASK, "w", "j", "t1", "a", "b")
    assert get_content_map(zk, paths, Scope.TASK, "w", "j", "t1") == {"a": "b"}
    assert zk.exists(paths.task_content("w", "j", "t1")) is not None
    # and a stale fence cannot write
    zk.set("/content/INC", b"1")
    with pytest.raises(Fenced):
        put_content(zk, paths, OpenAclProvider(), fence, Scope.TASK, "w", "j", "t1", "a", "c")
    # and a write after the job was deleted does not recreate it
    zk.delete(paths.workflow("w"), recursive=True)
    with pytest.raises(NotFound):
        put_content(
            zk,
            paths,
            OpenAclProvider(),
            (Check("/content/INC", 1),),
            Scope.JOB,
            "w",
            "j",
            None,
            "a",
            "b",
        )
    assert zk.exists(paths.workflow("w")) is None
    # and reading a deleted job's content says NotFound rather than empty
    with pytest.raises(NotFound):
        get_content_map(zk, paths, Scope.TASK, "w", "j", "t2")
    # and a first write racing the delete (owner gone) does not recreate anything either
    with pytest.raises(NotFound):
        put_content(
            zk,
            paths,
            OpenAclProvider(),
            (Check("/content/INC", 1),),
            Scope.WORKFLOW,
            "w",
            None,
            None,
            "a",
            "b",
        )
    assert zk.exists(paths.workflow("w")) is None


def test_a_100k_task_job_runs_through_the_controller_and_survives_failover(zk_address: str) -> None:
    # Given a cluster with no participants and a standby controller
    with LocalCluster(participants=0, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("big")
            .add_job("j", JobConfig(command="Noop", num_tasks=100_000))
            .build()
        )
        # When a 100,000-task job is started
        driver.start(wf)
        ctx = driver.get_job_context("big", "j")
        assert len(ctx.tasks) == 100_000
        assert ctx.tasks[99_999].task_id == "99999"
        # Then a new leader loads it after the old one dies
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        # and runs it once a participant joins (a few hundred tasks show it is live)
        cluster.add_participant(capacity=100)
        ctx = wait_job(
            cluster, "big", "j", lambda c: count(c, TaskPartitionState.COMPLETED) >= 300, "300 done"
        )
        assert {
            t.num_attempts for t in ctx.tasks.values() if t.state is TaskPartitionState.COMPLETED
        } == {1}
        driver.delete("big")
        with pytest.raises(NotFound):
            driver.get_job_context("big", "j")


def test_an_unreadable_workflow_is_failed_while_others_run(zk_address: str) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        bad = (
            Workflow.builder("bad")
            .add_job("j", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "30"}))
            .build()
        )
        driver.start(bad)
        zk = connect(cluster.zk_address)
        try:
            # Given a workflow whose job config got corrupted in ZooKeeper
            zk.set(cluster.paths.job_config("bad", "j"), b"\x1f\x8bgarbage")
        finally:
            zk.stop()
            zk.close()
        # When a new leader has to load it
        old = cluster.kill_controller()
        cluster.wait_for_leader(exclude=old)
        # Then it is FAILED with the reason, and another workflow still runs to completion
        assert (
            driver.poll_for_workflow_state("bad", TaskState.FAILED, timeout=30) is TaskState.FAILED
        )
        assert "unreadable" in driver.get_workflow_context("bad").info
        good = Workflow.builder("good").add_job("j", JobConfig(command="Noop", num_tasks=3)).build()
        driver.start(good)
        assert wait_final(driver, "good") is TaskState.COMPLETED


def _adopted_assignment(cluster: LocalCluster, zk: KazooClient, inst: str) -> tuple[int, str]:
    """Wait until the leader has adopted ``inst``; its incarnation and ASSIGNMENT path.

    The leader writes the assignment for an incarnation once, when it first sees the live
    node. Something a test writes there before that is overwritten before the participant
    reads it (the race that made a test fail 2 runs in 8); written after, nothing rewrites it.
    """
    from tests.integration.helpers import wait_for_data

    incarnation = cluster.incarnation(inst)
    assert incarnation is not None, f"{inst} is not registered"
    path = cluster.paths.assignment(inst)
    wait_for_data(zk, path, lambda body: body.get("inc") == incarnation, 30)
    return incarnation, path


def test_a_participant_skips_an_unreadable_assignment_entry_and_works_on(zk_address: str) -> None:
    from helixpy.store.codec import encode
    from tests.integration.helpers import wait_for_line

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        inst = cluster.instances[0]
        zk = connect(cluster.zk_address)
        try:
            # Given the leader has adopted the instance (see _adopted_assignment)
            incarnation, path = _adopted_assignment(cluster, zk, inst)
            # And garbage written into the participant's assignment behind our back
            zk.set(path, encode({"inc": incarnation, "tasks": {"w/j/0": "garbage"}}))
            # Then it names the entry it skipped, and keeps taking work
            wait_for_line(cluster.log_dir / f"{inst}.log", "unreadable entry skipped", 30)
            zk.set(path, b"\x00not json at all")
            wait_for_line(cluster.log_dir / f"{inst}.log", "assignment unreadable", 30)
        finally:
            zk.stop()
            zk.close()
        wf = Workflow.builder("after").add_job("j", JobConfig(command="Noop", num_tasks=2))
        cluster.driver.start(wf.build())
        assert (
            cluster.driver.poll_for_workflow_state("after", TaskState.COMPLETED, timeout=60)
            is TaskState.COMPLETED
        )


def test_an_attempt_whose_config_rides_in_the_assignment_starts_without_reading_it(
    zk_address: str,
) -> None:
    from helixpy.store.codec import encode
    from tests.integration.helpers import wait_for_data

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        inst = cluster.instances[0]
        zk = connect(cluster.zk_address)
        try:
            incarnation, path = _adopted_assignment(cluster, zk, inst)
            # Given two entries for a job that has no CONFIG in ZooKeeper at all: one carries
            # the job's config payload (as the leader sends a small config), one does not
            head = {"command": "Noop", "num_tasks": 1, "task_chunks": 0}
            tasks = {
                "ghost/carried/0": {"a": 1, "t": "RUN", "u": "x.0", "c": head},
                "ghost/read/0": {"a": 1, "t": "RUN", "u": "x.0"},
            }
            # When they are assigned
            zk.set(path, encode({"inc": incarnation, "tasks": tasks}))

            # Then the one with its config runs to COMPLETED, and the other cannot start
            # (its CONFIG read finds nothing)
            def reported(body: dict[str, Any]) -> bool:
                carried, read = body.get("ghost/carried/0", {}), body.get("ghost/read/0", {})
                return bool(carried.get("s") == "COMPLETED" and read.get("s") == "ERROR")

            wait_for_data(zk, cluster.paths.state(inst, incarnation), reported, 30)
        finally:
            zk.stop()
            zk.close()


def test_task_errors_keep_the_newest_attempts_capped_and_fenced(zk: KazooClient) -> None:
    # Given a job (its CONFIG) and a fence
    paths = Paths("errors")
    zk.ensure_path(paths.job_config("w", "j"))
    zk.ensure_path("/errors/INC")
    fence = (Check("/errors/INC", 0),)
    acl = OpenAclProvider()
    assert read_task_errors(zk, paths, "w", "j", "t") == {}
    # When five attempts fail, the fourth with a 100 KB text
    for attempt in range(1, 6):
        text = "y" * 100_000 if attempt == 4 else f"attempt {attempt} failed"
        put_task_error(zk, paths, acl, fence, "w", "j", "t", attempt, text)
    # Then the newest three are kept, each at most ERROR_CAP bytes, compressed when large
    kept = read_task_errors(zk, paths, "w", "j", "t")
    assert sorted(kept) == [3, 4, 5]
    assert kept[5] == "attempt 5 failed"
    assert kept[4].endswith("...") and ERROR_CAP - 10 < len(kept[4]) <= ERROR_CAP
    data, _ = zk.get(paths.task_error("w", "j", "t"))
    assert len(data) < 4096  # gzip: 16 KB of one letter
    # and a stale fence cannot write, nor a write after the job went recreate it
    zk.set("/errors/INC", b"1")
    with pytest.raises(Fenced):
        put_task_error(zk, paths, acl, fence, "w", "j", "t", 6, "late")
    zk.delete(paths.workflow("w"), recursive=True)
    with pytest.raises(NotFound):
        put_task_error(zk, paths, acl, (Check("/errors/INC", 1),), "w", "j", "t2", 1, "gone")
    with pytest.raises(NotFound):
        read_task_errors(zk, paths, "w", "j", "t")
