"""Typed task arguments: JSON values in command_config and task configs, as tasks get them."""

from __future__ import annotations

import json
import uuid

import grpc
import pytest

from helixpy import JobConfig, TaskConfig, TaskState, Workflow, WorkflowConfig
from helixpy.errors import InvalidConfig
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.testing import LocalCluster
from tests.integration.helpers import helixpy_cli, leader_endpoint, wait_final

pytestmark = pytest.mark.cluster

JOB_ARGS = {"limit": 10, "ratio": 0.5, "tags": ["a", "b"], "opts": {"deep": [True, None]}}
#: (a lone surrogate too: any Python str is stored and given back)
TASK_ARGS = {"limit": 11, "ids": [1, 2, 3], "name": "3", "odd": "caf\u00e9 \ud800"}


def echoed(cluster: LocalCluster, wf: str, job: str, task: str) -> tuple[dict, dict]:
    content = cluster.driver.get_task_user_content_map(wf, job, task)
    return json.loads(content["config"]), json.loads(content["types"])


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_tasks_get_their_arguments_as_typed_values(zk_address: str, isolation: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a job's typed command_config, overlaid by a task's typed config
        job = JobConfig(
            command="EchoConfig",
            command_config=JOB_ARGS,
            tasks=[TaskConfig(id="t", config=TASK_ARGS)],
            isolation=isolation,
        )
        driver.start(Workflow.builder("typed").add_job("j", job).build())
        # When the task runs, Then it sees each value with its type, the task's winning
        assert wait_final(driver, "typed") is TaskState.COMPLETED
        config, types = echoed(cluster, "typed", "j", "t")
        assert config == {**JOB_ARGS, **TASK_ARGS}
        assert types == {
            "limit": "int",
            "ratio": "float",
            "tags": "list",
            "opts": "dict",
            "ids": "list",
            "name": "str",
            "odd": "str",
        }
        # and the stored configs read back as given
        stored = driver.get_job_config("typed", "j")
        assert stored.command_config == JOB_ARGS and stored.tasks[0].config == TASK_ARGS


def test_added_tasks_take_typed_values_from_the_driver_and_the_cli(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        held = JobConfig(command="EchoConfig", tasks=[TaskConfig(id="t0", config={"n": 0})])
        driver.start(
            Workflow.builder("grow")
            .set_config(WorkflowConfig(target_state="STOP"))
            .add_job("j", held)
            .build()
        )
        # When tasks are added with typed values: by the driver, and by the CLI's KEY:=JSON
        driver.add_task("grow", "j", TaskConfig(id="t1", config={"n": 1, "xs": [1.5]}))
        where = ["--zk", cluster.zk_address, "--cluster", cluster.cluster]
        cli = helixpy_cli(
            "job", "add-task", *where, "grow", "j", "t2",
            "--config", "n:=2", "--config", "s=2", "--config", 'm:={"k": [null, false]}',
            timeout=60,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        # and a KEY:=value that is not JSON is refused naming the option
        bad = helixpy_cli(
            "job", "add-task", *where, "grow", "j", "t3", "--config", "n:=[1,", timeout=60
        )
        assert bad.returncode != 0 and "--config" in bad.stderr and "not JSON" in bad.stderr
        driver.resume("grow")
        # Then each task gets its values with their types
        assert wait_final(driver, "grow") is TaskState.COMPLETED
        assert echoed(cluster, "grow", "j", "t1") == (
            {"n": 1, "xs": [1.5]},
            {"n": "int", "xs": "list"},
        )
        assert echoed(cluster, "grow", "j", "t2") == (
            {"n": 2, "s": "2", "m": {"k": [None, False]}},
            {"n": "int", "s": "str", "m": "dict"},
        )


def test_oversized_or_untyped_arguments_are_refused_at_submit(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        # Given arguments that are too big, or no JSON value
        with pytest.raises(InvalidConfig) as exc:
            JobConfig(command="Noop", num_tasks=1, command_config={"blob": "x" * 70_000})
        assert exc.value.field == "job.command_config" and "65536-byte limit" in exc.value.rule
        with pytest.raises(InvalidConfig) as exc:
            TaskConfig(config={"when": object()})
        assert exc.value.field == "task.config.when"
        # When a client that skips the model's checks sends them to the leader anyway
        big = {"j": {"command": "Noop", "num_tasks": 1, "command_config": {"blob": "x" * 70_000}}}
        nan = (
            '{"name": "nan", "jobs": {"j": {"command": "Noop", "num_tasks": 1, '
            '"command_config": {"x": NaN}}}}'
        )
        channel = grpc.insecure_channel(leader_endpoint(cluster))
        try:
            stub = pb_grpc.ControllerStub(channel)
            replies = [
                stub.StartWorkflow(
                    pb.StartWorkflowRequest(request_id=uuid.uuid4().hex, workflow_json=body),
                    timeout=30,
                )
                for body in (json.dumps({"name": "big", "jobs": big}), nan)
            ]
        finally:
            channel.close()
        # Then the leader refuses them too, naming the field and the rule
        assert [r.code for r in replies] == [pb.INVALID_CONFIG, pb.INVALID_CONFIG]
        assert replies[0].field.endswith("jobs.j.command_config")
        assert "65536-byte limit" in replies[0].rule
        assert replies[1].field.endswith("jobs.j.command_config.x") and "finite" in replies[1].rule
        assert cluster.driver.get_workflows() == {}
