"""Helix TaskDriver calls beyond the basics: addOrUpdate*UserContentMap, the task thread
pool size, and the last scheduled task."""

from __future__ import annotations

import asyncio

import pytest

from helixpy import JobConfig, TaskConfig, TaskPartitionState, TaskState, Workflow
from helixpy.driver.aio import AsyncTaskDriver
from helixpy.errors import InvalidConfig, NotFound
from helixpy.testing import LocalCluster
from tests.integration.helpers import count, helixpy_cli, wait_final, wait_job

pytestmark = pytest.mark.cluster
P = TaskPartitionState
S = TaskState


def test_user_content_maps_are_added_to_and_updated_from_the_driver(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a finished workflow whose tasks wrote content at every scope (WriteContent)
        wf = (
            Workflow.builder("uc")
            .add_job("extract", JobConfig(command="WriteContent", num_tasks=2))
            .add_job("named", JobConfig(tasks=[TaskConfig(id="t1", command="Noop")]))
            .build()
        )
        driver.start(wf)
        assert wait_final(driver, "uc") is S.COMPLETED
        assert driver.get_workflow_user_content_map("uc") == {"written_by": "extract"}
        # When the driver adds and updates keys at each scope
        driver.add_or_update_workflow_user_content_map("uc", {"owner": "ops", "written_by": "me"})
        driver.add_or_update_job_user_content_map("uc", "extract", {"checked": "yes"})
        driver.add_or_update_task_user_content_map("uc", "extract", 1, {"note": "by number"})
        driver.add_or_update_task_user_content_map("uc", "named", "t1", {"note": "by id"})
        # Then each map has the new keys and keeps the tasks' others
        assert driver.get_workflow_user_content_map("uc") == {"owner": "ops", "written_by": "me"}
        assert driver.get_job_user_content_map("uc", "extract") == {
            "job": "extract",
            "checked": "yes",
        }
        assert driver.get_task_user_content_map("uc", "extract", 1) == {
            "task": "1",
            "note": "by number",
        }
        # (a task that never wrote content gets its first map from the driver)
        assert driver.get_task_user_content_map("uc", "named", "t1") == {"note": "by id"}
        # and bad input names what is wrong, nothing written
        with pytest.raises(InvalidConfig) as exc:
            driver.add_or_update_job_user_content_map("uc", "extract", {"n": 1})  # type: ignore[dict-item]
        assert exc.value.field == "content.n"
        with pytest.raises(NotFound):
            driver.add_or_update_job_user_content_map("uc", "nope", {"a": "b"})
        with pytest.raises(NotFound):
            driver.add_or_update_task_user_content_map("uc", "extract", "7", {"a": "b"})
        with pytest.raises(NotFound):
            driver.add_or_update_workflow_user_content_map("gone", {"a": "b"})

        async def from_asyncio() -> dict[str, str]:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as adriver:
                await adriver.add_or_update_job_user_content_map("uc", "named", {"via": "aio"})
                return await adriver.get_job_user_content_map("uc", "named")

        assert asyncio.run(from_asyncio()) == {"via": "aio"}
        # and the CLI reads and sets them
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        out = helixpy_cli("job", "content", "uc", "extract", "0", "--set", "k=v=w", env=env)
        assert out.returncode == 0 and out.stdout.splitlines() == ["k=v=w", "task=0"], out.stderr
        bad = helixpy_cli("job", "content", "uc", "--set", "novalue", env=env)
        assert bad.returncode != 0 and "KEY=VALUE" in bad.stderr


def test_the_target_thread_pool_size_is_taken_at_the_participants_next_start(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        inst = cluster.instances[0]
        # Given a participant with the default capacity (40) and no target
        assert driver.get_current_task_thread_pool_size(inst) == 40
        assert driver.get_target_task_thread_pool_size(inst) is None
        # When a target of 3 is set
        driver.set_target_task_thread_pool_size(inst, 3)
        # Then it is recorded, and the running participant keeps its size (as in Helix)
        assert driver.get_target_task_thread_pool_size(inst) == 3
        assert driver.get_current_task_thread_pool_size(inst) == 40
        # and after a restart the participant runs with 3: at most 3 tasks at once
        cluster.stop_participant(inst)
        with pytest.raises(NotFound):
            driver.get_current_task_thread_pool_size(inst)
        cluster.start_participant(inst)
        assert driver.get_current_task_thread_pool_size(inst) == 3
        assert driver.get_instances()[inst]["target_task_thread_pool_size"] == 3
        job = JobConfig(
            command="Sleep",
            num_tasks=5,
            num_concurrent_tasks_per_instance=10,
            command_config={"seconds": "30"},
        )
        driver.start(Workflow.builder("pool").add_job("j", job).build())
        ctx = wait_job(cluster, "pool", "j", lambda c: count(c, P.RUNNING) == 3, "running")
        assert [t.state for t in ctx.tasks.values()].count(None) == 2
        driver.delete("pool")
        # and the CLI shows both; clearing it returns to the default at the next start
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        out = helixpy_cli("instance", "thread-pool", inst, env=env)
        assert out.stdout.strip() == f"{inst} target=3 current=3", out.stderr
        out = helixpy_cli("instance", "thread-pool", inst, "--clear", env=env)
        assert out.stdout.strip() == f"{inst} target=unset current=3", out.stderr
        cluster.stop_participant(inst)
        cluster.start_participant(inst)
        assert driver.get_current_task_thread_pool_size(inst) == 40
        # and bad input is refused, naming the rule
        with pytest.raises(InvalidConfig) as exc:
            driver.set_target_task_thread_pool_size(inst, 0)
        assert exc.value.field == "size" and "1 to 100" in str(exc.value)
        with pytest.raises(NotFound):
            driver.set_target_task_thread_pool_size("nobody", 4)
        with pytest.raises(NotFound):
            driver.get_target_task_thread_pool_size("nobody")


def test_the_last_scheduled_task_is_the_one_that_started_last(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a workflow held stopped: nothing scheduled yet
        wf = (
            Workflow.builder("seq")
            .add_job("first", JobConfig(command="Noop", num_tasks=2))
            .add_job("second", JobConfig(tasks=[TaskConfig(id="only", command="Noop")]))
            .add_parent_child_dependency("first", "second")
            .build()
        )
        driver.start(wf)
        assert wait_final(driver, "seq") is S.COMPLETED
        # When it has run: first's two tasks, then second's
        info = driver.get_last_scheduled_task_execution_info("seq")
        # Then the last scheduled task is second's, with its start time
        assert info is not None
        assert (info.job, info.partition, info.task_id, info.state) == (
            "second",
            0,
            "only",
            P.COMPLETED,
        )
        started = driver.get_job_context("seq", "second").tasks[0].start_time
        assert info.start_time == started
        assert driver.get_last_scheduled_task_timestamp("seq") == started
        firsts = driver.get_job_context("seq", "first").tasks.values()
        assert all(t.start_time is not None and t.start_time <= started for t in firsts)

        async def from_asyncio() -> object:
            async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as adriver:
                return await adriver.get_last_scheduled_task_execution_info("seq")

        assert asyncio.run(from_asyncio()) == info
        # and a workflow with no task scheduled yet has none
        from helixpy import WorkflowConfig

        held = (
            Workflow.builder("held")
            .set_config(WorkflowConfig(target_state="STOP"))
            .add_job("j", JobConfig(command="Noop", num_tasks=1))
            .build()
        )
        driver.start(held)
        assert driver.get_last_scheduled_task_execution_info("held") is None
        assert driver.get_last_scheduled_task_timestamp("held") is None
        with pytest.raises(NotFound):
            driver.get_last_scheduled_task_execution_info("nope")
        env = {"HELIXPY_ZK": cluster.zk_address, "HELIXPY_CLUSTER": cluster.cluster}
        out = helixpy_cli("job", "last-scheduled", "seq", env=env)
        assert out.returncode == 0 and out.stdout.startswith("second task only (partition 0)")
