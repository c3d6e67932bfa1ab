"""The asyncio driver: TaskDriver's calls as coroutines over grpc.aio and kazoo's async API,
and ``watch`` yielding typed events driven by ZooKeeper watches, from one event loop with no
thread per call or watch.

pytest-asyncio is not a dependency: each test drives its coroutine with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixpy import JobConfig, JobQueue, TaskConfig, TaskState, Workflow
from helixpy.driver.aio import AsyncTaskDriver, WorkflowEvent
from helixpy.errors import (
    AlreadyExists,
    ClusterUnavailable,
    HelixpyError,
    InvalidConfig,
    NoResult,
    NotFound,
    PollTimeout,
)
from helixpy.testing import LocalCluster
from helixpy.testing.zookeeper import ZooKeeperServer
from tests.integration.test_driver_errors import (
    BAD,
    BAD_TIMEOUT,
    STOPPED_TIMEOUT,
    VALID,
    check_outcome,
)

pytestmark = pytest.mark.cluster
S = TaskState
_T = TypeVar("_T")
#: The order a workflow's states come in on the way to COMPLETED (STOPPED only if stopped).
ORDER = [S.NOT_STARTED, S.IN_PROGRESS, S.COMPLETED]
#: A bound on any one wait of these tests.
BOUND = 30.0


def gated(name: str, gate: Path, value: object = None) -> Workflow:
    """One job of one Return task that returns ``value`` once ``gate`` exists, then a
    second job after it: the workflow stays in progress until the test opens the gate."""
    first = JobConfig(
        command="Return",
        tasks=(TaskConfig(id="t", config={"value": value or name, "wait_file": str(gate)}),),
    )
    second = JobConfig(command="Noop", num_tasks=1)
    return (
        Workflow.builder(name)
        .add_job("first", first)
        .add_job("second", second)
        .add_parent_child_dependency("first", "second")
        .build()
    )


def run(main: Callable[[], Awaitable[_T]]) -> _T:
    """``main()`` on a fresh event loop, bounded."""

    async def bounded() -> _T:
        async with asyncio.timeout(BOUND * 2):
            return await main()

    return asyncio.run(bounded())


async def collect(
    driver: AsyncTaskDriver, name: str, first: asyncio.Event | None = None
) -> list[WorkflowEvent]:
    """Every event of a watch of ``name``, setting ``first`` at the first one."""
    events: list[WorkflowEvent] = []
    async for event in driver.watch(name, timeout=BOUND):
        events.append(event)
        if first is not None:
            first.set()
    return events


def in_order(events: list[WorkflowEvent], order: list[TaskState] = ORDER) -> bool:
    """Whether the events' states never move back through ``order`` (one state may show
    in several events, as its jobs change), each naming the one before as ``previous``."""
    ranks = [order.index(e.state) for e in events]
    chained = all(e.previous is p.state for p, e in itertools.pairwise(events))
    return ranks == sorted(ranks) and chained


def test_start_result_mutations_and_errors(zk_address: str, tmp_path: Path) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        sync = cluster.driver
        gate = tmp_path / "gate"

        async def main() -> None:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as d:
                # Given a workflow started through the async driver
                await d.start(gated("vals", gate, {"n": 3, "items": [1, "two"]}))
                # When it is still gated, a short poll times out naming the state it saw
                with pytest.raises(PollTimeout) as caught:
                    await d.poll_for_workflow_state("vals", S.COMPLETED, timeout=0.2)
                assert caught.value.last_state in ("NOT_STARTED", "IN_PROGRESS")
                with pytest.raises(NoResult):
                    await d.get_task_result("vals", "first", "t")
                # When the gate opens, the poll returns and the result reads back, typed
                gate.touch()
                assert await d.poll_for_workflow_state("vals", S.COMPLETED, timeout=BOUND) is (
                    S.COMPLETED
                )
                assert await d.poll_for_job_state("vals", "second", S.COMPLETED) is S.COMPLETED
                assert await d.get_task_result("vals", "first", "t") == {
                    "n": 3,
                    "items": [1, "two"],
                }
                assert await d.get_job_results("vals", "first") == {
                    "t": {"n": 3, "items": [1, "two"]}
                }
                # And every read equals the sync driver's
                assert await d.get_workflow_config("vals") == sync.get_workflow_config("vals")
                assert await d.get_workflow_context("vals") == sync.get_workflow_context("vals")
                assert await d.get_job_config("vals", "first") == sync.get_job_config(
                    "vals", "first"
                )
                assert await d.get_job_context("vals", "first") == sync.get_job_context(
                    "vals", "first"
                )

                # Given a second workflow, gated on a gate never opened
                await d.start(gated("held", tmp_path / "never"))
                # Then a duplicate start is refused
                with pytest.raises(AlreadyExists):
                    await d.start(gated("held", tmp_path / "never"))
                # When it is stopped, it reaches STOPPED; resumed, it runs again
                await d.stop("held")
                assert await d.poll_for_workflow_state("held", S.STOPPED, timeout=BOUND) is (
                    S.STOPPED
                )
                await d.resume("held")
                assert await d.poll_for_workflow_state("held", S.IN_PROGRESS) is S.IN_PROGRESS
                # When a watch takes one event and leaves the loop
                async for event in d.watch("held"):
                    assert event.workflow == "held" and event.state is S.IN_PROGRESS
                    break
                # Then its interest is gone (only the leader client's waker is left)
                assert d._session is not None
                assert d._session.waiters == 1
                watched = d._session.zk._data_watchers
                assert not [p for p in watched if "/WORKFLOWS/held/" in p]
                # When a watch runs while the workflow is deleted, it raises NotFound
                watch = d.watch("held")
                assert (await anext(watch)).state is S.IN_PROGRESS
                await d.delete("held")
                with pytest.raises(NotFound, match="deleted"):
                    await anext(watch)
                assert d._session.waiters == 1
                # And a force delete works too
                await d.delete("vals", force=True)
                for missing in ("held", "vals", "nope"):
                    with pytest.raises(NotFound):
                        await d.get_workflow_context(missing)
                    with pytest.raises(NotFound):
                        await d.stop(missing)
                    with pytest.raises(NotFound):
                        await anext(d.watch(missing))
                with pytest.raises(NotFound):
                    await d.delete("nope")
                with pytest.raises(NotFound):
                    await d.get_task_result("nope", "j", "t")
                # And bad arguments are refused by name
                refused: list[tuple[Callable[[], Awaitable[Any]], str]] = [
                    (lambda: d.start("wf"), "workflow"),  # type: ignore[arg-type]
                    (lambda: d.stop("a/b"), "workflow.name"),
                    (lambda: d.poll_for_workflow_state("held", "DONE-ISH"), "states"),
                    (lambda: d.poll_for_workflow_state("held", S.COMPLETED, timeout=-1), "timeout"),
                    (lambda: d.delete("held", force="yes"), "force"),  # type: ignore[arg-type]
                ]
                for call, field in refused:
                    with pytest.raises(InvalidConfig) as bad:
                        await call()
                    assert bad.value.field == field
                with pytest.raises(InvalidConfig, match="timeout"):
                    d.watch("held", timeout=-1)
            # And a closed driver says so
            with pytest.raises(HelixpyError, match="closed"):
                await d.get_workflow_context("vals")
            with pytest.raises(HelixpyError, match="closed"):
                await d.start(gated("late", gate))

        run(main)


def test_one_loop_watches_100_workflows_without_a_thread_each(
    zk_address: str, tmp_path: Path
) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        gate = tmp_path / "gate"
        names = [f"w{i:03d}" for i in range(100)]

        async def main() -> None:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as d:
                # Given a connected driver that has made a call of each kind once
                # (channels and their threads exist), and the thread count then
                await d.start(gated("warm", gate))
                await d.poll_for_workflow_state("warm", S.NOT_STARTED, S.IN_PROGRESS)
                async for _ in d.watch("warm"):
                    break
                before = threading.active_count()
                # When 100 workflows start concurrently (one start call each), all gated
                await asyncio.gather(*(d.start(gated(n, gate)) for n in names))
                # And one loop watches all 100 at once, each yielding its first event
                firsts = {n: asyncio.Event() for n in names}
                watches = asyncio.gather(*(collect(d, n, firsts[n]) for n in names))
                async with asyncio.timeout(BOUND):
                    await asyncio.gather(*(e.wait() for e in firsts.values()))
                during = threading.active_count()
                # Then no thread was added for the calls or the watches
                assert during <= before, (before, during, threading.enumerate())
                # When the gate opens
                gate.touch()
                results = await watches
                # Then every watch saw its own workflow's states in order, ending COMPLETED
                for name, events in zip(names, results, strict=True):
                    assert {e.workflow for e in events} == {name}
                    assert events[0].state in (S.NOT_STARTED, S.IN_PROGRESS), events
                    assert events[-1].state is S.COMPLETED and events[-1].is_final, events
                    assert in_order(events), events
                    assert dict(events[-1].job_states) == {
                        "first": S.COMPLETED,
                        "second": S.COMPLETED,
                    }
                    # each event names the jobs that changed since the one before
                    assert events[0].changed_jobs == {"first", "second"}
                    for prev, event in itertools.pairwise(events):
                        assert event.changed_jobs == {
                            j
                            for j in event.job_states
                            if prev.job_states.get(j) != event.job_states[j]
                        }
                # And the results read back, 100 reads at once
                values = await asyncio.gather(*(d.get_task_result(n, "first", "t") for n in names))
                assert values == names
                assert threading.active_count() <= before
                # And no watch is left behind
                assert d._session is not None and d._session.waiters == 1
                assert not [p for p in d._session.zk._data_watchers if "/WORKFLOWS/w" in p]

        run(main)


def test_a_watch_survives_a_leader_failover_and_mutations_follow_the_leader(
    zk_address: str, tmp_path: Path
) -> None:
    with LocalCluster(participants=1, controllers=2, zk=zk_address, session_timeout=4.0) as cluster:
        gate = tmp_path / "gate"

        async def main() -> None:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster, timeout=20) as d:
                # Given a gated workflow watched from the loop, a read of it pending
                await d.start(gated("fo", gate))
                watch = d.watch("fo", timeout=BOUND)
                events = [await anext(watch)]
                assert events[0].previous is None
                pending = asyncio.create_task(anext(watch))
                # When the leader is killed (its LEADER node lives until its session expires)
                old = await asyncio.to_thread(cluster.kill_controller)
                # And a mutation is issued at once: it is retried until the new leader
                # answers, with the same request id, so it applies once
                await d.stop("fo")
                new = await asyncio.to_thread(cluster.wait_for_leader, old)
                assert new != old
                # Then the watch, armed across the failover, sees the stop through
                events.append(await pending)
                while events[-1].state is not S.STOPPED:
                    events.append(await anext(watch))
                stopped = len(events) - 1
                assert in_order(events, [S.NOT_STARTED, S.IN_PROGRESS, S.STOPPING, S.STOPPED])
                # And after the failover, more mutations reach the new leader
                await d.resume("fo")
                with pytest.raises(AlreadyExists):
                    await d.start(gated("fo", gate))
                gate.touch()
                events += [event async for event in watch]
                # And the watch follows the resumed workflow to its end, in order
                assert in_order(events[stopped:], [S.STOPPED, S.IN_PROGRESS, S.COMPLETED])
                states = [e.state for e in events]
                assert states[-1] is S.COMPLETED, states
                assert await d.get_task_result("fo", "first", "t") == "fo"
                assert d._session is not None and d._session.waiters == 1

        run(main)


def test_the_other_mutations_go_through_the_sync_drivers_request_building(
    zk_address: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    with LocalCluster(participants=1, zk=zk_address) as cluster:

        async def main() -> None:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as d:
                # Given a running workflow whose job is defined by tasks
                await d.start(gated("m", gate))
                await d.poll_for_job_state("m", "first", S.IN_PROGRESS, timeout=BOUND)
                # When a task is added, Then it is in the job at once
                await d.add_task("m", "first", TaskConfig(id="u", config={"value": "U"}))
                ctx = await d.get_job_context("m", "first")
                assert {t.task_id for t in ctx.tasks.values()} == {"t", "u"}
                # and bad arguments are refused before anything is sent
                with pytest.raises(InvalidConfig, match="task_config"):
                    await d.add_task("m", "first", "not a task")  # type: ignore[arg-type]
                # When it is stopped and waited for, Then it is STOPPED
                await d.wait_to_stop("m", timeout=BOUND)
                assert (await d.get_workflow_context("m")).state is S.STOPPED
                # When what did not complete runs again (the gate open), Then it completes
                gate.write_text("open")
                await d.rerun_failed("m")
                assert await d.poll_for_workflow_state("m", S.COMPLETED, timeout=BOUND) is (
                    S.COMPLETED
                )
                assert await d.get_job_results("m", "first") == {"t": "m", "u": "U"}
                # and settings and instances change through it too
                await d.set_cluster_config(max_tasks_per_job=50_000)
                assert (await d.get_cluster_config())["max_tasks_per_job"] == 50_000
                # and user content and error texts read as the sync driver reads them
                wf = Workflow.builder("c").add_job(
                    "w", JobConfig(command="WriteContent", num_tasks=1)
                )
                wf.add_job("r", JobConfig(command="Raise", num_tasks=1, max_attempts_per_task=1))
                wf.add_parent_child_dependency("w", "r")
                await d.start(wf.build())
                await d.poll_for_workflow_state("c", S.FAILED, S.COMPLETED, timeout=BOUND)
                sync = cluster.driver
                assert await d.get_workflow_user_content_map("c") == {"written_by": "w"}
                assert await d.get_job_user_content_map("c", "w") == {"job": "w"}
                assert await d.get_task_user_content_map("c", "w", 0) == {"task": "0"}
                assert await d.get_task_user_content_map("c", "r", 0) == {}
                error = await d.get_task_error("c", "r", 0)
                assert error == sync.get_task_error("c", "r", 0) and "RuntimeError" in error
                assert await d.get_task_error("c", "w", 0) is None
                with pytest.raises(NotFound, match="c/nope"):
                    await d.get_job_user_content_map("c", "nope")
                await d.set_instance_enabled(cluster.instances[0], False)
                assert cluster.driver.get_instances()[cluster.instances[0]]["enabled"] is False

        run(main)


# --- no raw exception escapes (the standard of test_driver_errors) ----------------------

#: Every public coroutine method of the async driver (and watch), with close left out.
METHODS = sorted(
    name
    for name, member in inspect.getmembers(AsyncTaskDriver)
    if not name.startswith("_") and callable(member) and name not in ("close", "connect", "open")
)


@st.composite
def hostile_calls(draw: st.DrawFn, method: str) -> tuple[list[Any], dict[str, Any]]:
    """Arguments for ``method``: each parameter valid or hostile, independently."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(getattr(AsyncTaskDriver, method)).parameters.values())[1:]:
        bad = BAD_TIMEOUT if param.name == "timeout" else BAD
        value = st.sampled_from(VALID.get(param.name, [None])) | bad
        if param.kind is param.VAR_POSITIONAL:
            args += draw(st.lists(value, max_size=3) | st.sampled_from(VALID["states"]))
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(draw(st.dictionaries(st.text(max_size=8), BAD, max_size=3)))
        elif param.default is not param.empty and param.name != "timeout" and draw(st.booleans()):
            continue
        elif param.kind is param.KEYWORD_ONLY or param.name == "timeout":
            kwargs[param.name] = draw(value)
        else:
            args.append(draw(value))
    return args, kwargs


