"""Task results: the value a task returns is stored with its COMPLETED report, fenced by
its participant's incarnation, and read through the driver, the CLI and the dashboard; only
the completed attempt's value exists, and it goes with its workflow."""

from __future__ import annotations

import json
import signal
import urllib.request

import pytest

from helixpy import JobConfig, TaskConfig, TaskPartitionState, TaskState, Workflow
from helixpy.errors import NoResult, NotFound
from helixpy.model import JobContext
from helixpy.model.values import MAX_RESULT_BYTES
from helixpy.participant.registration import incarnation_fence, register
from helixpy.participant.reporter import StateReporter
from helixpy.participant.results import ResultPublisher
from helixpy.store.acl import OpenAclProvider
from helixpy.store.client import connect
from helixpy.store.codec import decode
from helixpy.store.fencing import FencedWriter
from helixpy.store.paths import Paths
from helixpy.store.results import INLINE_BYTES, read_results
from helixpy.testing import LocalCluster
from tests.integration.helpers import (
    dashboard_url,
    helixpy_cli,
    wait_final,
    wait_for_data,
    wait_for_line,
    wait_gone,
    wait_job,
)

pytestmark = pytest.mark.cluster
P = TaskPartitionState
BIG = 3 * INLINE_BYTES  # stored in chunks
TYPED = {"n": 3, "ratio": 0.5, "ok": True, "none": None, "items": [1, "two", {"three": 3}]}


def result_nodes(cluster: LocalCluster, wf: str) -> list[str]:
    """The result nodes (heads and chunks, every attempt) of task 0 of job ``j`` of ``wf``."""
    zk = connect(cluster.zk_address)
    try:
        return sorted(zk.get_children(cluster.paths.task_result_shard(wf, "j", "0")))
    finally:
        zk.stop()
        zk.close()


def returning(isolation: str) -> JobConfig:
    return JobConfig(
        command="Return",
        tasks=(
            TaskConfig(id="typed", config={"value": TYPED}),
            TaskConfig(id="text", config={"value": "héllo \ud800"}),
            TaskConfig(id="big", config={"size": BIG}),
            TaskConfig(id="none", command="Noop"),
        ),
        isolation=isolation,
    )


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_returned_values_are_read_back_and_purged_with_their_workflow(
    zk_address: str, isolation: str
) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        driver = cluster.driver
        # Given tasks returning a typed value, a string, a value too big for one node, and
        # nothing, beside a task whose value is not JSON and one whose value is too big
        wf = Workflow.builder("vals").add_job("ret", returning(isolation))
        bad = JobConfig(
            command="Return",
            tasks=(
                TaskConfig(id="set", command="Unstorable"),
                TaskConfig(id="huge", config={"size": MAX_RESULT_BYTES + 1}),
            ),
            max_attempts_per_task=1,
            failure_threshold=1,
            isolation=isolation,
        )
        wf.add_job("bad", bad).add_parent_child_dependency("ret", "bad")
        driver.start(wf.build())
        assert wait_final(driver, "vals") is TaskState.FAILED
        # Then every completed task's value reads back as it was returned
        results = driver.get_job_results("vals", "ret")
        assert set(results) == {"typed", "text", "big", "none"}
        assert results["typed"] == TYPED and results["text"] == "héllo \ud800"
        assert isinstance(results["big"], str) and len(results["big"]) == BIG
        assert results["none"] is None
        assert driver.get_task_result("vals", "ret", "typed") == TYPED
        assert driver.get_task_result("vals", "ret", "big") == results["big"]
        # and the values that cannot be stored failed their attempts, saying why
        tasks = {t.task_id: t for t in driver.get_job_context("vals", "bad").tasks.values()}
        assert tasks["set"].state is P.TASK_ERROR and "result" in tasks["set"].info
        assert "set" in tasks["set"].info  # the type that is not JSON
        assert tasks["huge"].state is P.TASK_ERROR
        assert f"over the {MAX_RESULT_BYTES}-byte limit" in tasks["huge"].info
        assert driver.get_job_results("vals", "bad") == {}
        with pytest.raises(NoResult, match="TASK_ERROR") as raised:
            driver.get_task_result("vals", "bad", "set")
        assert raised.value.state == "TASK_ERROR"
        with pytest.raises(NotFound, match="no task nope"):
            driver.get_task_result("vals", "ret", "nope")
        # and the CLI and the dashboard show them too
        where = ["--zk", cluster.zk_address, "--cluster", cluster.cluster]
        cli = helixpy_cli("job", "results", "vals", "ret", "-o", "json", *where, timeout=60)
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == results
        table = helixpy_cli("job", "results", "vals", "ret", *where, timeout=60)
        assert table.returncode == 0, table.stderr
        assert '"three":3' in table.stdout and "..." in table.stdout  # the big one is cut
        one = helixpy_cli("job", "results", "vals", "ret", "typed", "-o", "json", *where)
        assert json.loads(one.stdout) == TYPED
        missing = helixpy_cli("job", "results", "vals", "bad", "set", *where)
        assert missing.returncode != 0 and "only a COMPLETED task has a result" in missing.stderr
        api = f"{dashboard_url(cluster)}/api/workflows/vals/jobs/ret"
        with urllib.request.urlopen(f"{api}/results", timeout=10) as reply:
            assert json.loads(reply.read())["results"] == results
        with urllib.request.urlopen(f"{api}/tasks/typed/result", timeout=10) as reply:
            assert json.loads(reply.read())["value"] == TYPED
        # When the workflow is deleted, Then its results go with it
        driver.delete("vals")
        wait_gone(cluster, cluster.paths.workflow("vals"))
        with pytest.raises(NotFound):
            driver.get_job_results("vals", "ret")


