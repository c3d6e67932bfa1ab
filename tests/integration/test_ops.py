"""What an operator sees: Prometheus metrics, health probes, JSON logs, CLI output."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from helixpy import JobConfig, TaskState, Workflow, WorkflowConfig
from helixpy.store.client import connect
from helixpy.testing import LocalCluster
from tests.integration.helpers import (
    dashboard_url,
    record_job,
    scrape,
    telemetry_address,
    wait_final,
    wait_for_line,
    wait_for_metric,
)

pytestmark = pytest.mark.cluster


def probe(what: str, port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "helixpy.cli",
            what,
            "health",
            "--port",
            str(port),
            "--timeout",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_daemons_serve_metrics_and_the_health_probe_follows_the_participant(
    zk_address: str,
) -> None:
    # Given a controller and a participant serving /metrics and /healthz on free ports
    with LocalCluster(
        participants=0, zk=zk_address, controller_args=["--metrics-port", "0"]
    ) as cluster:
        inst = cluster.add_participant(args=["--metrics-port", "0"])
        ctl = telemetry_address(cluster.log_dir / "controller-0.log")
        part = telemetry_address(cluster.log_dir / f"{inst}.log")
        # When a workflow of 5 tasks completes
        cluster.driver.start(Workflow.builder("m").add_job("j", record_job(5)).build())
        assert wait_final(cluster.driver, "m") is TaskState.COMPLETED
        # Then both count it, and the controller says it leads
        ours = scrape(*ctl)
        assert 'helixpy_task_attempts_finished_total{state="COMPLETED"} 5.0' in ours
        assert 'helixpy_workflows_finished_total{state="COMPLETED",type="none"} 1.0' in ours
        assert 'helixpy_job_duration_seconds_count{type="none"} 1.0' in ours
        assert "helixpy_controller_leader 1.0" in ours
        assert "helixpy_task_schedule_delay_seconds_count 5.0" in ours
        theirs = scrape(*part)
        assert 'helixpy_participant_attempts_finished_total{state="COMPLETED"} 5.0' in theirs
        assert f'helixpy_participant_capacity{{instance="{inst}"}}' in theirs
        assert "helixpy_executor_processed_total" in theirs
        assert re.search(r"helixpy_zookeeper_multis_total [1-9]", ours)
        assert re.search(r'helixpy_zookeeper_requests_total\{op="Transaction"\} [1-9]', ours)
        assert re.search(r'helixpy_zookeeper_requests_total\{op="GetData"\} [1-9]', ours)
        assert re.search(
            r'helixpy_zookeeper_requests_total\{instance="[^"]+",op="Transaction"\} [1-9]', theirs
        )
        assert re.search(r'helixpy_zookeeper_multis_total\{instance="[^"]+"\} [1-9]', theirs)
        # and both probes pass, saying why
        for what, (_, port) in (("controller", ctl), ("participant", part)):
            ok = probe(what, port)
            assert ok.returncode == 0, ok.stdout + ok.stderr
            assert json.loads(ok.stdout)["ok"] is True
        # When the participant is killed, its probe fails (nothing answers)
        cluster.kill_participant(inst)
        dead = probe("participant", part[1])
        assert dead.returncode == 1 and "healthz" in dead.stdout


def test_the_leader_counts_task_locks_by_type(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--metrics-port", "0"]
    ) as cluster:
        ctl = telemetry_address(cluster.log_dir / "controller-0.log")
        # Given no locks, the gauge says none
        assert "helixpy_locks{" not in scrape(*ctl)
        # When a task holds an exclusive lock
        cluster.driver.start(
            Workflow.builder("lk")
            .add_job(
                "a",
                JobConfig(
                    command="Locker",
                    num_tasks=1,
                    lock_timeout=60,
                    command_config={"resource": "tbl", "hold": "60"},
                ),
            )
            .build()
        )
        # Then the leader's metrics count it, and nothing revoked
        body = wait_for_metric(ctl, r'helixpy_locks\{type="EXCLUSIVE"\} 1\.0')
        assert 'helixpy_locks_revoked{type="EXCLUSIVE"}' not in body
        cluster.driver.stop("lk")


def test_json_logs_name_the_task_of_every_task_line(zk_address: str) -> None:
    # Given a cluster logging JSON
    with LocalCluster(
        participants=1, zk=zk_address, extra_args=["--log-format", "json"]
    ) as cluster:
        inst = cluster.instances[0]
        # When a task raises
        cluster.driver.start(
            Workflow.builder("j")
            .add_job("boom", JobConfig(command="Raise", num_tasks=1, max_attempts_per_task=1))
            .build()
        )
        assert wait_final(cluster.driver, "j") is TaskState.FAILED
        wait_for_line(cluster.log_dir / f"{inst}.log", "raised", timeout=30)
        # Then every line is a JSON object, and the one about the task names it
        lines = [
            json.loads(line)
            for line in (cluster.log_dir / f"{inst}.log").read_text().splitlines()
            if line.strip()
        ]
        assert all({"ts", "level", "process", "logger", "message"} <= set(x) for x in lines)
        raised = [x for x in lines if "raised" in x["message"]]
        assert raised and raised[0]["workflow"] == "j" and raised[0]["job"] == "boom"
        assert raised[0]["attempt"] == 1 and raised[0]["task"]


def test_cli_errors_are_one_line_unless_debug_and_reads_speak_json(zk_address: str) -> None:
    env = {**os.environ, "HELIXPY_ZK": zk_address}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "helixpy.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )

    with LocalCluster(participants=1, zk=zk_address) as cluster:
        env["HELIXPY_CLUSTER"] = cluster.cluster
        cluster.driver.start(Workflow.builder("o").add_job("j", record_job(2)).build())
        assert wait_final(cluster.driver, "o") is TaskState.COMPLETED
        # A read command answers JSON for scripts
        status = json.loads(cli("workflow", "status", "o", "--output", "json").stdout)
        assert status == {
            "workflow": "o",
            "state": "COMPLETED",
            "jobs": [{"job": "j", "state": "COMPLETED", "completed": 2, "tasks": 2}],
        }
        listed = json.loads(cli("workflow", "list", "-o", "json").stdout)
        assert {"workflow": "o", "state": "COMPLETED"} in listed
        assert cluster.instances[0] in json.loads(cli("instance", "list", "-o", "json").stdout)
        # An error is one line, exit 1, no traceback
        missing = cli("workflow", "status", "nope")
        assert missing.returncode == 1 and "Traceback" not in missing.stderr
        assert missing.stderr.strip().startswith("Error:") and "nope" in missing.stderr
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.startswith("helixpy, version")


def test_shell_completion_names_commands() -> None:
    # Given bash asking click's completion for "helixpy workflow st"
    env = {
        **os.environ,
        "_HELIXPY_COMPLETE": "bash_complete",
        "COMP_WORDS": "helixpy workflow st",
        "COMP_CWORD": "2",
    }
    out = subprocess.run(
        [sys.executable, "-m", "helixpy.cli"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    # Then it offers the matching subcommands
    assert out.stdout.split() == ["plain,start", "plain,status", "plain,stop"]


def test_watch_draws_progress_bars_on_a_terminal(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        cluster.driver.start(Workflow.builder("bars").add_job("j", record_job(4, 0.2)).build())
        # When `workflow watch` runs on a terminal (a pseudo-terminal here)
        main_fd, child_fd = pty.openpty()
        env = {
            **os.environ,
            "HELIXPY_ZK": zk_address,
            "HELIXPY_CLUSTER": cluster.cluster,
            "COLUMNS": "100",
            "TERM": "xterm",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "helixpy.cli", "workflow", "watch", "bars"],
            stdin=child_fd,
            stdout=child_fd,
            stderr=child_fd,
            env=env,
        )
        os.close(child_fd)
        screen = b""
        try:
            while True:
                try:
                    chunk = os.read(main_fd, 65536)
                except OSError:  # the terminal closed: the command exited
                    break
                if not chunk:
                    break
                screen += chunk
        finally:
            os.close(main_fd)
            rc = proc.wait(60)
        text = screen.decode(errors="replace")
        # Then it drew a bar for the job and ended with the workflow and job completed
        assert rc == 0, text
        assert "━" in text and "4/4" in text and "COMPLETED" in text


def test_work_that_expires_at_once_is_still_counted(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--metrics-port", "0"]
    ) as cluster:
        ctl = telemetry_address(cluster.log_dir / "controller-0.log")
        # Given a workflow purged in the pass it finishes (expiry 0)
        wf = (
            Workflow.builder("gone")
            .set_config(WorkflowConfig(expiry=0))
            .add_job("j", record_job(1))
            .build()
        )
        cluster.driver.start(wf)
        # Then it is counted anyway
        wait_for_metric(ctl, r'helixpy_workflows_finished_total\{state="COMPLETED",type="none"\} 1')


def test_the_dashboard_api_survives_an_unreadable_workflow_and_odd_names(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        url = dashboard_url(cluster)
        # Given a good workflow and one whose CONFIG is not a mapping
        cluster.driver.start(Workflow.builder("good").add_job("j", record_job(1)).build())
        assert wait_final(cluster.driver, "good") is TaskState.COMPLETED
        zk = connect(zk_address)
        try:
            zk.create(cluster.paths.workflow_config("bad"), b"[1, 2]", makepath=True)
        finally:
            zk.stop()
            zk.close()
        # Then the overview still answers, listing both, the bad one with why
        with urllib.request.urlopen(f"{url}/api/overview", timeout=10) as reply:
            listed = {w["name"]: w for w in json.loads(reply.read())["workflows"]}
        assert listed["good"]["state"] == "COMPLETED"
        assert listed["bad"]["state"] == "?" and "unreadable" in listed["bad"]["error"]
        # and a name that cannot be a workflow is a 404, not a server error
        for odd in ("..", "a%2Fb", "%20"):
            try:
                urllib.request.urlopen(f"{url}/api/workflows/{odd}", timeout=10)
            except urllib.error.HTTPError as exc:
                assert exc.code == 404, odd
            else:
                raise AssertionError(f"{odd} answered 200")
