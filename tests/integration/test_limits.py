"""No request can exhaust the controller: the cluster's size limits, checked by the leader
right after parsing a request, before it builds anything of it."""

from __future__ import annotations

import json
import time
import uuid

import grpc
import pytest

from helixpy import JobConfig, TaskConfig, TaskState, Workflow, WorkflowConfig
from helixpy.errors import InvalidConfig
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.testing import LocalCluster
from tests.integration.helpers import leader_endpoint, wait_final

pytestmark = pytest.mark.cluster


def workflow_json(name: str, jobs: dict[str, dict[str, object]]) -> str:
    return json.dumps({"name": name, "jobs": jobs})


def start(stub: pb_grpc.ControllerStub, body: str) -> pb.MutationReply:
    request = pb.StartWorkflowRequest(request_id=uuid.uuid4().hex, workflow_json=body)
    reply: pb.MutationReply = stub.StartWorkflow(request, timeout=30)
    return reply


def test_absurd_requests_are_refused_by_name_and_the_next_start_is_served_at_once(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        channel = grpc.insecure_channel(
            leader_endpoint(cluster), options=[("grpc.max_send_message_length", 32 << 20)]
        )
        stub = pb_grpc.ControllerStub(channel)
        try:
            # When the leader is sent a job of ten million tasks, Then it is refused naming
            # the field and the limit (nothing was built: no pass ran out of memory)
            reply = start(
                stub, workflow_json("huge", {"j": {"command": "Noop", "num_tasks": 10**7}})
            )
            assert reply.code == pb.INVALID_CONFIG
            assert reply.field == "workflow.jobs.j.num_tasks"
            assert "max_tasks_per_job=100000" in reply.rule
            # and so are a workflow of 10,001 jobs and a 5 MB request
            many = {f"j{i}": {"command": "Noop", "num_tasks": 1} for i in range(10_001)}
            reply = start(stub, workflow_json("wide", many))
            assert (reply.code, reply.field) == (pb.INVALID_CONFIG, "workflow.jobs")
            assert "max_jobs_per_workflow=10000" in reply.rule
            fat = {
                "j": {"command": "Noop", "num_tasks": 1, "command_config": {"k": "x" * 5_000_000}}
            }
            reply = start(stub, workflow_json("fat", fat))
            assert (reply.code, reply.field) == (pb.INVALID_CONFIG, "request")
            assert "max_request_bytes=4194304" in reply.rule
            # and a StartMany refuses its oversized item alone
            items = [
                pb.StartItem(
                    workflow_json=workflow_json(
                        "many-ok", {"j": {"command": "Noop", "num_tasks": 1}}
                    )
                ),
                pb.StartItem(
                    workflow_json=workflow_json(
                        "many-bad", {"j": {"command": "Noop", "num_tasks": 10**9}}
                    )
                ),
            ]
            replies = stub.StartMany(
                pb.StartManyRequest(request_id=uuid.uuid4().hex, items=items), timeout=30
            ).replies
            assert [r.code for r in replies] == [pb.OK, pb.INVALID_CONFIG]
            assert replies[1].field == "workflow.jobs.j.num_tasks"
        finally:
            channel.close()
        # Then the next normal start is served within a second, and runs
        began = time.monotonic()
        driver.start(
            Workflow.builder("normal").add_job("j", JobConfig(command="Noop", num_tasks=3)).build()
        )
        assert time.monotonic() - began < 1.0
        assert wait_final(driver, "normal") is TaskState.COMPLETED
        assert wait_final(driver, "many-ok") is TaskState.COMPLETED
        # When the operator lowers a limit, Then the driver's start is refused by it
        driver.set_cluster_config(max_tasks_per_job=10)
        with pytest.raises(InvalidConfig, match="max_tasks_per_job=10"):
            driver.start(
                Workflow.builder("eleven")
                .add_job("j", JobConfig(command="Noop", num_tasks=11))
                .build()
            )
        driver.start(
            Workflow.builder("ten").add_job("j", JobConfig(command="Noop", num_tasks=10)).build()
        )
        assert wait_final(driver, "ten") is TaskState.COMPLETED
        # and adding an eleventh task to a job of ten is refused by it too
        held = JobConfig(command="Noop", tasks=[TaskConfig(id=f"t{i}") for i in range(10)])
        driver.start(
            Workflow.builder("full")
            .set_config(WorkflowConfig(target_state="STOP"))
            .add_job("j", held)
            .build()
        )
        with pytest.raises(InvalidConfig, match="max_tasks_per_job=10") as exc:
            driver.add_task("full", "j", TaskConfig(id="t10"))
        assert exc.value.field == "job.tasks"
        assert len(driver.get_job_config("full", "j").tasks) == 10
        # and a limit that is no positive integer is refused naming it
        for bad in (0, -1, 1.5, True, 10**12):
            with pytest.raises(InvalidConfig, match=r"cluster_config\.max_request_bytes"):
                driver.set_cluster_config(max_request_bytes=bad)