def test_only_the_completed_attempts_value_exists(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a task whose first two attempts fail, returning values anyway
        job = JobConfig(
            command="Return",
            num_tasks=1,
            command_config={"fail_attempts": [1, 2]},
            max_attempts_per_task=3,
        )
        driver.start(Workflow.builder("retry").add_job("j", job).build())
        # When it completes on its third attempt
        assert wait_final(driver, "retry") is TaskState.COMPLETED
        # Then the value is the third attempt's, and no other attempt left one
        value = driver.get_task_result("retry", "j", 0)
        assert value == {"task": "0", "attempt": 3, "instance": cluster.instances[0]}
        assert result_nodes(cluster, "retry") == ["0@3"]


@pytest.mark.parametrize("size", [0, BIG])
def test_a_value_made_by_a_killed_participant_is_never_seen(zk_address: str, size: int) -> None:
    with LocalCluster(participants=2, zk=zk_address, session_timeout=4.0) as cluster:
        driver = cluster.driver
        zk = connect(cluster.zk_address)
        try:
            # Given a task whose first attempt made its value but has not reported it yet
            cfg: dict[str, object] = {"hold": 120}
            if size:
                cfg["size"] = size
            job = JobConfig(command="Return", num_tasks=1, command_config=cfg)
            driver.start(Workflow.builder("kill").add_job("j", job).build())
            content = cluster.paths.task_content("kill", "j", "0")
            wait_for_data(zk, content, lambda body: body.get("returned") == "1", timeout=60)
            first = driver.get_job_context("kill", "j").tasks[0]
            assert (first.state, first.num_attempts) == (P.RUNNING, 1)
            # When its participant is SIGKILLed between the run and the report
            victim = first.assigned_participant
            assert victim is not None
            cluster.send_signal(victim, signal.SIGKILL)
            # Then the task runs again elsewhere, and the value is the second attempt's
            assert wait_final(driver, "kill", timeout=90) is TaskState.COMPLETED
            task = driver.get_job_context("kill", "j").tasks[0]
            assert task.num_attempts == 2 and task.assigned_participant != victim
            value = driver.get_task_result("kill", "j", 0)
            if size:
                assert isinstance(value, str) and len(value) == size
            else:
                assert value == {"task": "0", "attempt": 2, "instance": task.assigned_participant}
            # and nothing of the killed attempt's value was written
            assert all(name.startswith("0@2") for name in result_nodes(cluster, "kill"))
        finally:
            zk.stop()
            zk.close()


def test_a_frozen_participants_late_value_is_fenced(zk_address: str) -> None:
    with LocalCluster(participants=2, zk=zk_address, session_timeout=4.0) as cluster:
        driver = cluster.driver
        # Given a task whose first attempt holds its value, unreported, for 4 s (the
        # session timeout: it is over by the time its frozen participant wakes)
        job = JobConfig(command="Return", num_tasks=1, command_config={"hold": 4, "size": BIG})
        driver.start(Workflow.builder("zombie").add_job("j", job).build())
        ctx = wait_job(cluster, "zombie", "j", _running, "running")
        frozen = ctx.tasks[0].assigned_participant
        assert frozen is not None
        # When its participant is frozen past its session timeout, and the task completes
        # on the other one
        cluster.send_signal(frozen, signal.SIGSTOP)
        try:
            wait_job(
                cluster,
                "zombie",
                "j",
                lambda c: c.tasks[0].state is P.COMPLETED,
                "completed elsewhere",
                timeout=90,
            )
        finally:
            cluster.send_signal(frozen, signal.SIGCONT)
        # Then when the frozen one wakes and its attempt ends, its value is never published
        log = cluster.log_dir / f"{frozen}.log"
        ended = ("zombie/j/0 attempt 1 ended stale", "zombie/j/0: result not stored")
        wait_for_line(log, ended, timeout=30)
        task = driver.get_job_context("zombie", "j").tasks[0]
        assert task.num_attempts == 2 and task.assigned_participant != frozen
        assert len(driver.get_task_result("zombie", "j", 0)) == BIG
        assert all(name.startswith("0@2") for name in result_nodes(cluster, "zombie"))


def _running(ctx: JobContext) -> bool:
    task = ctx.tasks.get(0)
    return task is not None and task.state is P.RUNNING


def test_results_survive_a_leader_failover(zk_address: str) -> None:
    with LocalCluster(participants=2, controllers=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given a job of 40 tasks returning values, running
        job = JobConfig(command="Return", num_tasks=40, command_config={"hold": 0.2})
        driver.start(Workflow.builder("fo").add_job("j", job).build())
        wait_job(cluster, "fo", "j", lambda c: len(c.tasks) > 0, "started")
        # When the leader is killed mid-run
        cluster.kill_controller()
        # Then the job completes and every task's value is there, from its completed attempt
        assert wait_final(driver, "fo", timeout=120) is TaskState.COMPLETED
        ctx = driver.get_job_context("fo", "j")
        results = driver.get_job_results("fo", "j")
        assert set(results) == {str(p) for p in range(40)}
        for p, t in ctx.tasks.items():
            assert results[str(p)] == {
                "task": str(p),
                "attempt": t.num_attempts,
                "instance": t.assigned_participant,
            }


def test_a_report_whose_result_writes_fail_recovers_and_lands(zk_address: str) -> None:
    # Given a registered participant's reporter and result publisher on a real ZooKeeper
    paths = Paths("recover")
    zk = connect(zk_address)
    try:
        incarnation = register(zk, paths, "p0", OpenAclProvider(), ("t",), 4)
        fence, alive = incarnation_fence(paths, "p0", incarnation)
        writer = FencedWriter(zk, fence.path, incarnation, also=(alive,))
        reporter = StateReporter(zk, paths.state("p0", incarnation), writer)
        reporter.start()
        publisher = ResultPublisher(paths)
        zk.ensure_path(paths.job_config("w", "j"))
        # and result directories another participant created meanwhile
        zk.ensure_path(paths.task_result_shard("w", "j", "a"))
        # When a report carries a head that takes them to be missing, and one whose head
        # landed already (the first try of a write whose answer was lost)
        first = publisher.publish(zk, writer, ("w", "j", "a", 1), b'"A"', sole=True)
        reporter.report("w/j/0", {"a": 1, "s": "COMPLETED", "st": 0.0}, first)
        assert reporter.flush(10.0)
        again = publisher.publish(zk, writer, ("w", "j", "a", 1), b'"A"', sole=True)
        reporter.report("w/j/0", {"a": 1, "s": "COMPLETED", "st": 0.0, "i": "x"}, again)
        assert reporter.flush(10.0)
        # Then both reports landed, and the head holds the value once
        state = decode(zk.get(paths.state("p0", incarnation))[0])
        assert state == {"w/j/0": {"a": 1, "s": "COMPLETED", "st": 0.0, "i": "x"}}
        assert read_results(zk, paths, "w", "j", {"a": 1}) == {"a": "A"}
        # and a value too big for one node is chunked, and read back whole
        big = json.dumps("y" * (3 * INLINE_BYTES)).encode()
        chunked = publisher.publish(zk, writer, ("w", "j", "b", 2), big)
        assert zk.exists(paths.task_result("w", "j", "b", 2) + "+0") is not None
        assert zk.exists(paths.task_result("w", "j", "b", 2)) is None  # not before its report
        reporter.report("w/j/1", {"a": 2, "s": "COMPLETED", "st": 0.0}, chunked)
        assert reporter.flush(10.0)
        assert read_results(zk, paths, "w", "j", {"b": 2}) == {"b": "y" * (3 * INLINE_BYTES)}
        reporter.close()
    finally:
        zk.stop()
        zk.close()
