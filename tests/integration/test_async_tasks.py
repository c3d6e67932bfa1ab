"""``async def`` tasks on a real cluster: values, a cancel mid-await (stop, then resume),
per-task timeouts, capacity, and coroutine follow-ups, in threads and worker processes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kazoo.client import KazooClient

from helixpy import JobConfig, TaskConfig, TaskPartitionState, TaskState, Workflow
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final, wait_for_data

pytestmark = pytest.mark.cluster
P = TaskPartitionState
TYPED = {"n": 3, "ok": True, "items": [1, "two", None]}


@pytest.fixture
def cluster(zk_address: str) -> Iterator[LocalCluster]:
    with LocalCluster(participants=1, zk=zk_address) as c:
        yield c


@pytest.fixture
def zk(cluster: LocalCluster) -> Iterator[KazooClient]:
    client = connect(cluster.zk_address)
    yield client
    client.stop()
    client.close()


def test_async_functions_and_classes_complete_with_values_in_threads_and_processes(
    cluster: LocalCluster,
) -> None:
    driver = cluster.driver
    # Given, per isolation, an async function returning a value, an AsyncTask class, and a
    # child job whose async function reads the parent's results (aparent_results)
    wf = Workflow.builder("vals")
    for isolation in ("thread", "process"):
        tasks = (
            TaskConfig(id="fn", config={"value": TYPED}),
            TaskConfig(id="cls", command="AsyncValue"),
            TaskConfig(id="where"),
        )
        parent, child = f"{isolation}-ret", f"{isolation}-gather"
        wf.add_job(parent, JobConfig(command="AsyncReturn", tasks=tasks, isolation=isolation))
        gather = JobConfig(
            command="AsyncReturn",
            num_tasks=1,
            command_config={"parent": parent},
            isolation=isolation,
        )
        wf.add_job(child, gather).add_parent_child_dependency(parent, child)
    driver.start(wf.build())
    # When it runs, Then everything completes with the values the coroutines returned
    assert wait_final(driver, "vals") is TaskState.COMPLETED
    pids = {}
    for isolation in ("thread", "process"):
        results = driver.get_job_results("vals", f"{isolation}-ret")
        assert results["fn"] == TYPED
        assert results["cls"] == {"task": "cls", "attempt": 1, "kind": "AsyncTask"}
        where = results["where"]
        assert isinstance(where, dict) and where["instance"] == cluster.instances[0]
        pids[isolation] = where["pid"]
        assert driver.get_task_result("vals", f"{isolation}-gather", 0) == results
    # and the process-isolated ones ran in a worker process, not the participant's
    assert pids["thread"] != pids["process"]


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_an_async_task_cancelled_mid_await_is_stopped_and_runs_again_on_resume(
    cluster: LocalCluster, zk: KazooClient, isolation: str
) -> None:
    driver = cluster.driver
    # Given an async task suspended in `await asyncio.sleep(3600)` (its second attempt
    # sleeps 0 s)
    job = JobConfig(
        command="AsyncSleep",
        num_tasks=1,
        command_config={"seconds": [3600, 0]},
        isolation=isolation,
    )
    driver.start(Workflow.builder("nap").add_job("j", job).build())
    content = cluster.paths.task_content("nap", "j", "0")
    wait_for_data(zk, content, lambda body: body.get("started") == "1", timeout=60)
    # When its workflow is stopped
    driver.wait_to_stop("nap", timeout=30)
    # Then the coroutine saw CancelledError at its await (it wrote so in its except block
    # before re-raising), and the task ended STOPPED
    task = driver.get_job_context("nap", "j").tasks[0]
    assert (task.state, task.num_attempts) == (P.STOPPED, 1)
    assert driver.get_task_user_content_map("nap", "j", 0)["cancelled"] == "1"
    # When resumed, Then it runs again, a second attempt, and completes
    driver.resume("nap")
    assert wait_final(driver, "nap") is TaskState.COMPLETED
    task = driver.get_job_context("nap", "j").tasks[0]
    assert (task.state, task.num_attempts) == (P.COMPLETED, 2)
    assert driver.get_task_user_content_map("nap", "j", 0) == {"started": "2", "cancelled": "1"}


def test_timeout_per_task_ends_an_awaiting_async_task_timed_out(cluster: LocalCluster) -> None:
    driver = cluster.driver
    # Given async tasks stuck in `await asyncio.sleep(3600)`, with a 1 s per-task timeout
    # (each after a Noop job: it starts the worker process, so that the second job's 1 s
    # counts the coroutine, not the start of a process)
    for isolation in ("thread", "process"):
        job = JobConfig(
            command="AsyncSleep",
            num_tasks=1,
            command_config={"seconds": 3600},
            timeout_per_task=1.0,
            max_attempts_per_task=1,
            isolation=isolation,
        )
        warm = JobConfig(command="Noop", num_tasks=1, isolation=isolation)
        wf = Workflow.builder(f"late-{isolation}").add_job("warm", warm).add_job("j", job)
        driver.start(wf.add_parent_child_dependency("warm", "j").build())
    for isolation in ("thread", "process"):
        # When their timeout passes, Then each ends TIMED_OUT, through its CancelledError
        assert wait_final(driver, f"late-{isolation}") is TaskState.FAILED
        task = driver.get_job_context(f"late-{isolation}", "j").tasks[0]
        assert (task.state, task.info) == (P.TIMED_OUT, "timed out")
        content = driver.get_task_user_content_map(f"late-{isolation}", "j", 0)
        assert content == {"started": "1", "cancelled": "1"}


def test_a_participant_of_capacity_2_runs_at_most_2_async_tasks_at_once(
    zk_address: str,
) -> None:
    with LocalCluster(participants=0, zk=zk_address) as cluster:
        cluster.add_participant(capacity=2)
        driver = cluster.driver
        # Given 6 async tasks that each await 0.4 s, all allowed on the one participant
        job = JobConfig(
            command="AsyncRecord",
            num_tasks=6,
            num_concurrent_tasks_per_instance=6,
            command_config={"seconds": 0.4},
        )
        driver.start(Workflow.builder("cap").add_job("j", job).build())
        assert wait_final(driver, "cap") is TaskState.COMPLETED
        # Then the coroutines shared the loop two at a time, never more
        records = [driver.get_task_user_content_map("cap", "j", p) for p in range(6)]
        assert max(int(r["max_concurrent"]) for r in records) == 2
        # and their recorded intervals agree: no instant is inside more than 2 of them
        spans = [(float(r["start"]), float(r["finish"])) for r in records]
        assert all(sum(1 for s, f in spans if s <= start < f) <= 2 for start, _ in spans)


def test_coroutine_follow_ups_run_before_the_attempt_completes_and_a_raising_one_fails_it(
    cluster: LocalCluster,
) -> None:
    driver = cluster.driver
    # Given async tasks emitting 3 coroutine follow-ups (each awaits 0.3 s, then writes) and
    # a function follow-up, and ones whose 2nd coroutine follow-up raises
    for isolation in ("thread", "process"):
        ok = JobConfig(
            command="AsyncEmit",
            num_tasks=1,
            command_config={"count": 3, "delay": 0.3},
            isolation=isolation,
        )
        bad = JobConfig(
            command="AsyncEmit",
            num_tasks=1,
            command_config={"count": 3, "fail_at": 1, "delay": 0},
            max_attempts_per_task=1,
            isolation=isolation,
        )
        driver.start(Workflow.builder(f"ok-{isolation}").add_job("j", ok).build())
        driver.start(Workflow.builder(f"bad-{isolation}").add_job("j", bad).build())
    for isolation in ("thread", "process"):
        # Then the first completes with every follow-up's write in place when it shows
        assert wait_final(driver, f"ok-{isolation}") is TaskState.COMPLETED
        content = driver.get_task_user_content_map(f"ok-{isolation}", "j", 0)
        assert content == {"f0": "1", "f1": "1", "f2": "1", "sync": "1"}
        # and the second fails with its follow-up's error
        assert wait_final(driver, f"bad-{isolation}") is TaskState.FAILED
        bad_task = driver.get_job_context(f"bad-{isolation}", "j").tasks[0]
        assert bad_task.state is P.TASK_ERROR
        assert bad_task.info == "emitted work failed: RuntimeError: follow-up 1 failed"
