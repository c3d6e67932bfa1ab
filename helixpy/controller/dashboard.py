"""The controller's read-only web dashboard (``--http-port``).

Every controller serves it, standbys included: it reads ZooKeeper (the store's read
functions on the controller's session), never the leader's memory, so what it shows is
what any client would read. The page (``dashboard.html``, one static file) polls the JSON
API below once a second and redraws what changed, so states update without a reload.

``GET /``                    the page
``GET /api/overview``        cluster, leader, workflows with states and task counts,
                             instances, locks
``GET /api/workflows/NAME``  one workflow: its DAG (jobs and parents) and per-task states,
                             attempts, instances and info (the first ``TASK_ROWS`` tasks of
                             each job; counts cover all)
``GET /api/workflows/NAME/jobs/JOB/tasks/TASK/error``
                             a task's full error texts (traceback included) by attempt,
                             the last three failed attempts
``GET /api/workflows/NAME/jobs/JOB/results``
                             the values of the job's COMPLETED tasks, by task id
``GET /api/workflows/NAME/jobs/JOB/tasks/TASK/result``
                             one task's value (404 until it COMPLETED)
"""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from importlib import resources
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError

from helixpy.errors import HelixpyError, InvalidConfig, NotFound
from helixpy.model.names import check_name
from helixpy.store import records
from helixpy.store.locks import read_locks
from helixpy.store.paths import Paths
from helixpy.store.results import read_job_results, read_task_result
from helixpy.store.task_errors import read_task_errors
from helixpy.store.views import read_instances
from helixpy.telemetry import HttpServer, Reply

#: tasks listed per job on a workflow page (a 100,000-task job is summarised by counts)
TASK_ROWS = 500


class Dashboard(HttpServer):
    """Serve the dashboard for the cluster at ``paths`` through ``zk``."""

    def __init__(self, zk: KazooClient, paths: Paths, host: str = "127.0.0.1", port: int = 0):
        self._zk = zk
        self._paths = paths
        self._page = resources.files("helixpy.controller").joinpath("dashboard.html").read_bytes()
        super().__init__(self._answer, host, port, name="dashboard")

    def _answer(self, raw_path: str) -> Reply:
        path = urllib.parse.unquote(raw_path.split("?", 1)[0])
        if path in ("/", "/index.html"):
            return 200, "text/html; charset=utf-8", self._page
        if not path.startswith("/api/"):
            return 404, "text/plain", b"not found\n"
        if self._zk.state != KazooState.CONNECTED:
            # Reads would queue until the session is back: answer now, the page retries.
            body = json.dumps({"error": f"ZooKeeper session is {self._zk.state}"}).encode()
            return 503, "application/json", body
        try:
            if path == "/api/overview":
                return _json(overview(self._zk, self._paths))
            if path.startswith("/api/workflows/"):
                parts = path[len("/api/workflows/") :].split("/")
                name = check_name("workflow", parts[0])
                if len(parts) == 1:
                    return _json(workflow_view(self._zk, self._paths, name))
                if len(parts) == 6 and parts[1::2] == ["jobs", "tasks", "error"]:
                    job = check_name("job", parts[2])
                    task = check_name("task.id", parts[4])
                    errors = read_task_errors(self._zk, self._paths, name, job, task)
                    return _json({"workflow": name, "job": job, "task": task, "errors": errors})
                if len(parts) == 4 and parts[1::2] == ["jobs", "results"]:
                    job = check_name("job", parts[2])
                    results = read_job_results(self._zk, self._paths, name, job)
                    return _json({"workflow": name, "job": job, "results": results})
                if len(parts) == 6 and parts[1::2] == ["jobs", "tasks", "result"]:
                    job = check_name("job", parts[2])
                    task = check_name("task.id", parts[4])
                    value = read_task_result(self._zk, self._paths, name, job, task)
                    return _json({"workflow": name, "job": job, "task": task, "value": value})
        except InvalidConfig as exc:
            return 404, "application/json", json.dumps({"error": str(exc)}).encode()
        except NotFound as exc:
            return 404, "application/json", json.dumps({"error": str(exc)}).encode()
        except HelixpyError as exc:
            return 500, "application/json", json.dumps({"error": str(exc)}).encode()
        return 404, "text/plain", b"not found\n"


