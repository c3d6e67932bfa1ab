"""``ctx.locks`` in process-isolated tasks: served by the participant, fenced as the attempt.

The tasks are in :mod:`tests.integration.isolated_lock_tasks`; their worker processes have no
ZooKeeper session, every lock call goes through the participant.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.errors import LockRevoked
from helixpy.model.locks import Holder, LockResult
from helixpy.store.acl import OpenAclProvider
from helixpy.store.client import connect
from helixpy.store.fencing import MultiFailed, run_multi
from helixpy.store.locks import LockBox, resource_path
from helixpy.store.ops import Check, Op, SetData
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final, wait_for_data, wait_for_line

pytestmark = pytest.mark.cluster
P = TaskPartitionState
ROOT = Path(__file__).resolve().parents[2]
TASKS = "tests.integration.isolated_lock_tasks:registry"


@pytest.fixture
def cluster(zk_address: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalCluster]:
    # (the participant and its worker processes import the tasks module from the repo)
    monkeypatch.setenv("PYTHONPATH", f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with LocalCluster(tasks=TASKS, participants=1, zk=zk_address) as c:
        yield c


@pytest.fixture
def zk(cluster: LocalCluster) -> Iterator[KazooClient]:
    client = connect(cluster.zk_address)
    yield client
    client.stop()
    client.close()


def job(command: str, resource: str, config: dict[str, str] | None = None, **kw: Any) -> JobConfig:
    """One process-isolated task of ``command`` on ``resource``, one attempt."""
    return JobConfig(
        command=command,
        num_tasks=1,
        isolation="process",
        max_attempts_per_task=1,
        command_config={"resource": resource, **(config or {})},
        **kw,
    )


def attempt_holder(cluster: LocalCluster, wf: str, attempt: int = 1) -> str:
    """The lock holder id of attempt ``attempt`` of ``wf``'s job ``j``, task 0."""
    inst = cluster.instances[0]
    return f"{inst}.{cluster.incarnation(inst)}.{wf}/j/0.{attempt}"


def task_content(cluster: LocalCluster, zk: KazooClient, wf: str, key: str) -> dict[str, str]:
    """Task 0's content once it holds ``key`` (woken by a data watch, bounded)."""
    path = cluster.paths.task_content(wf, "j", "0")
    wait_for_data(zk, path, lambda body: key in body, timeout=60)
    return cluster.driver.get_task_user_content_map(wf, "j", "0")


@contextlib.contextmanager
def killed_at_exit(pid: int) -> Iterator[None]:
    """Never leave a (frozen) worker process behind when an assertion fails."""
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_a_process_isolated_task_locks_and_commits_as_its_attempt(
    cluster: LocalCluster, zk: KazooClient
) -> None:
    driver = cluster.driver
    # Given a znode to write under the lock
    target = f"/{cluster.cluster}-target"
    zk.create(target, b"before")
    # When a process-isolated task acquires [0, 10) of "tbl", commits a write inside a
    # critical section, tries two failing calls and releases
    config = {"target": target}
    driver.start(
        Workflow.builder("iso").add_job("j", job("LockedWrite", "tbl", config=config)).build()
    )
    assert wait_final(driver, "iso", timeout=60) is TaskState.COMPLETED
    # Then the write happened, fenced by its lock, with its bytes intact
    holder = attempt_holder(cluster, "iso")
    assert zk.get(target)[0] == b"\x00\xff" + holder.encode()
    # and the task saw its attempt as the holder, its job as the group
    content = driver.get_task_user_content_map("iso", "j", "0")
    assert (content["holder"], content["group"]) == (holder, "iso/j")
    # and errors raised in the participant came back as their own class, fields, message
    assert content["invalid"] == (
        "InvalidConfig|interval|interval: resource 'tbl' is locked with number intervals"
    )
    assert content["failed_op"] == (f"MultiFailed|True|NoNodeError on SetData {target}-missing")
    assert content["after_release"].startswith("LockRevoked|tbl [0, 10): not held")
    # and the audit trail shows the attempt as the holder: one grant, one release
    audit = [(e["event"], e["holder"], e["group"]) for e in driver.get_lock_audit("tbl")]
    assert audit == [("grant", holder, "iso/j"), ("release", holder, "iso/j")]
    assert driver.get_locks("tbl") == {"tbl": []}