async def outcome_of(
    d: AsyncTaskDriver, method: str, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """What the call returned or raised; a watch is taken up to its first event."""
    try:
        result = getattr(d, method)(*args, **kwargs)
        if method == "watch":
            return await anext(result)
        return await result
    except Exception as exc:  # judged by check_outcome
        return exc


@pytest.fixture(scope="module")
def hostile_target(
    zk_server: ZooKeeperServer,
) -> Iterator[tuple[asyncio.AbstractEventLoop, AsyncTaskDriver]]:
    """An event loop and an async driver on a cluster with workflow "wf" (job "j"), which
    never runs (no participant)."""
    with LocalCluster(participants=0, zk=zk_server.connection_string) as cluster:
        cluster.driver.start(
            Workflow.builder("wf").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
        )
        loop = asyncio.new_event_loop()
        d = loop.run_until_complete(
            AsyncTaskDriver.open(cluster.zk_address, cluster.cluster, timeout=2.0)
        )
        try:
            yield loop, d
        finally:
            loop.run_until_complete(d.close())
            loop.close()


@pytest.mark.parametrize("method", METHODS)
def test_hostile_arguments_raise_only_helixpy_errors(
    hostile_target: tuple[asyncio.AbstractEventLoop, AsyncTaskDriver], method: str
) -> None:
    loop, d = hostile_target

    @settings(
        max_examples=12, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(hostile_calls(method))
    def call(drawn: tuple[list[Any], dict[str, Any]]) -> None:
        # When the method is called with each argument valid or hostile
        args, kwargs = drawn
        outcome = loop.run_until_complete(
            asyncio.wait_for(outcome_of(d, method, args, kwargs), BOUND)
        )
        # Then it returns, or raises a HelixpyError saying what is wrong
        check_outcome(method, args, kwargs, outcome)

    call()


def valid_call(method: str) -> tuple[list[Any], dict[str, Any]]:
    """The plain valid arguments of ``method`` (the first of each in ``VALID``)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(getattr(AsyncTaskDriver, method)).parameters.values())[1:]:
        value = VALID.get(param.name, [None])[0]
        if param.kind is param.VAR_POSITIONAL:
            args += value
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        elif param.kind is param.KEYWORD_ONLY or param.name == "timeout":
            kwargs[param.name] = value
        else:
            args.append(value)
    return args, kwargs


def test_closed_or_cut_off_every_method_fails_in_bounded_time() -> None:
    # Given a driver connected to a ZooKeeper of its own, and one that was closed
    with ZooKeeperServer(tick_time=0.5, name="aio-errors") as server:
        address = server.connection_string

        async def main() -> None:
            closed = await AsyncTaskDriver.open(address, "gone", timeout=STOPPED_TIMEOUT)
            await closed.close()
            await closed.close()  # idempotent
            d = await AsyncTaskDriver.open(address, "gone", timeout=STOPPED_TIMEOUT)
            try:
                # When ZooKeeper stops
                server.stop()
                for method in METHODS:
                    args, kwargs = valid_call(method)
                    # Then the closed driver says so from every method
                    outcome = await outcome_of(closed, method, args, kwargs)
                    assert isinstance(outcome, HelixpyError), (method, outcome)
                    assert "closed" in str(outcome), (method, outcome)
                    # And every method of the cut-off one raises a HelixpyError, in bounded
                    # time (ClusterUnavailable for most: the polls here time out first)
                    started = asyncio.get_running_loop().time()
                    outcome = await outcome_of(d, method, args, kwargs)
                    assert isinstance(outcome, HelixpyError), (method, outcome)
                    check_outcome(method, args, kwargs, outcome)
                    assert asyncio.get_running_loop().time() - started < STOPPED_TIMEOUT * 4
                # And a watch with no timeout of its own gives up once ZooKeeper stays away
                # for the driver's timeout (its safety wake re-reads at least every second)
                with pytest.raises(ClusterUnavailable, match="did not answer the watch"):
                    await anext(d.watch("wf"))
            finally:
                await d.close()
            # And a new driver cannot connect, and says so
            with pytest.raises(ClusterUnavailable, match="gone"):
                await AsyncTaskDriver.open(address, "gone", timeout=STOPPED_TIMEOUT)

        run(main)


def test_the_cluster_reads_streams_batches_and_waits_match_the_sync_driver(
    zk_address: str,
) -> None:
    from helixpy.model.locks import LockType
    from helixpy.store.locks import LockBox

    stream = JobConfig(command="Sum", num_tasks=2, stream=True, num_concurrent_tasks_per_instance=2)
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        sync = cluster.driver
        holder = LockBox(cluster._zk, cluster.cluster, "holder", priority=50)
        assert holder.try_acquire("res/1", (0, 10), LockType.EXCLUSIVE).ok

        async def main() -> None:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as d:
                # Given 50 workflows started in one turn of the loop with start_async
                futures = [
                    d.start_async(
                        Workflow.builder(f"b{i}")
                        .add_job("j", JobConfig(command="Noop", num_tasks=1))
                        .build()
                    )
                    for i in range(50)
                ]
                # Then each future settles once its workflow is durable, and a duplicate
                # fails its own future only
                dup = d.start_async(
                    Workflow.builder("b0")
                    .add_job("j", JobConfig(command="Noop", num_tasks=1))
                    .build()
                )
                assert await asyncio.gather(*futures) == [None] * 50
                with pytest.raises(AlreadyExists):
                    await dup
                # When all are waited for at once, Then every one completed
                names = [f"b{i}" for i in range(50)]
                reached = await d.poll_for_workflows(names, S.COMPLETED, timeout=BOUND)
                assert list(reached) == names and set(reached.values()) == {S.COMPLETED}
                with pytest.raises(PollTimeout, match="1 of 1 workflows"):
                    await d.poll_for_workflows(["nobody"], S.COMPLETED, timeout=0.5)
                # And the cluster reads equal the sync driver's
                assert await d.get_workflows() == sync.get_workflows()
                assert await d.get_instances() == sync.get_instances()
                await d.set_partition_state(cluster.instances[0], "db", "db_0", "MASTER")
                assert await d.get_partitions() == sync.get_partitions() != {}
                assert await d.get_partitions(cluster.instances[0]) == sync.get_partitions(
                    cluster.instances[0]
                )
                locks = await d.get_locks()
                assert locks == sync.get_locks() and len(locks["res/1"]) == 1
                assert await d.get_lock_audit("res/1") == sync.get_lock_audit("res/1") != []
                # When a stream gets splits and a barrier through the async driver
                await d.start(Workflow.builder("st").add_job("s", stream).build())
                await d.add_splits("st", "s", [{"v": v} for v in range(6)])
                barrier = await d.request_barrier("st", "s")
                checkpoint = await barrier.wait(BOUND)
                # Then the checkpoint counts the six splits once, as the sync driver sees
                assert sum(int(c["count"]) for c in checkpoint.values()) == 6
                assert await barrier.done()
                results = await d.get_split_results("st", "s")
                assert results == sync.get_split_results("st", "s") and len(results) == 6
                end = await d.end_stream("st", "s")
                await end.wait(BOUND)
                assert await d.poll_for_job_state("st", "s", S.COMPLETED, timeout=BOUND)
                with pytest.raises(InvalidConfig, match=r"stream of st/s (has ended|is COMPLETED)"):
                    await d.add_splits("st", "s", [1])
                with pytest.raises(InvalidConfig, match="not a streaming job"):
                    await d.add_splits("b1", "j", [1])
                # When a queue gets jobs each on its own, Then a bad one holds none back
                await d.create_queue(JobQueue.builder("q").build())
                outcomes = await d.enqueue_many(
                    "q",
                    {"a": JobConfig(command="Noop", num_tasks=1), "b": "bad"},  # type: ignore[dict-item]
                )
                assert [o.status for o in outcomes] == ["started", "invalid"]
                await d.enqueue_job_async("q", "c", JobConfig(command="Noop", num_tasks=1))
                assert await d.poll_for_job_state("q", "c", S.COMPLETED, timeout=BOUND)
                # When a workflow is deleted and waited for, Then none of it is left
                await d.delete_and_wait("b1", timeout=BOUND)
                assert "b1" not in sync.get_workflows()
                with pytest.raises(NotFound):
                    await d.delete_and_wait("b1", timeout=BOUND)

        run(main)
        holder.close()