def _json(body: Any) -> Reply:
    return 200, "application/json", json.dumps(body, default=str).encode()


def overview(zk: KazooClient, paths: Paths) -> dict[str, Any]:
    """Everything the front page shows, as plain data."""
    try:
        leader = records.get_json(zk, paths.leader) or {}
    except (NoNodeError, NotFound):
        leader = {}
    workflows = []
    try:
        names = sorted(zk.get_children(paths.workflows))
    except NoNodeError:
        names = []
    for name in names:
        try:
            stored = records.read_stored_workflow(zk, paths, name)
            ctx = records.read_workflow_context(zk, paths, name)
        except NotFound:
            continue  # being started or deleted
        except (HelixpyError, KeyError, TypeError, ValueError) as exc:
            # One unreadable workflow (the leader marks it FAILED) must not hide the others.
            workflows.append(
                {
                    "name": name,
                    "queue": False,
                    "type": "",
                    "state": "?",
                    "jobs": {},
                    "start": None,
                    "finish": None,
                    "error": f"unreadable: {exc}",
                }
            )
            continue
        workflows.append(
            {
                "name": name,
                "queue": stored.queue is not None,
                "type": stored.config.workflow_type or "",
                "state": ctx.state.value,
                "jobs": {job: state.value for job, state in ctx.job_states.items()},
                "start": ctx.start_time,
                "finish": ctx.finish_time,
            }
        )
    return {
        "cluster": paths.cluster,
        "leader": {k: leader.get(k) for k in ("id", "epoch", "endpoint")},
        "workflows": workflows,
        "instances": read_instances(zk, paths),
        "running": _running_by_instance(zk, paths),
        "locks": read_locks(zk, paths),
    }


def _running_by_instance(zk: KazooClient, paths: Paths) -> dict[str, int]:
    """Entries of each instance's ASSIGNMENT node (``{"inc": ..., "tasks": {...}}``): what
    it was told to run or stop."""
    out: dict[str, int] = {}
    try:
        names = zk.get_children(paths.instances)
    except NoNodeError:
        return out
    for name in names:
        try:
            body = records.get_json(zk, paths.assignment(name)) or {}
        except (NoNodeError, NotFound):
            continue
        tasks = body.get("tasks") if isinstance(body, dict) else None
        out[name] = len(tasks) if isinstance(tasks, dict) else 0
    return out


def workflow_view(zk: KazooClient, paths: Paths, name: str) -> dict[str, Any]:
    """One workflow's page: the DAG and each job's tasks."""
    stored = records.read_stored_workflow(zk, paths, name)
    ctx = records.read_workflow_context(zk, paths, name)
    if stored.queue is not None:
        order = list(stored.queue)
    else:
        try:
            order = sorted(zk.get_children(paths.jobs(name)))
        except NoNodeError:
            order = sorted(ctx.job_states)
    jobs: list[dict[str, Any]] = []
    for job in order:
        state = ctx.job_states.get(job)
        try:
            jctx = records.read_job_context(zk, paths, name, job)
        except NotFound:
            jobs.append(
                {
                    "name": job,
                    "state": state.value if state else "NOT_STARTED",
                    "counts": {},
                    "tasks": [],
                    "total": 0,
                }
            )
            continue
        tasks = sorted(jctx.tasks.items())
        counts = Counter(t.state.value if t.state else "PENDING" for _, t in tasks)
        jobs.append(
            {
                "name": job,
                "state": (state or jctx.state).value,
                "counts": dict(counts),
                "total": len(tasks),
                "tasks": [
                    {
                        "partition": p,
                        "id": t.task_id,
                        "state": t.state.value if t.state else "PENDING",
                        "attempts": t.num_attempts,
                        "instance": t.assigned_participant,
                        "info": t.info,
                    }
                    for p, t in tasks[:TASK_ROWS]
                ],
            }
        )
    parents = {job: sorted(stored.parents.get(job, ())) for job in order}
    return {
        "name": name,
        "state": ctx.state.value,
        "info": ctx.info,
        "queue": stored.queue is not None,
        "parents": parents,
        "jobs": jobs,
    }
