"""The controller's web dashboard: its page and the views it draws.

The page (``dashboard.html``, one static file, no build step) polls the HTTP API
(``helixpy.controller.api``) once a second and redraws what changed, so states update
without a reload; with a token configured it asks for it once (kept in the tab's
``sessionStorage``) and sends it as the bearer header. This module holds the two views
the API serves for it (``GET /api/v1/overview`` and ``GET /api/v1/workflows/NAME/view``)
and the dashboard's first JSON routes, kept answering as they did
(:func:`legacy_answer`):

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

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.errors import HelixpyError, InvalidConfig, NotFound
from helixpy.model.names import check_name
from helixpy.store import records
from helixpy.store.locks import read_locks
from helixpy.store.paths import Paths
from helixpy.store.results import read_job_results, read_task_result
from helixpy.store.task_errors import read_task_errors
from helixpy.store.views import read_instances
from helixpy.telemetry import Reply

#: tasks listed per job on a workflow page (a 100,000-task job is summarised by counts)
TASK_ROWS = 500


def page() -> bytes:
    """The dashboard's HTML page."""
    return resources.files("helixpy.controller").joinpath("dashboard.html").read_bytes()


def legacy_answer(zk: KazooClient, paths: Paths, raw_path: str) -> Reply | None:
    """The answer of one of the dashboard's first routes (module docstring), None when
    ``raw_path`` is none of them."""
    path = urllib.parse.unquote(raw_path.split("?", 1)[0])
    try:
        if path == "/api/overview":
            return _json(overview(zk, paths))
        if path.startswith("/api/workflows/"):
            parts = path[len("/api/workflows/") :].split("/")
            name = check_name("workflow", parts[0])
            if len(parts) == 1:
                return _json(workflow_view(zk, paths, name))
            if len(parts) == 6 and parts[1::2] == ["jobs", "tasks", "error"]:
                job = check_name("job", parts[2])
                task = check_name("task.id", parts[4])
                errors = read_task_errors(zk, paths, name, job, task)
                return _json({"workflow": name, "job": job, "task": task, "errors": errors})
            if len(parts) == 4 and parts[1::2] == ["jobs", "results"]:
                job = check_name("job", parts[2])
                results = read_job_results(zk, paths, name, job)
                return _json({"workflow": name, "job": job, "results": results})
            if len(parts) == 6 and parts[1::2] == ["jobs", "tasks", "result"]:
                job = check_name("job", parts[2])
                task = check_name("task.id", parts[4])
                value = read_task_result(zk, paths, name, job, task)
                return _json({"workflow": name, "job": job, "task": task, "value": value})
    except InvalidConfig as exc:
        return 404, "application/json", json.dumps({"error": str(exc)}).encode()
    except NotFound as exc:
        return 404, "application/json", json.dumps({"error": str(exc)}).encode()
    except HelixpyError as exc:
        return 500, "application/json", json.dumps({"error": str(exc)}).encode()
    return None


def _json(body: Any) -> Reply:
    return 200, "application/json", json.dumps(body, default=str).encode()


def overview(zk: KazooClient, paths: Paths) -> dict[str, Any]:
    """Everything the front page shows, as plain data."""
    try:
        leader = records.get_json(zk, paths.leader) or {}
    except (NoNodeError, NotFound):
        leader = {}
    return {
        "cluster": paths.cluster,
        "leader": {k: leader.get(k) for k in ("id", "epoch", "endpoint")},
        "workflows": workflow_rows(zk, paths),
        "instances": read_instances(zk, paths),
        "running": _running_by_instance(zk, paths),
        "locks": read_locks(zk, paths),
    }


def workflow_rows(zk: KazooClient, paths: Paths) -> list[dict[str, Any]]:
    """Every workflow and queue: name, queue (bool), type, state, job states, start and
    finish (one unreadable workflow is listed with its ``error``, not left out)."""
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
    return workflows


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
