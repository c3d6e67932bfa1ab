"""The HTTP API's reads: plain data from ZooKeeper through the store's readers.

Every controller serves them, standbys included, from its own session, never from the
leader's memory: what they answer is what any client would read. Each handler takes the
matched :class:`~helixpy.controller.api.routing.Call` and returns (status, JSON body).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.controller.api.routing import ApiError, Call
from helixpy.controller.dashboard import overview, workflow_rows, workflow_view
from helixpy.controller.election import read_leader
from helixpy.errors import NoResult, NotFound
from helixpy.model import JobContext, Scope
from helixpy.model.names import check_name
from helixpy.store import records
from helixpy.store.content import get_content_map
from helixpy.store.locks import read_audit, read_locks
from helixpy.store.partitions import read_partitions
from helixpy.store.paths import Paths
from helixpy.store.results import read_job_results, read_task_result
from helixpy.store.task_errors import read_task_errors
from helixpy.store.views import (
    read_current_pool_size,
    read_instances,
    read_last_scheduled_task,
    read_target_pool_size,
)

Answer = tuple[int, Any]


def _wf(call: Call, key: str = "name") -> str:
    return check_name("workflow.name", call.params[key])


def _job(call: Call) -> str:
    return check_name("job.name", call.params["job"])


def _task(call: Call) -> str:
    return check_name("task.id", call.params["task"])


def content_scope(call: Call) -> tuple[Scope, str, str | None, str | None]:
    """(scope, workflow, job, task) of a content route: its path says how deep."""
    name = _wf(call)
    job = _job(call) if "job" in call.params else None
    task = _task(call) if "task" in call.params else None
    scope = Scope.TASK if task else Scope.JOB if job else Scope.WORKFLOW
    return scope, name, job, task


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def job_context_view(ctx: JobContext) -> dict[str, Any]:
    """A job context as JSON: its state and every task's record, by partition order."""
    return {
        "state": ctx.state.value,
        "start": _epoch(ctx.start_time),
        "finish": _epoch(ctx.finish_time),
        "info": ctx.info,
        "tasks": [
            {
                "partition": p,
                "id": t.task_id,
                "state": t.state.value if t.state else None,
                "attempts": t.num_attempts,
                "instance": t.assigned_participant,
                "info": t.info,
                "start": _epoch(t.start_time),
                "finish": _epoch(t.finish_time),
                "next_retry": _epoch(t.next_retry_time),
            }
            for p, t in sorted(ctx.tasks.items())
        ],
    }


