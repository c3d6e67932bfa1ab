"""Cluster tests on ZooKeeper containers (testcontainers): the same faults, on the image.

``make test`` provides an engine (scripts/with-docker.sh); without one these tests skip
with the reason, except under ``CI=true``, where they must run.
"""

from __future__ import annotations

import os
import threading

import pytest

from helixpy import TaskState, Workflow
from helixpy.testing import LocalCluster, local_ensemble
from helixpy.testing.zookeeper.container import container_engine_problem, container_image
from tests.integration.helpers import record_job, wait_final

_problem = container_engine_problem()
if _problem is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true requires the container tests to run: {_problem}")
pytestmark = [pytest.mark.cluster, pytest.mark.skipif(_problem is not None, reason=str(_problem))]


def test_a_container_ensemble_keeps_work_running_when_its_leader_is_killed() -> None:
    with (
        local_ensemble(3, backend="container") as ensemble,
        LocalCluster(participants=2, zk=ensemble.connection_string, session_timeout=6.0) as cluster,
    ):
        assert all(s.image == container_image() for s in ensemble.servers)  # type: ignore[attr-defined]
        driver = cluster.driver
        driver.start(Workflow.builder("ck").add_job("j", record_job(20, 0.2)).build())
        # When the ZooKeeper leader's container is killed while work runs
        ensemble.kill(ensemble.leader())
        # Then the work completes on the remaining two, and the node rejoins afterwards
        assert wait_final(driver, "ck", timeout=120) is TaskState.COMPLETED
        dead = next(i for i, s in enumerate(ensemble.servers) if not s.running)
        ensemble.start(dead)
        assert ensemble.servers[dead].mode() in ("leader", "follower")


def test_a_paused_zookeeper_container_stops_nothing() -> None:
    with (
        local_ensemble(3, backend="container") as ensemble,
        LocalCluster(participants=2, zk=ensemble.connection_string, session_timeout=6.0) as cluster,
    ):
        driver = cluster.driver
        follower = next(i for i in range(3) if i != ensemble.leader())
        driver.start(Workflow.builder("cp").add_job("j", record_job(20, 0.2)).build())
        # When a follower's container is frozen (docker pause) for a while
        server = ensemble.servers[follower]
        server.pause()  # type: ignore[attr-defined]
        try:
            assert wait_final(driver, "cp", timeout=120) is TaskState.COMPLETED
        finally:
            server.unpause()  # type: ignore[attr-defined]
        # and when the leader's is frozen for less than the session timeout, work resumes
        leader = ensemble.servers[ensemble.leader()]
        driver.start(Workflow.builder("cq").add_job("j", record_job(10, 0.2)).build())
        leader.pause()  # type: ignore[attr-defined]
        try:
            threading.Event().wait(2.0)  # how long the fault lasts (nothing to wait for)
        finally:
            leader.unpause()  # type: ignore[attr-defined]
        assert wait_final(driver, "cq", timeout=120) is TaskState.COMPLETED
