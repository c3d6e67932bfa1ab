"""The HTTP API's route table: the one place that says which operation answers where.

The server routes by it and ``/openapi.json`` is generated from it
(:mod:`helixpy.controller.api.openapi`), so the document and the routes cannot drift.
"""

from __future__ import annotations

from helixpy.controller.api.reads import Reads
from helixpy.controller.api.routing import PREFIX, Param, Route
from helixpy.controller.api.writes import Writes

_FORCE = Param(
    "force", "true: delete straight from ZooKeeper (works with no leader)", {"type": "boolean"}
)
_FORCE_JOB = Param("force", "true: remove the job even while the queue runs", {"type": "boolean"})


def api_routes(reads: Reads, writes: Writes) -> list[Route]:
    """Every route of the API, in the order the OpenAPI document lists them."""
    w = f"{PREFIX}/workflows/{{name}}"
    j = f"{w}/jobs/{{job}}"
    q = f"{PREFIX}/queues/{{name}}"
    i = f"{PREFIX}/instances/{{instance}}"
    return [
        Route(
            "GET", f"{PREFIX}/cluster", reads.cluster, "Cluster name, leader, config", tag="cluster"
        ),
        Route(
            "POST",
            f"{PREFIX}/cluster/config",
            writes.cluster_config,
            "Merge settings into the cluster config (set_cluster_config)",
            body="cluster_config",
            mutation=True,
            tag="cluster",
        ),
        Route(
            "GET",
            f"{PREFIX}/overview",
            reads.overview,
            "What the dashboard's front page shows",
            tag="cluster",
        ),
        # --- workflows
        Route("GET", f"{PREFIX}/workflows", reads.workflows, "List workflows", tag="workflows"),
        Route(
            "POST",
            f"{PREFIX}/workflows",
            writes.start,
            "Start a workflow (JSON or YAML body)",
            body="workflow",
            status=201,
            mutation=True,
            tag="workflows",
        ),
        Route("GET", w, reads.workflow, "A workflow: state, config, jobs", tag="workflows"),
        Route(
            "DELETE",
            w,
            writes.delete,
            "Delete a workflow or queue",
            query=(_FORCE,),
            mutation=True,
            tag="workflows",
        ),
        Route("GET", f"{w}/config", reads.workflow_config, "Its stored config", tag="workflows"),
        Route("GET", f"{w}/context", reads.workflow_context, "Its context", tag="workflows"),
        Route("GET", f"{w}/view", reads.workflow_view, "The dashboard's DAG view", tag="workflows"),
        Route(
            "POST",
            f"{w}/config",
            writes.update_config,
            "Replace a queue's or recurring template's config (update_workflow)",
            body="config",
            mutation=True,
            tag="workflows",
        ),
        Route("POST", f"{w}/stop", writes.stop, "Stop it", mutation=True, tag="workflows"),
        Route("POST", f"{w}/resume", writes.resume, "Resume it", mutation=True, tag="workflows"),
        Route(
            "POST", f"{w}/rerun", writes.rerun, "Rerun what failed", mutation=True, tag="workflows"
        ),
        Route("GET", f"{w}/content", reads.content, "Its user content", tag="content"),
        Route(
            "POST",
            f"{w}/content",
            writes.content,
            "Add or update keys of its user content (a JSON object of strings)",
            body="content",
            mutation=True,
            tag="content",
        ),
        Route(
            "GET",
            f"{w}/last-scheduled-task",
            reads.last_scheduled_task,
            "The task scheduled last (Helix's getLastScheduledTaskExecutionInfo)",
            tag="workflows",
        ),
        Route("GET", f"{w}/jobs", reads.jobs, "Its jobs and their states", tag="jobs"),
        Route("GET", f"{j}/config", reads.job_config, "A job's config", tag="jobs"),
        Route("GET", f"{j}/context", reads.job_context, "A job's context (tasks)", tag="jobs"),
        Route("GET", f"{j}/results", reads.job_results, "Its completed tasks' values", tag="jobs"),
        Route("GET", f"{j}/content", reads.content, "A job's user content", tag="content"),
        Route(
            "POST",
            f"{j}/content",
            writes.content,
            "Add or update keys of a job's user content",
            body="content",
            mutation=True,
            tag="content",
        ),
        Route(
            "GET",
            f"{j}/tasks/{{task}}/content",
            reads.content,
            "A task's user content",
            tag="content",
        ),
        Route(
            "POST",
            f"{j}/tasks/{{task}}/content",
            writes.content,
            "Add or update keys of a task's user content",
            body="content",
            mutation=True,
            tag="content",
        ),
        Route(
            "POST",
            f"{j}/tasks",
            writes.add_task,
            "Add a task to a running job (a task config: {id, command?, config?})",
            body="task",
            status=201,
            mutation=True,
            tag="tasks",
        ),
        Route(
            "DELETE",
            f"{j}/tasks/{{task}}",
            writes.delete_task,
            "Delete a task from a running job",
            mutation=True,
            tag="tasks",
        ),
        Route(
            "GET", f"{j}/tasks/{{task}}/result", reads.task_result, "A task's value", tag="tasks"
        ),
        Route(
            "GET",
            f"{j}/tasks/{{task}}/errors",
            reads.task_errors,
            "A task's kept error texts by attempt",
            tag="tasks",
        ),
        # --- queues
        Route("GET", f"{PREFIX}/queues", reads.queues, "List job queues", tag="queues"),
        Route(
            "POST",
            f"{PREFIX}/queues",
            writes.create_queue,
            "Create a job queue (JSON or YAML body)",
            body="queue",
            status=201,
            mutation=True,
            tag="queues",
        ),
        Route("GET", q, reads.queue, "A queue: state, config, job order", tag="queues"),
        Route(
            "POST",
            f"{q}/jobs",
            writes.enqueue,
            "Enqueue jobs (a mapping of job name to job, in order)",
            body="jobs",
            mutation=True,
            tag="queues",
        ),
        Route(
            "DELETE",
            f"{q}/jobs/{{job}}",
            writes.delete_job,
            "Remove a job from the queue",
            query=(_FORCE_JOB,),
            mutation=True,
            tag="queues",
        ),
        Route(
            "POST",
            f"{q}/flush",
            writes.flush,
            "Remove its COMPLETED, FAILED and ABORTED jobs",
            mutation=True,
            tag="queues",
        ),
        # --- instances
        Route("GET", f"{PREFIX}/instances", reads.instances, "List instances", tag="instances"),
        Route("GET", i, reads.instance, "An instance", tag="instances"),
        Route("POST", f"{i}/enable", writes.enable, "Enable it", mutation=True, tag="instances"),
        Route("POST", f"{i}/disable", writes.disable, "Disable it", mutation=True, tag="instances"),
        Route(
            "POST",
            f"{i}/tags",
            writes.tags,
            "Replace its tags (a JSON list)",
            body="tags",
            mutation=True,
            tag="instances",
        ),
        Route("GET", f"{i}/partitions", reads.partitions, "Its partition records", tag="instances"),
        Route(
            "POST",
            f"{i}/partitions/{{resource}}/{{partition}}",
            writes.set_partition,
            'Record that it hosts the partition in a state: {"state": S}',
            body="partition",
            mutation=True,
            tag="instances",
        ),
        Route(
            "DELETE",
            f"{i}/partitions/{{resource}}/{{partition}}",
            writes.remove_partition,
            "Remove its record of the partition",
            mutation=True,
            tag="instances",
        ),
        Route(
            "GET",
            f"{i}/thread-pool",
            reads.thread_pool,
            "Its target and current task thread pool size",
            tag="instances",
        ),
        Route(
            "POST",
            f"{i}/thread-pool",
            writes.thread_pool,
            'Set the size it takes at its next start: {"size": N} (null clears it)',
            body="thread pool",
            mutation=True,
            tag="instances",
        ),
        # --- locks
        Route("GET", f"{PREFIX}/locks", reads.locks, "Task locks by resource", tag="locks"),
        Route(
            "GET", f"{PREFIX}/locks/{{resource}}", reads.lock, "One resource's locks", tag="locks"
        ),
        Route(
            "GET",
            f"{PREFIX}/locks/{{resource}}/audit",
            reads.lock_audit,
            "One resource's audit trail",
            tag="locks",
        ),
    ]
