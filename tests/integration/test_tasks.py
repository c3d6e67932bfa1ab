"""Task semantics seen from user code: results, user modules, cluster defaults."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.store.client import connect
from helixpy.store.codec import decode
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final

pytestmark = pytest.mark.cluster
P = TaskPartitionState

USER_TASKS = textwrap.dedent("""
    from helixpy import TaskRegistry, TaskResult, TaskStatus

    registry = TaskRegistry()

    @registry.task("Greet")
    def greet(ctx):
        ctx.put_user_content("greeting", "hello " + ctx.task_config["who"])
        return TaskResult(TaskStatus.COMPLETED, "greeted " + ctx.task_config["who"])
""")


def test_tasks_from_a_user_module_on_pythonpath(
    zk_address: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a task module that only PYTHONPATH can reach
    (tmp_path / "my_user_tasks.py").write_text(USER_TASKS)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    with LocalCluster(tasks="my_user_tasks:registry", participants=1, zk=zk_address) as cluster:
        # When a job of its command runs, with job config overlaid by task config
        wf = (
            Workflow.builder("user")
            .add_job("j", JobConfig(command="Greet", num_tasks=1, command_config={"who": "world"}))
            .build()
        )
        cluster.driver.start(wf)
        # Then the participant process found it and the result's info is kept
        assert wait_final(cluster.driver, "user") is TaskState.COMPLETED
        task = cluster.driver.get_job_context("user", "j").tasks[0]
        assert task.info == "greeted world"
        assert cluster.driver.get_task_user_content_map("user", "j", task.task_id) == {
            "greeting": "hello world"
        }


def test_canceled_without_being_asked_is_task_error(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        wf = (
            Workflow.builder("unasked")
            .add_job("j", JobConfig(command="CancelUnasked", num_tasks=1, max_attempts_per_task=2))
            .build()
        )
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "unasked") is TaskState.FAILED
        task = cluster.driver.get_job_context("unasked", "j").tasks[0]
        assert task.state is P.TASK_ERROR and task.num_attempts == 2


def test_participants_take_the_cluster_default_capacity(zk_address: str) -> None:
    # Given a cluster whose default capacity is 3
    with LocalCluster(
        participants=0, zk=zk_address, cluster_config={"default_capacity": 3}
    ) as cluster:
        # When a participant starts without --capacity
        inst = cluster.add_participant()
        zk = connect(cluster.zk_address)
        try:
            live = decode(zk.get(cluster.paths.live_instance(inst))[0])
        finally:
            zk.stop()
            zk.close()
        # Then it advertises 3, and never runs more than 3 tasks at once
        assert live["capacity"] == 3
        wf = (
            Workflow.builder("cap")
            .add_job(
                "j",
                JobConfig(
                    command="Record",
                    num_tasks=9,
                    num_concurrent_tasks_per_instance=9,
                    command_config={"seconds": "0.2"},
                ),
            )
            .build()
        )
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "cap") is TaskState.COMPLETED
        ctx = cluster.driver.get_job_context("cap", "j")
        peaks = [
            int(cluster.driver.get_task_user_content_map("cap", "j", t.task_id)["max_concurrent"])
            for t in ctx.tasks.values()
        ]
        assert max(peaks) <= 3


def test_a_disabled_instance_gets_no_work_and_stays_disabled_across_restarts(
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        off, on = cluster.instances
        # Given one instance disabled by an operator (its CONFIG's enabled flag)
        zk = connect(cluster.zk_address)
        try:
            path = cluster.paths.instance_config(off)
            zk.set(path, json.dumps({**decode(zk.get(path)[0]), "enabled": False}).encode())
            # When it restarts and a job runs
            cluster.kill_participant(off)
            cluster.start_participant(off)
            assert decode(zk.get(path)[0])["enabled"] is False
        finally:
            zk.stop()
            zk.close()
        wf = (
            Workflow.builder("off")
            .add_job(
                "j", JobConfig(command="Noop", num_tasks=6, num_concurrent_tasks_per_instance=6)
            )
            .build()
        )
        cluster.driver.start(wf)
        assert wait_final(cluster.driver, "off") is TaskState.COMPLETED
        # Then every task ran on the enabled instance
        ctx = cluster.driver.get_job_context("off", "j")
        assert {t.assigned_participant for t in ctx.tasks.values()} == {on}


def test_a_task_completes_only_after_the_work_it_emitted_ran(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a task fanning out 30 follow-ups, and one whose 4th follow-up raises
        wf = (
            Workflow.builder("fan")
            .add_job("ok", JobConfig(command="FanOut", num_tasks=1, command_config={"count": "30"}))
            .add_job(
                "bad",
                JobConfig(
                    command="FanOut",
                    num_tasks=1,
                    max_attempts_per_task=1,
                    command_config={"count": "8", "fail_at": "3"},
                ),
            )
            .add_parent_child_dependency("ok", "bad")
            .build()
        )
        driver.start(wf)
        # Then the first completes with every follow-up's write in place when COMPLETED shows
        assert wait_final(driver, "fan") is TaskState.FAILED
        ok = driver.get_job_context("fan", "ok").tasks[0]
        assert ok.state is TaskPartitionState.COMPLETED
        content = driver.get_task_user_content_map("fan", "ok", ok.task_id)
        assert content == {f"f{i}": "1" for i in range(30)}
        # and the second fails with the follow-up's error
        bad = driver.get_job_context("fan", "bad").tasks[0]
        assert bad.state is TaskPartitionState.TASK_ERROR
        assert bad.info == "emitted work failed: RuntimeError: follow-up 3 failed"