def test_a_worker_killed_holding_a_lock_fails_its_attempt_and_its_lock_is_released(
    cluster: LocalCluster, zk: KazooClient
) -> None:
    driver = cluster.driver
    # Given a process-isolated task holding an exclusive lock on [0, 10) of "tbl"
    driver.start(Workflow.builder("kill").add_job("j", job("HoldLock", "tbl", priority=50)).build())
    pid = int(task_content(cluster, zk, "kill", "pid")["pid"])
    holder = attempt_holder(cluster, "kill")
    [posse] = driver.get_locks("tbl")["tbl"]
    assert list(posse.members) == [holder]
    # (what the holder's commit would check: the lock node's version while it holds)
    held_version = zk.exists(resource_path(cluster.paths, "tbl")).version
    assert pid != cluster.pid(cluster.instances[0])
    # When the test SIGKILLs its worker process
    os.kill(pid, signal.SIGKILL)
    # Then the attempt fails like any dead worker (one attempt allowed: the job fails)
    assert wait_final(driver, "kill", timeout=60) is TaskState.FAILED
    task = driver.get_job_context("kill", "j").tasks[0]
    assert (task.state, task.num_attempts) == (P.TASK_ERROR, 1)
    assert task.info == "the worker process running this task was killed by SIGKILL"
    # and its lock was released: a lower-priority box gets it (it could not preempt)
    box = LockBox(zk, cluster.cluster, "after", priority=0)
    try:
        got = box.acquire("tbl", (0, 10), timeout=30)
        assert got.ok
        events = [(e["event"], e["holder"]) for e in driver.get_lock_audit("tbl")]
        assert events == [("grant", holder), ("release", holder), ("grant", "after")]
        # and the dead attempt's holder can no longer commit: it holds nothing (a section
        # is refused), and a write checked against the lock it held is refused
        dead = LockBox(zk, cluster.cluster, Holder(id=holder))
        try:
            with (
                pytest.raises(LockRevoked, match="not held"),
                dead.critical_section("tbl", [(0, 10)]),
            ):
                pass
        finally:
            dead.close()
        target = f"/{cluster.cluster}-target"
        zk.create(target, b"before")
        stale: list[Op] = [
            Check(resource_path(cluster.paths, "tbl"), held_version),
            SetData(target, b"late"),
        ]
        with pytest.raises(MultiFailed) as failed:
            run_multi(zk, stale, OpenAclProvider())
        assert isinstance(failed.value.error, BadVersionError)
        assert zk.get(target)[0] == b"before"
    finally:
        box.close()


def test_a_worker_frozen_in_a_critical_section_is_killed_on_stop_and_its_section_left(
    cluster: LocalCluster, zk: KazooClient
) -> None:
    driver = cluster.driver
    inst = cluster.instances[0]
    # Given a process-isolated task (priority 25, 1 s cancel grace) frozen by SIGSTOP
    # inside a critical section of its lock on [0, 10) of "tbl"
    frozen = job("FreezeInSection", "tbl", priority=25, cancel_grace=1.0)
    driver.start(Workflow.builder("frz").add_job("j", frozen).build())
    pid = int(task_content(cluster, zk, "frz", "inside")["pid"])
    holder = attempt_holder(cluster, "frz")
    with killed_at_exit(pid):
        [posse] = driver.get_locks("tbl")["tbl"]
        assert (list(posse.members), posse.critical) == ([holder], [holder])
        # When a higher-priority box asks for the lock
        box = LockBox(zk, cluster.cluster, "preemptor", priority=75)
        try:
            first = box.try_acquire("tbl", (0, 10))
            # Then it is not granted while the section is open: it waits
            assert (first.ok, first.reason) == (False, "a lock to revoke is in a critical section")
            results: list[LockResult] = []
            granted = threading.Event()

            def wait_for_it() -> None:
                results.append(box.acquire("tbl", (0, 10), timeout=60))
                granted.set()

            waiter = threading.Thread(target=wait_for_it, daemon=True)
            waiter.start()
            assert not granted.is_set()  # (the section is still open: it cannot be)
            # When the workflow is stopped: the frozen child ignores its cancel, so after
            # its 1 s grace it gets SIGTERM, then SIGKILL
            driver.wait_to_stop("frz", timeout=60)
            # Then the job ended STOPPED by its grace, its process killed
            task = driver.get_job_context("frz", "j").tasks[0]
            assert task.state is P.STOPPED
            assert "did not end within its cancel grace" in task.info and "SIGKILL" in task.info
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
            # and the participant left the section before releasing the attempt's lock, so
            # the waiting acquire was granted
            assert granted.wait(30)
            waiter.join(30)
            assert [r.ok for r in results] == [True]
            log = cluster.log_dir / f"{inst}.log"
            wait_for_line(log, "leaving a critical section left open by its task", 10)
            # (revoked once the section was left, or released first: either way, after it)
            events = [(e["event"], e["holder"]) for e in driver.get_lock_audit("tbl")]
            assert events in (
                [
                    ("grant", holder),
                    ("revoke", holder),
                    ("grant", "preemptor"),
                    ("release", holder),
                ],
                [("grant", holder), ("release", holder), ("grant", "preemptor")],
            )
            [posse] = driver.get_locks("tbl")["tbl"]
            assert (list(posse.members), posse.critical) == (["preemptor"], [])
        finally:
            box.close()
