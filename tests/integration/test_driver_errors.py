"""No raw kazoo, gRPC or Python exception escapes a public TaskDriver method.

Every public method is found by introspection, so a new one is covered without touching
this file. Each is called with hostile arguments, from a client lacking the cluster's
identity, on a closed driver and with ZooKeeper stopped; whatever it raises must be a
:class:`helixpy.errors.HelixpyError` with a message saying what went wrong.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixpy import JobConfig, JobQueue, TaskState, Workflow
from helixpy.driver import TaskDriver
from helixpy.errors import AccessDenied, ClusterUnavailable, HelixpyError, InvalidConfig
from helixpy.model import TaskConfig, WorkflowConfig
from helixpy.testing import LocalCluster
from helixpy.testing.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.cluster

AUTH = "digest:u:p"
#: The drivers' timeout, and a bound on any one call (the timeout plus plenty of slack).
DRIVER_TIMEOUT = 2.0
CALL_BOUND = 15.0
#: The timeout of the driver whose ZooKeeper stops: every method waits about that long.
STOPPED_TIMEOUT = 0.5

#: Every public method of the driver (close is called on its own: it ends the driver).
METHODS = sorted(
    name
    for name, member in inspect.getmembers(TaskDriver)
    if not name.startswith("_") and callable(member) and name != "close"
)

#: Valid values by parameter name, the first being the plain one (with ZooKeeper stopped).
#: "wf" is a workflow with job "j", "st" one with streaming job "s", "q" a job queue.
VALID: dict[str, list[Any]] = {
    "name": ["wf", "st", "q", "nope"],
    "job": ["j", "s", "nope"],
    "queue": ["q", "nope"],
    "task_id": ["t0", 0],
    "instance": ["nobody"],
    "resource": ["db"],
    "partition": ["db_0"],
    "state": ["MASTER"],
    "tags": [["a"], ()],
    "enabled": [True, False],
    "force": [False],
    "timeout": [0.01, 0],
    "splits": [[{"v": 1}]],
    "key": [None, str],
    "since_barrier": [None, 0],
    "attempt": [None, 1],
    "workflow": [
        Workflow.builder("new").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
    ],
    "workflows": [
        [Workflow.builder("new2").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()]
    ],
    "job_config": [JobConfig(command="Noop", num_tasks=1)],
    "jobs": [{"x": JobConfig(command="Noop", num_tasks=1)}],
    "task_config": [TaskConfig(id="t9", command="Noop")],
    "config": [WorkflowConfig(parallel_jobs=2)],
    "names": [["wf"], ("wf", "nope")],
    "states": [[TaskState.COMPLETED], ["STOPPED", TaskState.FAILED]],
    "settings": [{}],
}

#: Where one method's parameter of a shared name takes something else.
VALID_FOR: dict[tuple[str, str], list[Any]] = {
    ("create_queue", "queue"): [JobQueue.builder("q2").build()],
}


def valid_values(method: str, param: str) -> list[Any]:
    return VALID_FOR.get((method, param), VALID.get(param, [None]))


#: The hostile values: wrong types, path tricks, empty and oversized strings.
BAD = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.binary(max_size=8)
    | st.sampled_from(["", "/", "a/b", "../x", ".", "..", "ä", "x" * 300, "\x00", " "])
    | st.text(max_size=12)
    | st.dictionaries(st.text(max_size=4), st.none() | st.integers(), max_size=3)
    | st.lists(st.none() | st.integers() | st.text(max_size=4), max_size=3)
    | st.tuples(st.integers())
    | st.builds(object)
    | st.builds(set)
)
#: A timeout must not be a long wait that the driver would rightly honour.
BAD_TIMEOUT = BAD.filter(
    lambda v: not isinstance(v, int | float) or isinstance(v, bool) or not v > 0.05
)

#: What only a raw exception's text shows.
RAW_NAMES = ("_InactiveRpcError", "Traceback")


def _strategy(method: str, param: inspect.Parameter) -> st.SearchStrategy[Any]:
    bad = BAD_TIMEOUT if param.name == "timeout" else BAD
    valid = st.sampled_from(valid_values(method, param.name))
    return valid | bad


@st.composite
def calls(draw: st.DrawFn, method: str) -> tuple[list[Any], dict[str, Any]]:
    """Arguments for ``method``: each parameter valid or hostile, independently."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(getattr(TaskDriver, method)).parameters.values())[1:]:
        if param.kind is param.VAR_POSITIONAL:
            args += draw(
                st.lists(_strategy(method, param), max_size=3) | st.sampled_from(VALID["states"])
            )
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(draw(st.dictionaries(st.text(max_size=8), BAD, max_size=3)))
        elif param.default is not param.empty and param.name != "timeout" and draw(st.booleans()):
            continue  # left at its default (a timeout never is: defaults wait minutes)
        elif param.kind is param.KEYWORD_ONLY or (
            param.name == "timeout" and param.default is not param.empty
        ):
            kwargs[param.name] = draw(_strategy(method, param))
        else:
            args.append(draw(_strategy(method, param)))
    return args, kwargs


