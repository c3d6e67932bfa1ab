"""The driver's shared watcher: a wait is woken by its own nodes' events, not every poll's."""

from __future__ import annotations

import uuid

import pytest

from helixpy.driver.leader import Watcher
from helixpy.store.client import connect

pytestmark = pytest.mark.cluster


def test_a_wait_moves_with_its_own_paths_events_only(zk_address: str) -> None:
    # Given a watcher with two paths in use, both armed, and a third path not in use
    zk = connect(zk_address, session_timeout=6.0)
    root = f"/waits-{uuid.uuid4().hex[:8]}"
    a, b, other = f"{root}/a", f"{root}/b", f"{root}/other"
    try:
        for path in (a, b, other):
            zk.create(path, b"0", makepath=True)
        watcher = Watcher(zk)
        zk.add_listener(watcher.fire)
        with watcher.watching(a), watcher.watching(b):
            for path in (a, b, other):
                assert watcher.arm(path)
            on_a, on_b, on_any = (
                watcher.generation(a),
                watcher.generation(b),
                watcher.generation(other),
            )
            # When b changes (its watch fires on kazoo's event thread)
            zk.set(b, b"1")
            watcher.wait(on_b, 10.0, b)
            # Then a wait on b ends, a wait on a does not move, and a wait on a path
            # outside a watching block moves with any event (never missing its own)
            assert watcher.generation(b) != on_b
            assert watcher.generation(a) == on_a
            assert watcher.generation(other) != on_any
            # When a session-state change arrives, every wait moves (all re-read)
            watcher.fire("SUSPENDED")
            assert watcher.generation(a) != on_a
        # And once the last wait on a path ends, its watch is forgotten by the client
        assert a not in zk._data_watchers and b not in zk._data_watchers
    finally:
        zk.delete(root, recursive=True)
        zk.stop()
        zk.close()


def test_poll_for_workflows_waits_for_all_of_them_and_names_the_missing(zk_address: str) -> None:
    import threading

    from helixpy import JobConfig, TaskState, Workflow
    from helixpy.errors import InvalidConfig, PollTimeout
    from helixpy.testing import LocalCluster

    def one_task(name: str, command: str = "Noop") -> Workflow:
        job = JobConfig(command=command, num_tasks=1, max_attempts_per_task=1)
        return Workflow.builder(name).add_job("j", job).build()

    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given 40 started workflows, one that fails, and one started only once the wait
        # is under way (not visible when the wait first reads)
        names = [f"w{i:02d}" for i in range(40)]
        for outcome in driver.start_many([one_task(n) for n in names]):
            assert outcome.ok
        driver.start(one_task("fails", command="Fail"))
        late = threading.Timer(0.5, lambda: driver.start(one_task("late")))
        late.start()
        try:
            # When one call waits for all of them to be final
            reached = driver.poll_for_workflows(
                [*names, "fails", "late"], TaskState.COMPLETED, TaskState.FAILED, timeout=60
            )
        finally:
            late.join()
        # Then it returns each one's final state, in order
        assert list(reached) == [*names, "fails", "late"]
        assert reached["fails"] is TaskState.FAILED
        assert all(reached[n] is TaskState.COMPLETED for n in [*names, "late"])
        # And it leaves no watch behind in the driver's client
        zk = driver._zk
        assert not [p for p in zk._data_watchers if "/WORKFLOWS/w" in p]
        # When a wait includes a workflow that never exists
        with pytest.raises(PollTimeout) as caught:
            driver.poll_for_workflows([names[0], "never"], TaskState.COMPLETED, timeout=1.0)
        # Then the timeout names it, and how it was last seen
        assert "1 of 2 workflows" in str(caught.value)
        assert "never (not visible yet)" in str(caught.value)
        # And bad arguments are refused by name
        with pytest.raises(InvalidConfig, match="names"):
            driver.poll_for_workflows("w00", TaskState.COMPLETED)  # type: ignore[arg-type]
        with pytest.raises(InvalidConfig, match="states"):
            driver.poll_for_workflows([names[0]], "DONE-ISH")
        with pytest.raises(InvalidConfig, match="timeout"):
            driver.poll_for_workflows([names[0]], TaskState.COMPLETED, timeout=-1)
