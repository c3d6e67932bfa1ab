"""Bad input: random and malformed requests against a real controller's gRPC service."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixpy import JobConfig, TaskState, Workflow
from helixpy.driver import TaskDriver
from helixpy.errors import PollTimeout
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import leader_endpoint

pytestmark = pytest.mark.cluster

RPCS: dict[str, type[Any]] = {
    method.name: getattr(pb, method.input_type.name)
    for method in pb.DESCRIPTOR.services_by_name["Controller"].methods
}
ANSWERS = {pb.OK, pb.INVALID_CONFIG, pb.NOT_FOUND, pb.ALREADY_EXISTS}

names = st.sampled_from(
    ["wf", "q", "j", "../x", "a/b", ".", "", "ä" * 129, "x" * 300, "participant-0", "ok_name"]
) | st.text(max_size=40)
numbers = st.integers(-(2**70), 2**70) | st.floats(allow_nan=True, allow_infinity=True)
garbage = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=30),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=15,
)
jobs = st.dictionaries(
    names,
    st.fixed_dictionaries(
        {},
        optional={
            "command": st.text(max_size=10) | garbage,
            "num_tasks": numbers | garbage,
            "timeout": numbers,
            "max_attempts_per_task": numbers,
            "tasks": st.lists(
                st.dictionaries(st.sampled_from(["id", "command", "config"]), garbage)
            ),
            "target_resource": names,
            "stream": garbage,
        },
    ),
    max_size=4,
)
plausible = st.fixed_dictionaries(
    {"name": names},
    optional={
        "jobs": jobs | garbage,
        "parents": st.dictionaries(names, st.lists(names, max_size=3)) | garbage,
        "config": st.dictionaries(
            st.sampled_from(
                ["timeout", "parallel_jobs", "capacity", "failure_threshold", "expiry"]
            ),
            numbers,
        ),
    },
)
deep_dag = st.integers(50, 400).map(
    lambda n: {
        "name": f"deep{n}",
        "jobs": {f"j{i}": {"command": "Noop", "num_tasks": 1} for i in range(n)},
        "parents": {f"j{i}": [f"j{i - 1}"] for i in range(1, n)},
    }
)
json_text = (
    st.one_of(plausible, garbage, deep_dag, st.lists(st.tuples(names, jobs), max_size=3)).map(
        json.dumps
    )
    | st.text(max_size=60)
    | st.just("x" * 200_000)
)


def fill(draw: st.DrawFn, message: Any) -> Any:
    """Fill every field of ``message`` with hostile values; nested items are filled alike."""
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            # A map (user content): hostile keys and values, the empty string included
            getattr(message, field.name).update(
                draw(st.dictionaries(names | st.just(""), names | st.just(""), max_size=4))
            )
            continue
        if field.type == field.TYPE_MESSAGE:
            # Batch requests (StartMany, EnqueueMany) carry items: each item is its own
            # message, drawn the same way, so one bad item sits among plausible ones
            for _ in range(draw(st.integers(0, 4))):
                fill(draw, getattr(message, field.name).add())
            continue
        if field.name == "request_id":
            value: Any = draw(st.sampled_from(["", "../r", "ä"]) | st.uuids().map(lambda u: u.hex))
        elif field.type == field.TYPE_BOOL:
            value = draw(st.booleans())
        elif field.type == field.TYPE_INT32:
            value = draw(st.integers(-(2**31), 2**31 - 1) | st.sampled_from([0, 1, 100, 101]))
        elif field.name.endswith("_json"):
            value = draw(json_text)
        else:
            value = draw(names)
        if field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(names, max_size=4)))
        elif field.containing_oneof is None or draw(st.booleans()):
            setattr(message, field.name, value)
    return message


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Any]:
    method = draw(st.sampled_from(sorted(RPCS)))
    return method, fill(draw, RPCS[method]())


def answers(reply: Any) -> list[Any]:
    """The per-mutation answers in a reply: the reply itself, or a batch reply's items."""
    if "replies" in reply.DESCRIPTOR.fields_by_name:
        return list(reply.replies)
    return [reply]


def test_random_and_malformed_requests_get_answers_and_the_controller_lives_on(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        leader = cluster.leader()
        channel = grpc.insecure_channel(leader_endpoint(cluster))
        stub = pb_grpc.ControllerStub(channel)
        seen: dict[int, int] = {}

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(requests())
        def call(request: tuple[str, Any]) -> None:
            method, message = request
            # Every call is answered with a reply code naming the problem: the transport
            # never fails and nothing is INTERNAL
            reply = getattr(stub, method)(message, timeout=30)
            for answer in answers(reply):
                assert answer.code in ANSWERS, (method, message, reply)
                if answer.code == pb.INVALID_CONFIG:
                    assert answer.field and answer.rule, answer
                seen[answer.code] = seen.get(answer.code, 0) + 1

        try:
            call()
        finally:
            channel.close()
        # Then the leader never changed (it did not crash), and real work still runs
        assert cluster.leader() == leader and cluster.exit_code(leader, 0) is None
        assert seen.get(pb.INVALID_CONFIG, 0) > 50
        # Given what the fuzz left removed, as a user would (it may have started work that
        # keeps the participant busy: a queue of hundreds of jobs, say), and the instance
        # in its first settings (a fuzzed call may have retagged or disabled it)
        driver, inst = cluster.driver, cluster.instances[0]
        for name in sorted(driver.get_workflows()):
            driver.delete_and_wait(name, timeout=60)
        driver.set_instance_enabled(inst, True)
        driver.set_instance_tags(inst, [])
        # When a workflow is started, Then it runs to the end
        driver.start(
            Workflow.builder("after-fuzz")
            .add_job("j", JobConfig(command="Noop", num_tasks=2))
            .build()
        )
        try:
            state = driver.poll_for_workflow_state("after-fuzz", TaskState.COMPLETED, timeout=60)
        except PollTimeout as exc:
            raise AssertionError(f"{exc}\n{_placement_state(cluster, driver, inst)}") from None
        assert state is TaskState.COMPLETED


def _placement_state(cluster: LocalCluster, driver: TaskDriver, inst: str) -> str:
    """What decides where after-fuzz's tasks go, for a failure message."""
    zk = connect(cluster.zk_address)
    try:
        nodes = {
            path: zk.exists(path) and zk.get(path)[0][:2000]
            for path in (
                cluster.paths.live_instance(inst),
                cluster.paths.instance_config(inst),
                cluster.paths.assignment(inst),
            )
        }
        states = {
            c: zk.get(f"{cluster.paths.states(inst)}/{c}")[0][:2000]
            for c in zk.get_children(cluster.paths.states(inst))
        }
    finally:
        zk.stop()
        zk.close()
    return (
        f"instances: {driver.get_instances()}\ncluster config: {driver.get_cluster_config()}\n"
        f"after-fuzz/j: {driver.get_job_context('after-fuzz', 'j')}\n"
        f"workflows: {sorted(driver.get_workflows())}\nnodes: {nodes}\nstates: {states}"
    )