def valid_call(method: str) -> tuple[list[Any], dict[str, Any]]:
    """The plain valid arguments of ``method`` (the first of each in ``VALID``)."""
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for param in list(inspect.signature(getattr(TaskDriver, method)).parameters.values())[1:]:
        value = valid_values(method, param.name)[0]
        if param.kind is param.VAR_POSITIONAL:
            args += value
        elif param.kind is param.VAR_KEYWORD:
            kwargs.update(value)
        elif param.kind is param.KEYWORD_ONLY or param.name == "timeout":
            kwargs[param.name] = value
        else:
            args.append(value)
    return args, kwargs


def invoke(driver: TaskDriver, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """Call ``method`` in a thread, bounded by ``CALL_BOUND``; what it returned (a future
    resolved, a coroutine awaited), or the exception it raised, as the value."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            result = getattr(driver, method)(*args, **kwargs)
            if inspect.isawaitable(result):
                result = asyncio.run(_await(result))
            if isinstance(result, Future):
                result = result.result(timeout=CALL_BOUND)
            outcome.append(result)
        except BaseException as exc:  # judged by the caller
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(CALL_BOUND)
    assert not thread.is_alive(), (
        f"{method}(*{args!r}, **{kwargs!r}) still runs after {CALL_BOUND}s"
    )
    assert time.monotonic() - started < CALL_BOUND
    return outcome[0]


async def _await(awaitable: Any) -> Any:
    return await awaitable


def check_outcome(method: str, args: list[Any], kwargs: dict[str, Any], outcome: Any) -> None:
    """A raised exception must be a HelixpyError with a message of its own."""
    if not isinstance(outcome, BaseException):
        return
    call = f"{method}(*{args!r}, **{kwargs!r})"
    assert isinstance(outcome, HelixpyError), f"{call} leaked {outcome!r}"
    message = str(outcome)
    assert message.strip(), f"{call} raised {type(outcome).__name__} with no message"
    assert not any(raw in message for raw in RAW_NAMES), f"{call}: {message}"
    if isinstance(outcome, InvalidConfig):
        assert outcome.field and outcome.rule, f"{call}: {outcome!r} names no field or rule"


def seed(driver: TaskDriver) -> None:
    """The workflows the valid names point at."""
    driver.start(
        Workflow.builder("wf").add_job("j", JobConfig(command="Noop", num_tasks=1)).build()
    )
    stream = JobConfig(command="Sum", num_tasks=1, stream=True)
    driver.start(Workflow.builder("st").add_job("s", stream).build())
    driver.create_queue(JobQueue.builder("q").build())


@pytest.fixture(scope="module")
def cluster(zk_server: ZooKeeperServer) -> Iterator[LocalCluster]:
    with LocalCluster(
        participants=0,
        zk=zk_server.connection_string,
        driver_options={"timeout": DRIVER_TIMEOUT},
    ) as running:
        seed(running.driver)
        yield running


@pytest.mark.parametrize("method", METHODS)
def test_hostile_arguments_raise_only_helixpy_errors(cluster: LocalCluster, method: str) -> None:
    driver = cluster.driver

    # Given a running cluster with a workflow, a streaming job and a queue
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(calls(method))
    def call(drawn: tuple[list[Any], dict[str, Any]]) -> None:
        args, kwargs = drawn
        # When the method is called with each argument valid or hostile
        outcome = invoke(driver, method, args, kwargs)
        # Then it returns, or raises a HelixpyError saying what is wrong
        check_outcome(method, args, kwargs, outcome)

    call()


def test_a_closed_driver_says_so_from_every_method(cluster: LocalCluster) -> None:
    # Given a driver that was closed (twice: close is idempotent)
    driver = TaskDriver(cluster.zk_address, cluster.cluster, timeout=DRIVER_TIMEOUT)
    driver.close()
    driver.close()
    for method in METHODS:
        # When any method is called with valid arguments
        args, kwargs = valid_call(method)
        outcome = invoke(driver, method, args, kwargs)
        # Then it raises a HelixpyError saying the driver is closed
        assert isinstance(outcome, HelixpyError), (method, outcome)
        assert "closed" in str(outcome), (method, outcome)


#: Methods that write to ZooKeeper themselves (not through the leader), with the calls that
#: make them do so: without the cluster's identity these are refused.
DIRECT_WRITES: dict[str, tuple[list[Any], dict[str, Any]]] = {
    "delete": (["wf"], {"force": True}),
    "add_splits": (["st", "s", [{"v": 1}]], {}),
    "request_barrier": (["st", "s"], {}),
    "end_stream": (["st", "s"], {}),
}


def test_a_client_without_the_identity_hears_access_denied_naming_zk_auth(
    zk_address: str,
) -> None:
    # Given a cluster run with an identity, and a driver connected without it
    with LocalCluster(participants=0, zk=zk_address, zk_auth=AUTH) as secured:
        seed(secured.driver)
        with TaskDriver(secured.zk_address, secured.cluster, timeout=DRIVER_TIMEOUT) as anon:
            # When it writes to ZooKeeper itself
            for method, (args, kwargs) in DIRECT_WRITES.items():
                outcome = invoke(anon, method, args, kwargs)
                # Then it hears AccessDenied naming --zk-auth, not kazoo's NoAuthError
                assert isinstance(outcome, AccessDenied), (method, outcome)
                assert "--zk-auth" in str(outcome), (method, outcome)
            # And none of them wrote anything
            assert {"wf", "st", "q"} <= set(secured.driver.get_workflows())
            assert secured.driver.get_split_results("st", "s") == []
            # And every method, read or mutation (those go through the leader, which has
            # the identity), raises only HelixpyErrors
            for method in METHODS:
                args, kwargs = valid_call(method)
                check_outcome(method, args, kwargs, invoke(anon, method, args, kwargs))


def test_with_zookeeper_stopped_every_method_fails_in_bounded_time() -> None:
    # Given a driver connected to a ZooKeeper of its own, which then stops
    with ZooKeeperServer(tick_time=0.5, name="driver-errors") as server:
        address = server.connection_string
        driver = TaskDriver(address, "gone", timeout=STOPPED_TIMEOUT)
        try:
            server.stop()
            for method in METHODS:
                # When any method is called with valid arguments
                args, kwargs = valid_call(method)
                started = time.monotonic()
                outcome = invoke(driver, method, args, kwargs)
                # Then it raises a HelixpyError (ClusterUnavailable for most) in bounded time
                assert isinstance(outcome, HelixpyError), (method, outcome)
                check_outcome(method, args, kwargs, outcome)
                assert time.monotonic() - started < STOPPED_TIMEOUT * 4 + 1, method
        finally:
            driver.close()
        # And a new driver cannot connect, and says so
        with pytest.raises(ClusterUnavailable, match="gone"):
            TaskDriver(address, "gone", timeout=STOPPED_TIMEOUT)
