"""Streaming jobs: warm slots, splits and barriers in one order, checkpoints, failures."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.errors import BarrierCancelled, InvalidConfig, NotFound
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, wait_final, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState
WAIT = 60.0


def stream_job(slots: int, **config: str) -> JobConfig:
    return JobConfig(
        command="Sum",
        num_tasks=slots,
        stream=True,
        max_attempts_per_task=5,
        num_concurrent_tasks_per_instance=slots,
        command_config=config,
    )


def start_stream(cluster: LocalCluster, name: str, slots: int, **config: str) -> None:
    cluster.driver.start(Workflow.builder(name).add_job("s", stream_job(slots, **config)).build())
    wait_job(cluster, name, "s", lambda c: count(c, P.RUNNING) == slots, "slots running")


def kill_host_of_slot_0(cluster: LocalCluster, name: str) -> str:
    """SIGKILL the participant running slot 0 of stream ``name``; its name."""
    victim = cluster.driver.get_job_context(name, "s").tasks[0].assigned_participant
    assert victim is not None
    cluster.kill_participant(victim)
    return victim


def totals(checkpoint: dict[int, dict[str, object]]) -> tuple[int, int]:
    return (
        sum(int(str(c["count"])) for c in checkpoint.values()),
        sum(int(str(c["total"])) for c in checkpoint.values()),
    )


def test_checkpoints_reflect_exactly_the_splits_before_each_barrier(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "cyc", 3)
        opened: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
        # Given 100 cycles of six splits then a barrier
        for cycle in range(100):
            values = [cycle * 10 + i for i in range(6)]
            driver.add_splits("cyc", "s", [{"v": v} for v in values])
            checkpoint = driver.request_barrier("cyc", "s").wait(WAIT)
            # Then each checkpoint counts exactly that cycle's splits, once
            assert totals(checkpoint) == (6, sum(values)), f"cycle {cycle}"
            for slot, contribution in checkpoint.items():
                opened[slot].add(str(contribution["opened"]))
        # and each slot was opened once across all the cycles (warm reuse)
        assert all(len(ids) == 1 for ids in opened.values())
        # and every split's result is recorded once
        results = driver.get_split_results("cyc", "s")
        assert len(results) == 600 and len({(r.batch, r.index) for r in results}) == 600
        assert sorted(r.result for r in results) == sorted(
            2 * (c * 10 + i) for c in range(100) for i in range(6)
        )


def test_barriers_coalesce_only_when_no_split_came_between(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "co", 1, delay="1.0")
        # Given a slow split in flight, two barrier requests in a row share one barrier
        driver.add_splits("co", "s", [{"v": 1}])
        first = driver.request_barrier("co", "s")
        second = driver.request_barrier("co", "s")
        assert second.sequence == first.sequence
        # but a split in between makes the next request a new barrier, ordered after it
        driver.add_splits("co", "s", [{"v": 2}])
        third = driver.request_barrier("co", "s")
        assert third.sequence > first.sequence
        assert totals(first.wait(WAIT)) == (1, 1)
        assert totals(third.wait(WAIT)) == (1, 2)
        assert first.done() and third.done()


def test_splits_added_during_a_barrier_are_processed_after_it(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "dur", 2, delay="0.5")
        driver.add_splits("dur", "s", [{"v": 1}, {"v": 2}])
        barrier = driver.request_barrier("dur", "s")
        # When splits arrive while the barrier is still in progress
        assert not barrier.done()
        driver.add_splits("dur", "s", [{"v": 100}, {"v": 200}])
        later = driver.request_barrier("dur", "s")
        # Then the barrier holds only what came before it, the next one the rest
        assert totals(barrier.wait(WAIT)) == (2, 3)
        assert totals(later.wait(WAIT)) == (2, 300)
        late = driver.get_split_results("dur", "s", since_barrier=barrier.sequence)
        assert sorted(r.result for r in late) == [200, 400]


def test_a_participant_killed_mid_stream_loses_and_double_counts_nothing(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "kill", 2, delay="0.05")
        values: list[int] = []
        checkpoints = []
        for cycle in range(12):
            batch = [cycle * 100 + i for i in range(8)]
            values += batch
            driver.add_splits("kill", "s", [{"v": v} for v in batch])
            if cycle == 4:
                # When one participant dies with splits in flight
                victim = kill_host_of_slot_0(cluster, "kill")
            if cycle % 3 == 2:
                checkpoints.append(driver.request_barrier("kill", "s").wait(WAIT))
        checkpoints.append(driver.end_stream("kill", "s").wait(WAIT))
        # Then the checkpoints add up to every split exactly once
        assert tuple(map(sum, zip(*(totals(c) for c in checkpoints), strict=True))) == (
            len(values),
            sum(values),
        )
        results = driver.get_split_results("kill", "s")
        assert sorted(r.result for r in results) == sorted(2 * v for v in values)
        assert wait_final(driver, "kill") is S.COMPLETED
        slot0 = driver.get_job_context("kill", "s").tasks[0]
        assert slot0.num_attempts == 2 and slot0.assigned_participant != victim


def test_stopping_during_a_barrier_cancels_it_without_a_hang(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "halt", 1, delay="2.0")
        driver.add_splits("halt", "s", [{"v": 1}])
        barrier = driver.request_barrier("halt", "s")
        driver.stop("halt")
        with pytest.raises(BarrierCancelled, match="STOPP"):
            barrier.wait(WAIT)
        driver.wait_to_stop("halt", timeout=WAIT)
        # and after a resume the slot reopens and the barrier completes after all
        driver.resume("halt")
        assert totals(barrier.wait(WAIT)) == (1, 1)


def test_end_stream_completes_the_job_and_its_workflow(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        wf = (
            Workflow.builder("fin")
            .add_job("s", stream_job(2))
            .add_job("after", JobConfig(command="Noop", num_tasks=1))
            .add_parent_child_dependency("s", "after")
            .build()
        )
        driver.start(wf)
        driver.add_splits("fin", "s", [{"v": 5}, {"v": 6}, {"v": 7}])
        with pytest.raises(InvalidConfig, match="splits"):
            driver.add_splits("fin", "s", [])
        with pytest.raises(InvalidConfig, match="JSON"):
            driver.add_splits("fin", "s", [object()])
        # A string, bytes or a mapping is one value, not a batch: refused, never split up
        for bad in ("abc", b"abc", {"v": 1}):
            with pytest.raises(InvalidConfig, match="non-empty list") as exc:
                driver.add_splits("fin", "s", bad)  # type: ignore[arg-type]
            assert exc.value.field == "splits"
        final = driver.end_stream("fin", "s")
        assert totals(final.wait(WAIT)) == (3, 18)
        assert wait_final(driver, "fin") is S.COMPLETED
        for slot in ("0", "1"):
            assert driver.get_task_user_content_map("fin", "s", slot) == {"closed": "1"}
        with pytest.raises(InvalidConfig, match="ended"):
            driver.add_splits("fin", "s", [{"v": 1}])
        with pytest.raises(InvalidConfig, match="ended"):
            driver.request_barrier("fin", "s")


def test_stream_errors_name_the_problem(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        driver.start(
            Workflow.builder("plain")
            .add_job("j", JobConfig(command="Sleep", num_tasks=1, command_config={"seconds": "30"}))
            .build()
        )
        with pytest.raises(InvalidConfig, match="not a streaming job"):
            driver.add_splits("plain", "j", [{"v": 1}])
        with pytest.raises(InvalidConfig, match="not a streaming job"):
            driver.request_barrier("plain", "j")
        with pytest.raises(NotFound):
            driver.add_splits("plain", "nosuch", [{"v": 1}])
        # A streaming job whose command is not a StreamTask fails with the reason
        driver.start(
            Workflow.builder("wrong")
            .add_job("s", JobConfig(command="Noop", num_tasks=1, stream=True))
            .build()
        )
        assert wait_final(driver, "wrong") is S.FAILED
        task = driver.get_job_context("wrong", "s").tasks[0]
        assert task.state is P.ERROR and "not a StreamTask" in task.info


def test_a_split_that_keeps_failing_fails_the_job_by_its_attempt_rules(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        job = JobConfig(
            command="Sum",
            num_tasks=1,
            stream=True,
            max_attempts_per_task=3,
            command_config={"fail_value": "13"},
        )
        driver.start(Workflow.builder("poison").add_job("s", job).build())
        driver.add_splits("poison", "s", [{"v": 1}])
        assert totals(driver.request_barrier("poison", "s").wait(WAIT)) == (1, 1)
        # When a split raises in process(), the slot is retried (from its last ack) ...
        driver.add_splits("poison", "s", [{"v": 13}])
        # ... and once its attempts are used up, the job fails
        assert wait_final(driver, "poison") is S.FAILED
        task = driver.get_job_context("poison", "s").tasks[0]
        assert (task.state, task.num_attempts) == (P.TASK_ERROR, 3)
        assert "split 13 is poison" in task.info


def test_stream_slots_are_exempt_from_the_per_task_timeout(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        job = JobConfig(
            command="Sum",
            num_tasks=1,
            stream=True,
            timeout_per_task=0.5,
            command_config={"delay": "1.5"},
        )
        driver.start(Workflow.builder("long").add_job("s", job).build())
        # When a slot lives (and even processes one split) far past timeout_per_task
        driver.add_splits("long", "s", [{"v": 4}])
        assert totals(driver.request_barrier("long", "s").wait(WAIT)) == (1, 4)
        driver.end_stream("long", "s").wait(WAIT)
        # Then it was never timed out: one attempt, COMPLETED
        assert wait_final(driver, "long") is S.COMPLETED
        task = driver.get_job_context("long", "s").tasks[0]
        assert (task.state, task.num_attempts) == (P.COMPLETED, 1)


def test_a_slot_that_fails_after_acking_the_end_completes_on_its_retry(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "closing", 1, fail_close="1")
        driver.add_splits("closing", "s", [{"v": 3}])
        assert totals(driver.end_stream("closing", "s").wait(WAIT)) == (1, 3)
        # When close() raised after the final ack, the retry only closes: the job completes
        assert wait_final(driver, "closing") is S.COMPLETED
        task = driver.get_job_context("closing", "s").tasks[0]
        assert (task.state, task.num_attempts) == (P.COMPLETED, 2)
        assert driver.get_task_user_content_map("closing", "s", "0") == {"closed": "1"}


def test_a_recreated_stream_with_fewer_slots_gets_every_split(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        start_stream(cluster, "re", 3)
        driver.add_splits("re", "s", [{"v": 1}])
        driver.delete_and_wait("re", timeout=WAIT)
        # When the same driver feeds a new job of the same name with one slot
        start_stream(cluster, "re", 1)
        driver.add_splits("re", "s", [{"v": v} for v in range(10)])
        # Then that slot gets all ten (no writer-side routing from the old job's shape)
        assert totals(driver.request_barrier("re", "s").wait(WAIT)) == (10, 45)


def test_a_long_stream_keeps_only_its_newest_checkpoints_and_replays_from_them(
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a cluster that keeps three checkpoints per stream (zero is refused)
        with pytest.raises(InvalidConfig) as exc:
            driver.set_cluster_config(stream_checkpoints_keep=0)
        assert exc.value.field == "cluster_config.stream_checkpoints_keep"
        driver.set_cluster_config(stream_checkpoints_keep=3)
        start_stream(cluster, "long", 2, delay="0.02")
        values: list[int] = []
        barriers = []
        checkpoints = []
        # When twelve cycles run, and a participant dies in the middle (after pruning began)
        for cycle in range(12):
            batch = [cycle * 100 + i for i in range(4)]
            values += batch
            driver.add_splits("long", "s", [{"v": v} for v in batch])
            if cycle == 6:
                kill_host_of_slot_0(cluster, "long")
            barriers.append(driver.request_barrier("long", "s"))
            checkpoints.append(barriers[-1].wait(WAIT))
        # Then every split still reaches exactly one checkpoint
        assert tuple(map(sum, zip(*(totals(c) for c in checkpoints), strict=True))) == (
            len(values),
            sum(values),
        )
        # and ZooKeeper holds the newest three barriers (every slot's ack) and checkpoints
        zk = connect(zk_address)
        try:
            paths = cluster.paths
            kept = sorted(int(c) for c in zk.get_children(paths.stream_checkpoints("long", "s")))
            assert kept == [b.sequence for b in barriers[-3:]]
            acked = sorted(int(b) for b in zk.get_children(paths.stream_barriers("long", "s")))
            assert acked == kept
            for seq in kept:
                assert sorted(zk.get_children(paths.stream_barrier("long", "s", seq))) == [
                    "0",
                    "1",
                ]
            assert zk.get_children(paths.stream_log("long", "s")) == []
        finally:
            zk.stop()
            zk.close()
        # and the results read are those of the kept checkpoints, each once
        results = driver.get_split_results("long", "s")
        assert sorted(r.result for r in results) == sorted(2 * v for v in values[-12:])
        # and a pruned barrier says so instead of hanging
        assert barriers[0].done()
        with pytest.raises(NotFound, match="pruned"):
            barriers[0].wait(5)
        driver.end_stream("long", "s").wait(WAIT)
        assert wait_final(driver, "long") is S.COMPLETED
