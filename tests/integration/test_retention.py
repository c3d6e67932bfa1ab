"""Finished workflows leave the controller's hot set, stay readable, and expire by index."""

from __future__ import annotations

import threading
import time

import pytest

from helixpy import JobConfig, TaskConfig, TaskState, Workflow, WorkflowConfig
from helixpy.controller.replies import ReplyLog
from helixpy.errors import AlreadyExists, InvalidConfig
from helixpy.store.client import connect
from helixpy.store.fencing import FencedWriter
from helixpy.store.ops import Create
from helixpy.store.paths import Paths
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final, wait_for_line, wait_gone

pytestmark = pytest.mark.cluster
S = TaskState


def one_task(name: str, expiry: float = 86400.0) -> Workflow:
    return (
        Workflow.builder(name)
        .set_config(WorkflowConfig(expiry=expiry))
        .add_job("j", JobConfig(command="Noop", num_tasks=1))
        .build()
    )


def test_a_finished_workflow_is_readable_until_its_expiry_then_purged(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a workflow that finished (expiry 4 s)
        driver.start(one_task("kept", expiry=4.0))
        assert wait_final(driver, "kept") is S.COMPLETED
        # Then it leaves the active index (the controller no longer holds it) ...
        wait_gone(cluster, cluster.paths.active_entry("kept"), timeout=30)
        # ... but everything stays readable through the driver
        assert driver.get_workflow_context("kept").state is S.COMPLETED
        assert driver.get_job_context("kept", "j").state is S.COMPLETED
        assert "kept" in driver.get_workflows()
        # and changes are answered as for any finished workflow
        driver.stop("kept")  # a no-op on a finished workflow, as before
        with pytest.raises(InvalidConfig, match="has finished"):
            driver.add_task("kept", "j", TaskConfig(command="Noop"))
        with pytest.raises(AlreadyExists):
            driver.start(one_task("kept"))
        # When its expiry passes, it is purged without anyone asking
        wait_gone(cluster, cluster.paths.workflow("kept"), timeout=40)
        assert "kept" not in driver.get_workflows()
        # and the name is free again
        driver.start(one_task("kept"))
        assert wait_final(driver, "kept") is S.COMPLETED


def _wait_active(cluster: LocalCluster, want: set[str], timeout: float) -> None:
    """Block until the ACTIVE index holds exactly ``want``, woken by a children watch."""
    zk = connect(cluster.zk_address)
    event = threading.Event()
    deadline = time.monotonic() + timeout
    try:
        while True:
            names = set(zk.get_children(cluster.paths.active, watch=lambda _e: event.set()))
            if names == want:
                return
            left = deadline - time.monotonic()
            assert left > 0, f"ACTIVE still holds {len(names)} entries: {sorted(names)[:5]}"
            event.wait(min(left, 1.0))
            event.clear()
    finally:
        zk.stop()
        zk.close()


def test_takeover_with_10000_retained_loads_only_the_active_ones(zk_address: str) -> None:
    with LocalCluster(participants=4, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given one workflow that is not finished (stopped before it ran) ...
        live = (
            Workflow.builder("live")
            .set_config(WorkflowConfig(target_state="STOP"))
            .add_job("j", JobConfig(command="Noop", num_tasks=2))
            .build()
        )
        driver.start(live)
        # ... and 10,000 finished ones the cluster retains
        names = [f"done-{i:05d}" for i in range(10_000)]
        for i in range(0, len(names), 1000):
            outcomes = driver.start_many([one_task(n) for n in names[i : i + 1000]])
            assert all(o.ok for o in outcomes), [o for o in outcomes if not o.ok][:3]
        _wait_active(cluster, {"live"}, timeout=240)
        # When the leader dies and the standby takes over
        old = cluster.leader()
        cluster.kill_controller()
        new = cluster.wait_for_leader(exclude=old)
        # Then the new leader loaded the one active workflow, not the history
        wait_for_line(cluster.log_dir / f"{new}.log", "loaded 1 active workflows", timeout=60)
        # and nothing was lost: every retained workflow is still stored and readable
        zk = connect(cluster.zk_address)
        try:
            stored = set(zk.get_children(cluster.paths.workflows))
        finally:
            zk.stop()
            zk.close()
        assert stored == {"live", *names}
        for name in names[::1999]:
            assert driver.get_workflow_context(name).state is S.COMPLETED
        # and the active one still runs to the end under the new leader
        driver.resume("live")
        assert wait_final(driver, "live", timeout=60) is S.COMPLETED
        driver.start(one_task("after"))
        assert wait_final(driver, "after", timeout=60) is S.COMPLETED


def test_stored_replies_are_pruned_by_age_from_this_term_and_earlier_ones(
    zk_address: str,
) -> None:
    # Given replies stored by an earlier term, replies written this term (one whose
    # write never landed), and a fenced writer of this term
    paths = Paths("replies")
    zk = connect(zk_address)
    try:
        zk.ensure_path(paths.requests)
        zk.ensure_path("/replies/EPOCH")
        writer = FencedWriter(zk, "/replies/EPOCH", 0)
        for rid in ("old-1", "old-2"):
            zk.create(paths.request(rid), b"{}")
        log = ReplyLog(zk, paths, writer)
        for rid in ("mine-1", "mine-2", "lost"):
            log.written(paths.request(rid))
        writer.commit([Create(paths.request(r), b"{}") for r in ("mine-1", "mine-2")])
        # When pruned with an age nothing has reached (which starts listing the earlier
        # terms' replies on a thread)
        # Then nothing goes
        assert log.prune(max_age=3600) == 0
        assert log.listed(timeout=30)
        assert len(zk.get_children(paths.requests)) == 4
        # When pruned with an age everything has reached (a cutoff in the future)
        # Then every stored reply goes, earlier terms' included, and the lost one is skipped
        assert log.prune(max_age=-1) == 4
        assert zk.get_children(paths.requests) == []
        # and a later prune has nothing left to touch
        assert log.prune(max_age=-1) == 0
    finally:
        zk.stop()
        zk.close()


def test_neither_controller_nor_driver_keeps_a_watch_per_finished_workflow(
    zk_address: str,
) -> None:
    # Given a leader in this process (its ZooKeeper client can be inspected), whose driver
    # waits for each of 300 one-task workflows
    from helixpy.controller.daemon import Controller

    controller = Controller(zk_address, "watches", "in-process", session_timeout=6.0)
    controller.start()
    try:
        with LocalCluster(participants=1, controllers=0, zk=zk_address, cluster="watches") as c:
            names = [f"w{i:03d}" for i in range(300)]
            outcomes = c.driver.start_many([one_task(n) for n in names])
            assert all(o.ok for o in outcomes)
            for name in names:
                assert wait_final(c.driver, name) is S.COMPLETED
            # When they have all retired (out of ACTIVE, still readable)
            for name in names:
                wait_gone(c, c.paths.active_entry(name))
            assert c.driver.get_workflow_context(names[0]).state is S.COMPLETED
            # Then the leader's client holds no watch per workflow (kazoo keeps a watcher
            # until it fires: memory that grows with history), nor does the driver's
            assert controller.zk is not None
            watched = [p for p in controller.zk._data_watchers if "/WORKFLOWS/" in p]
            assert watched == []
            polled = [p for p in c.driver._zk._data_watchers if "/WORKFLOWS/" in p]
            assert polled == []
            # (an active workflow's CONFIG stays watched: test_lifecycle's direct removal needs it)
    finally:
        controller.stop()
