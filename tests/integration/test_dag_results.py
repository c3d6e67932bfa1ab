"""Results along the DAG: a child reads its parents' results (``ctx.parent_results``), and a
fan-out job (``expand``) gets one task per element of its parent's list results when it
starts, fixed in its config before any runs, so a new leader keeps them."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskState, Workflow
from helixpy.model import JobContext
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final, wait_job

pytestmark = pytest.mark.cluster


def pipeline(name: str, elements: object, *, gather_isolation: str = "thread") -> Workflow:
    """split (returns ``elements``) -> work (one task per element) -> sum (gathers work)."""
    wf = Workflow.builder(name)
    wf.add_job(
        "split", JobConfig(command="Return", num_tasks=1, command_config={"value": elements})
    )
    wf.add_job("work", JobConfig(command="Return", expand="split"))
    wf.add_job(
        "sum",
        JobConfig(
            command="Gather",
            num_tasks=1,
            command_config={"from": "work"},
            isolation=gather_isolation,
        ),
    )
    wf.add_parent_child_dependency("split", "work").add_parent_child_dependency("work", "sum")
    return wf.build()


def test_a_thousand_element_fan_out_runs_and_its_results_flow_to_the_next_job(
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a job returning a list of 1,000 elements, a fan-out job over it, and a job
        # gathering the fan-out's results (in a worker process, through its parent)
        driver.start(pipeline("fan", list(range(1000)), gather_isolation="process"))
        # When it runs
        assert wait_final(driver, "fan", timeout=240) is TaskState.COMPLETED
        # Then the fan-out had one task per element, the element as its config's item
        cfg = driver.get_job_config("fan", "work")
        assert [(t.task_id, t.config) for t in cfg.tasks] == [
            (str(i), {"item": i}) for i in range(1000)
        ]
        # and each returned its element, and the next job read them all
        results = driver.get_job_results("fan", "work")
        assert len(results) == 1000
        assert all(results[str(i)]["item"] == i for i in range(1000))
        assert driver.get_task_result("fan", "sum", 0) == results


def test_fan_out_tasks_stay_as_they_were_decided_across_a_leader_failover(
    zk_address: str,
) -> None:
    with LocalCluster(participants=2, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a fan-out over 60 elements whose tasks take a while
        wf = Workflow.builder("fo")
        wf.add_job(
            "split",
            JobConfig(command="Return", num_tasks=1, command_config={"value": list(range(60))}),
        )
        wf.add_job(
            "work",
            JobConfig(command="Return", expand="split", command_config={"hold": 0.3}),
        )
        driver.start(wf.add_parent_child_dependency("split", "work").build())

        def started(ctx: JobContext) -> bool:
            return ctx.state is TaskState.IN_PROGRESS and len(ctx.tasks) == 60

        wait_job(cluster, "fo", "work", started, "fanned out")
        decided = [(t.task_id, t.config) for t in driver.get_job_config("fo", "work").tasks]
        # When the leader is killed while they run
        cluster.kill_controller()
        # Then the job completes with exactly the tasks decided before, each run to completion
        assert wait_final(driver, "fo", timeout=120) is TaskState.COMPLETED
        after = [(t.task_id, t.config) for t in driver.get_job_config("fo", "work").tasks]
        assert after == decided == [(str(i), {"item": i}) for i in range(60)]
        results = driver.get_job_results("fo", "work")
        assert sorted(v["item"] for v in results.values()) == list(range(60))


@pytest.mark.parametrize(
    ("elements", "state", "info"),
    [
        ({"not": "a list"}, TaskState.FAILED, "task 0 of job split returned dict, not a list"),
        ([], TaskState.COMPLETED, "expanded to no tasks"),
    ],
)
def test_a_fan_out_over_no_list_fails_and_over_an_empty_one_completes(
    zk_address: str, elements: object, state: TaskState, info: str
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a fan-out over a parent result that is not a list, or is empty
        wf = pipeline("bad", elements)
        driver.start(wf)
        # When it runs, Then the fan-out job ends saying why
        wait_final(driver, "bad")
        ctx = driver.get_job_context("bad", "work")
        assert ctx.state is state and info in ctx.info
        assert ctx.tasks == {}


def test_a_fan_out_over_more_elements_than_the_task_limit_fails_saying_so(
    zk_address: str,
) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a cluster that allows 5 tasks per job, and a parent returning 10 elements
        driver.set_cluster_config(max_tasks_per_job=5)
        driver.start(pipeline("wide", list(range(10))))
        # Then the fan-out job fails naming the limit, and made no task
        wait_final(driver, "wide")
        ctx = driver.get_job_context("wide", "work")
        assert ctx.state is TaskState.FAILED
        assert "fans out to 10 tasks, over the cluster's max_tasks_per_job=5" in ctx.info
        assert driver.get_job_config("wide", "work").tasks == ()