class Reads:
    """The read routes' handlers, on one session and cluster."""

    def __init__(self, zk: KazooClient, paths: Paths) -> None:
        self._zk = zk
        self._paths = paths

    # --- cluster ------------------------------------------------------------------------

    def cluster(self, call: Call) -> Answer:
        leader = read_leader(self._zk, self._paths) or {}
        return 200, {
            "cluster": self._paths.cluster,
            "leader": {k: leader.get(k) for k in ("id", "endpoint", "epoch")},
            "config": records.read_cluster_config(self._zk, self._paths),
        }

    def overview(self, call: Call) -> Answer:
        return 200, overview(self._zk, self._paths)

    # --- workflows ----------------------------------------------------------------------

    def workflows(self, call: Call) -> Answer:
        rows = workflow_rows(self._zk, self._paths)
        return 200, {"workflows": [r for r in rows if not r["queue"]]}

    def workflow(self, call: Call) -> Answer:
        name = _wf(call)
        stored = records.read_stored_workflow(self._zk, self._paths, name)
        ctx = records.read_workflow_context(self._zk, self._paths, name)
        return 200, {
            "name": name,
            "kind": "queue" if stored.queue is not None else "workflow",
            "state": ctx.state.value,
            "config": stored.config.to_dict(),
            "jobs": {job: s.value for job, s in ctx.job_states.items()},
            "parents": {k: sorted(v) for k, v in stored.parents.items()},
            "queue": list(stored.queue) if stored.queue is not None else None,
            "start": _epoch(ctx.start_time),
            "finish": _epoch(ctx.finish_time),
            "info": ctx.info,
        }

    def workflow_config(self, call: Call) -> Answer:
        name = _wf(call)
        stored = records.read_stored_workflow(self._zk, self._paths, name)
        return 200, {
            "name": name,
            "uid": stored.uid,
            "config": stored.config.to_dict(),
            "parents": {k: sorted(v) for k, v in stored.parents.items()},
            "queue": list(stored.queue) if stored.queue is not None else None,
        }

    def workflow_context(self, call: Call) -> Answer:
        name = _wf(call)
        ctx = records.read_workflow_context(self._zk, self._paths, name)
        return 200, {"name": name, **ctx.to_dict()}

    def workflow_view(self, call: Call) -> Answer:
        return 200, workflow_view(self._zk, self._paths, _wf(call))

    def jobs(self, call: Call) -> Answer:
        name = _wf(call)
        stored = records.read_stored_workflow(self._zk, self._paths, name)
        ctx = records.read_workflow_context(self._zk, self._paths, name)
        names = stored.job_names or sorted(ctx.job_states)
        states = {job: ctx.job_states.get(job) for job in names}
        return 200, {
            "workflow": name,
            "jobs": [
                {"name": job, "state": s.value if s else "NOT_STARTED"} for job, s in states.items()
            ],
        }

    def job_config(self, call: Call) -> Answer:
        name, job = _wf(call), _job(call)
        cfg = records.read_job_config(self._zk, self._paths, name, job, hide_deleted=True)
        return 200, {"workflow": name, "job": job, "config": cfg.to_dict()}

    def job_context(self, call: Call) -> Answer:
        name, job = _wf(call), _job(call)
        try:
            ctx = records.read_job_context(self._zk, self._paths, name, job)
        except NoNodeError:
            raise NotFound(f"job {name}/{job} does not exist") from None
        return 200, {"workflow": name, "job": job, **job_context_view(ctx)}

    def job_results(self, call: Call) -> Answer:
        name, job = _wf(call), _job(call)
        results = read_job_results(self._zk, self._paths, name, job)
        return 200, {"workflow": name, "job": job, "results": results}

    def task_result(self, call: Call) -> Answer:
        name, job, task = _wf(call), _job(call), _task(call)
        try:
            value = read_task_result(self._zk, self._paths, name, job, task)
        except NoResult as exc:
            raise ApiError("NOT_FOUND", str(exc), extra={"state": exc.state}) from None
        return 200, {"workflow": name, "job": job, "task": task, "value": value}

    def task_errors(self, call: Call) -> Answer:
        name, job, task = _wf(call), _job(call), _task(call)
        errors = read_task_errors(self._zk, self._paths, name, job, task)
        return 200, {"workflow": name, "job": job, "task": task, "errors": errors}

    def content(self, call: Call) -> Answer:
        """User content at the scope the path names: workflow, job or task."""
        scope, name, job, task = content_scope(call)
        found = get_content_map(self._zk, self._paths, scope, name, job, task)
        return 200, {"workflow": name, "job": job, "task": task, "content": found}

    def last_scheduled_task(self, call: Call) -> Answer:
        name = _wf(call)
        info = read_last_scheduled_task(self._zk, self._paths, name)
        if info is None:
            return 200, {"workflow": name, "task": None}
        return 200, {
            "workflow": name,
            "task": {
                "job": info.job,
                "partition": info.partition,
                "id": info.task_id,
                "state": info.state.value if info.state is not None else None,
                "start": _epoch(info.start_time),
            },
        }

    # --- queues -------------------------------------------------------------------------

    def queues(self, call: Call) -> Answer:
        rows = workflow_rows(self._zk, self._paths)
        return 200, {"queues": [r for r in rows if r["queue"]]}

    def queue(self, call: Call) -> Answer:
        status, body = self.workflow(call)
        if body["kind"] != "queue":
            raise NotFound(f"{body['name']} is a workflow, not a queue")
        return status, body

    # --- instances and locks ------------------------------------------------------------

    def instances(self, call: Call) -> Answer:
        return 200, {"instances": read_instances(self._zk, self._paths)}

    def instance(self, call: Call) -> Answer:
        name = check_name("instance", call.params["instance"])
        found = read_instances(self._zk, self._paths).get(name)
        if found is None:
            raise NotFound(f"instance {name} does not exist in cluster {self._paths.cluster}")
        return 200, {"instance": name, **found}

    def partitions(self, call: Call) -> Answer:
        """The partition records of one instance (targeted jobs place by them)."""
        name = check_name("instance", call.params["instance"])
        found = read_partitions(self._zk, self._paths, name).get(name, {})
        return 200, {"instance": name, "partitions": found}

    def thread_pool(self, call: Call) -> Answer:
        name = check_name("instance", call.params["instance"])
        target = read_target_pool_size(self._zk, self._paths, name)  # NotFound: never seen
        try:
            current: int | None = read_current_pool_size(self._zk, self._paths, name)
        except NotFound:
            current = None  # not live
        return 200, {"instance": name, "target": target, "current": current}

    def locks(self, call: Call) -> Answer:
        return 200, {"locks": read_locks(self._zk, self._paths)}

    def lock(self, call: Call) -> Answer:
        resource = call.params["resource"]
        found = read_locks(self._zk, self._paths, resource)
        return 200, {"resource": resource, "locks": found.get(resource, [])}

    def lock_audit(self, call: Call) -> Answer:
        resource = call.params["resource"]
        return 200, {"resource": resource, "audit": read_audit(self._zk, self._paths, resource)}
