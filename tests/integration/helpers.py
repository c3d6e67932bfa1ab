"""Small shared helpers for cluster tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy import JobConfig, TaskPartitionState, TaskState
from helixpy.driver import TaskDriver
from helixpy.model import JobContext
from helixpy.store.client import connect
from helixpy.store.codec import decode
from helixpy.testing import LocalCluster

FINAL = (TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED)


def record_job(n: int, seconds: float = 0.05, **kw: object) -> JobConfig:
    """A job of ``n`` Record tasks (they write instance, attempt, times to task content)."""
    return JobConfig(command="Record", num_tasks=n, command_config={"seconds": str(seconds)}, **kw)  # type: ignore[arg-type]


def wait_final(driver: TaskDriver, name: str, timeout: float = 120.0) -> TaskState:
    return driver.poll_for_workflow_state(name, *FINAL, timeout=timeout)


def task_records(driver: TaskDriver, wf: str, job: str) -> list[dict[str, str]]:
    """The Record tasks' task-scope content, in partition order."""
    ctx = driver.get_job_context(wf, job)
    return [
        driver.get_task_user_content_map(wf, job, t.task_id) for _, t in sorted(ctx.tasks.items())
    ]


def wait_job(
    cluster: LocalCluster,
    wf: str,
    job: str,
    ok: Callable[[JobContext], bool],
    what: str,
    timeout: float = 60.0,
) -> JobContext:
    """Block until ``ok(job context)``, woken by watches on the context's znodes."""
    zk = connect(cluster.zk_address)
    event = threading.Event()

    def wake(_event: object) -> None:
        event.set()

    path = cluster.paths.job_context(wf, job)
    deadline = time.monotonic() + timeout
    try:
        while True:
            event.clear()
            if zk.exists(path, watch=wake) is not None:
                for chunk in zk.get_children(path):
                    zk.exists(f"{path}/{chunk}", watch=wake)
                ctx = cluster.driver.get_job_context(wf, job)
                if ok(ctx):
                    return ctx
            left = deadline - time.monotonic()
            assert left > 0, f"timed out waiting for {what} in {wf}/{job}"
            event.wait(min(left, 1.0))  # the bound only guards against a lost watch
    finally:
        zk.stop()
        zk.close()


def count(ctx: JobContext, state: TaskPartitionState) -> int:
    return sum(1 for t in ctx.tasks.values() if t.state is state)


def leader_endpoint(cluster: LocalCluster) -> str:
    """The gRPC endpoint the current leader published in LEADER."""
    zk = connect(cluster.zk_address)
    try:
        return str(decode(zk.get(cluster.paths.leader)[0])["endpoint"])
    finally:
        zk.stop()
        zk.close()


def wait_for_line(path: Path, text: str | tuple[str, ...], timeout: float) -> None:
    """Block until ``text`` (or any of several) appears in the log at ``path`` (bounded)."""
    wanted = (text,) if isinstance(text, str) else text
    deadline = time.monotonic() + timeout
    while not any(w in path.read_text(errors="replace") for w in wanted):
        assert time.monotonic() < deadline, f"{text!r} never appeared in {path.name}"
        time.sleep(0.05)  # polling a file: there is no event to wait on


def helixpy_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``helixpy ARGS...`` in a fresh interpreter (bounded), capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "helixpy.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def dashboard_url(cluster: LocalCluster, controller: str = "controller-0") -> str:
    """The dashboard's base URL, from the line its controller logs once it serves (bounded)."""
    log = cluster.log_dir / f"{controller}.log"
    wait_for_line(log, "dashboard on http", timeout=30)  # http:// or, with TLS, https://
    found = re.search(r"dashboard on (https?://[\d.]+:\d+)", log.read_text())
    assert found is not None
    return found.group(1)


def wait_for_data(
    zk: KazooClient, path: str, ok: Callable[[dict[str, Any]], bool], timeout: float
) -> None:
    """Block until the JSON mapping at ``path`` satisfies ``ok``, woken by a data watch."""
    event = threading.Event()
    deadline = time.monotonic() + timeout
    while True:
        event.clear()
        try:
            body = decode(zk.get(path, watch=lambda _e: event.set())[0])
        except NoNodeError:
            body = None
        if isinstance(body, dict) and ok(body):
            return
        left = deadline - time.monotonic()
        assert left > 0, f"{path} never held what was expected (last: {body!r})"
        event.wait(min(left, 1.0))  # the bound only guards against a lost watch


def wait_gone(cluster: LocalCluster, path: str, timeout: float = 60.0) -> None:
    """Block until ``path`` does not exist, woken by an exists-watch."""
    zk = connect(cluster.zk_address)
    event = threading.Event()
    deadline = time.monotonic() + timeout
    try:
        while zk.exists(path, watch=lambda _e: event.set()) is not None:
            left = deadline - time.monotonic()
            assert left > 0, f"{path} still exists"
            event.wait(min(left, 1.0))
            event.clear()
    finally:
        zk.stop()
        zk.close()


_TELEMETRY = re.compile(r"metrics and health on http://([\d.]+):(\d+)")


def telemetry_address(log: Path) -> tuple[str, int]:
    """Where a daemon started with ``--metrics-port 0`` serves, from its log."""
    wait_for_line(log, "metrics and health on http://", timeout=30)
    found = _TELEMETRY.search(log.read_text())
    assert found is not None
    return found.group(1), int(found.group(2))


def scrape(host: str, port: int) -> str:
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def wait_for_metric(address: tuple[str, int], pattern: str, timeout: float = 30) -> str:
    """Scrape until ``pattern`` matches (bounded): an HTTP endpoint has no event to wait on."""
    deadline = time.monotonic() + timeout
    while True:
        body = scrape(*address)
        if re.search(pattern, body):
            return body
        assert time.monotonic() < deadline, f"{pattern!r} never appeared in /metrics"
        threading.Event().wait(0.1)
