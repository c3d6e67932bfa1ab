"""The HTTP API's mutations: each builds the protobuf request the TaskDriver builds for
the same change and hands it to the :class:`~helixpy.controller.api.mutations.Mutator`
(the leader in-process, else forwarded to it).

Bodies are JSON or YAML by ``Content-Type``; a workflow in YAML is read by the model's
YAML codec (``Workflow.from_yaml``, what ``helixpy workflow start FILE`` reads), so its
errors name the line. Everything is validated here before it travels and again by the
leader, which names the field of anything it refuses.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from kazoo.client import KazooClient

from helixpy.controller.api.mutations import Mutator
from helixpy.controller.api.reads import content_scope
from helixpy.controller.api.routing import Call, is_yaml, parse_body
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, JobQueue, TaskConfig, Workflow, WorkflowConfig
from helixpy.model.limits import check_capacity
from helixpy.model.names import check_name
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.store.force_delete import force_delete_workflow
from helixpy.store.paths import Paths

Answer = tuple[int, Any]
#: the header a client may send to make a retried request apply once (a request id)
IDEMPOTENCY_HEADER = "idempotency-key"


def request_id(call: Call) -> str:
    """The request id of a mutation: from the client's ``Idempotency-Key`` when it sent one
    (a retry with the same key is applied once), else a fresh one.

    The key is scoped to the operation (method and path): the leader finds a stored reply
    by request id alone, so a key reused for another operation must not answer with the
    first one's reply (and apply nothing)."""
    given = call.headers.get(IDEMPOTENCY_HEADER)
    if given is None:
        return uuid.uuid4().hex
    key = check_name("Idempotency-Key", given)
    return hashlib.sha256(f"{key}\n{call.method}\n{call.path}".encode()).hexdigest()[:32]


def _done(reply: pb.MutationReply, **about: Any) -> dict[str, Any]:
    return {"ok": True, **about, "message": reply.message}


def read_workflow(call: Call) -> Workflow:
    """The workflow of a start's body (JSON: ``Workflow.to_dict``'s shape; YAML: the
    workflow file schema)."""
    if is_yaml(call):
        parse_body(call, "workflow")  # the same empty / encoding checks as JSON
        return Workflow.from_yaml(call.body.decode("utf-8"))
    data = parse_body(call, "workflow")
    if not isinstance(data, dict):
        raise InvalidConfig("workflow", "the body must be a JSON object (a workflow)")
    return Workflow.from_dict(data)


def read_jobs(call: Call) -> list[tuple[str, JobConfig]]:
    """The jobs of an enqueue's body: a mapping of job name to job fields, in order (what
    ``helixpy queue enqueue FILE`` reads)."""
    raw = parse_body(call, "jobs")
    if not isinstance(raw, dict) or not raw:
        raise InvalidConfig("jobs", "the body must map job names to job fields")
    return [
        (check_name("job.name", str(n)), JobConfig.from_dict(j, f"jobs.{n}"))
        for n, j in raw.items()
    ]


class Writes:
    """The mutation routes' handlers."""

    def __init__(self, zk: KazooClient, paths: Paths, mutator: Mutator) -> None:
        self._zk = zk
        self._paths = paths
        self._mutator = mutator

    # --- workflows ----------------------------------------------------------------------

    def start(self, call: Call) -> Answer:
        wf = read_workflow(call)
        body = json.dumps(wf.to_dict())
        request = pb.StartWorkflowRequest(request_id=request_id(call), workflow_json=body)
        reply = self._mutator.apply("StartWorkflow", request)
        return 201, _done(reply, name=wf.name)

    def _workflow_call(self, method: str, call: Call) -> Answer:
        name = check_name("workflow.name", call.params["name"])
        request = pb.WorkflowRequest(request_id=request_id(call), name=name)
        return 200, _done(self._mutator.apply(method, request), name=name)

    def stop(self, call: Call) -> Answer:
        return self._workflow_call("StopWorkflow", call)

    def resume(self, call: Call) -> Answer:
        return self._workflow_call("ResumeWorkflow", call)

    def rerun(self, call: Call) -> Answer:
        return self._workflow_call("RerunFailed", call)

    def delete(self, call: Call) -> Answer:
        name = check_name("workflow.name", call.params["name"])
        if call.flag("force"):
            self._force_delete(name)
            return 200, {"ok": True, "name": name, "message": f"force-deleted {name}"}
        request = pb.DeleteWorkflowRequest(request_id=request_id(call), name=name)
        return 200, _done(self._mutator.apply("DeleteWorkflow", request), name=name)

    def _force_delete(self, name: str) -> None:
        """The driver's ``delete(force=True)``: straight from ZooKeeper (it works while no
        controller leads; a leader notices through the CONFIG watch)."""
        force_delete_workflow(self._zk, self._paths, name)

    # --- queues -------------------------------------------------------------------------

    def create_queue(self, call: Call) -> Answer:
        data = parse_body(call, "queue")
        if not isinstance(data, dict):
            raise InvalidConfig("queue", "the body must be an object (a queue)")
        queue = JobQueue.from_dict(data)
        body = json.dumps(queue.to_dict())
        request = pb.CreateQueueRequest(request_id=request_id(call), queue_json=body)
        return 201, _done(self._mutator.apply("CreateQueue", request), name=queue.name)

    def enqueue(self, call: Call) -> Answer:
        name = check_name("queue.name", call.params["name"])
        jobs = read_jobs(call)
        pairs = [[job, cfg.to_dict()] for job, cfg in jobs]
        request = pb.EnqueueJobsRequest(
            request_id=request_id(call), queue=name, jobs_json=json.dumps(pairs)
        )
        reply = self._mutator.apply("EnqueueJobs", request)
        return 200, _done(reply, queue=name, jobs=[job for job, _ in jobs])

    def delete_job(self, call: Call) -> Answer:
        name = check_name("queue.name", call.params["name"])
        job = check_name("job.name", call.params["job"])
        request = pb.DeleteJobRequest(
            request_id=request_id(call), queue=name, job=job, force=call.flag("force")
        )
        return 200, _done(self._mutator.apply("DeleteJob", request), queue=name, job=job)

    def flush(self, call: Call) -> Answer:
        name = check_name("queue.name", call.params["name"])
        request = pb.WorkflowRequest(request_id=request_id(call), name=name)
        return 200, _done(self._mutator.apply("FlushQueue", request), queue=name)

    def update_config(self, call: Call) -> Answer:
        """``update_workflow``: a queue's or recurring template's new config (a JSON or
        YAML object of WorkflowConfig fields)."""
        name = check_name("workflow.name", call.params["name"])
        data = parse_body(call, "config")
        if not isinstance(data, dict):
            raise InvalidConfig("config", "the body must be an object (a workflow config)")
        config = WorkflowConfig.from_dict(data, "config")
        request = pb.UpdateWorkflowRequest(
            request_id=request_id(call), name=name, config_json=json.dumps(config.to_dict())
        )
        return 200, _done(self._mutator.apply("UpdateWorkflow", request), name=name)

    # --- dynamic tasks ------------------------------------------------------------------

    def add_task(self, call: Call) -> Answer:
        """``add_task``: the body is a task config (``{id, command?, config?}``)."""
        name = check_name("workflow.name", call.params["name"])
        job = check_name("job.name", call.params["job"])
        data = parse_body(call, "task")
        if not isinstance(data, dict):
            raise InvalidConfig("task", "the body must be an object (a task config)")
        task = TaskConfig.from_dict(data)
        request = pb.AddTaskRequest(
            request_id=request_id(call),
            workflow=name,
            job=job,
            task_json=json.dumps(task.to_dict()),
        )
        reply = self._mutator.apply("AddTask", request)
        return 201, _done(reply, workflow=name, job=job, task=task.task_id)

    def delete_task(self, call: Call) -> Answer:
        name = check_name("workflow.name", call.params["name"])
        job = check_name("job.name", call.params["job"])
        task = check_name("task.id", call.params["task"])
        request = pb.DeleteTaskRequest(
            request_id=request_id(call), workflow=name, job=job, task_id=task
        )
        reply = self._mutator.apply("DeleteTask", request)
        return 200, _done(reply, workflow=name, job=job, task=task)

    # --- user content -------------------------------------------------------------------

    def content(self, call: Call) -> Answer:
        """Helix's addOrUpdate*UserContentMap: the body's keys merged into the map."""
        scope, name, job, task = content_scope(call)
        data = parse_body(call, "content")
        if not isinstance(data, dict):
            raise InvalidConfig("content", "the body must be an object of string values")
        for key, value in data.items():
            if not isinstance(key, str) or not isinstance(value, str):
                raise InvalidConfig(f"content.{key}", "keys and values must be strings")
        request = pb.UserContentRequest(
            request_id=request_id(call), workflow=name, job=job or "", task=task or "", content=data
        )
        reply = self._mutator.apply("UpdateUserContent", request)
        return 200, _done(reply, workflow=name, job=job, task=task, scope=scope.value)

    # --- instances ----------------------------------------------------------------------

    def tags(self, call: Call) -> Answer:
        """``set_instance_tags``: the body is the list of tags (replacing the old ones)."""
        instance = check_name("instance", call.params["instance"])
        tags = parse_body(call, "tags")
        if not isinstance(tags, list):
            raise InvalidConfig("tags", "the body must be a list of tags")
        request = pb.InstanceTagsRequest(
            request_id=request_id(call),
            instance=instance,
            tags=[check_name("tag", t) if isinstance(t, str) else _not_a_tag(t) for t in tags],
        )
        reply = self._mutator.apply("SetInstanceTags", request)
        return 200, _done(reply, instance=instance, tags=tags)

    def set_partition(self, call: Call) -> Answer:
        """``set_partition_state``: body ``{"state": S}``."""
        instance, resource, partition = self._partition(call)
        data = parse_body(call, "partition")
        state = data.get("state") if isinstance(data, dict) else None
        if not isinstance(state, str):
            raise InvalidConfig("state", 'the body must be {"state": "<state>"}')
        request = pb.SetPartitionStateRequest(
            request_id=request_id(call),
            instance=instance,
            resource=resource,
            partition=partition,
            state=check_name("state", state),
        )
        reply = self._mutator.apply("SetPartitionState", request)
        return 200, _done(reply, instance=instance, resource=resource, partition=partition)

    def remove_partition(self, call: Call) -> Answer:
        instance, resource, partition = self._partition(call)
        request = pb.RemovePartitionRequest(
            request_id=request_id(call), instance=instance, resource=resource, partition=partition
        )
        reply = self._mutator.apply("RemovePartition", request)
        return 200, _done(reply, instance=instance, resource=resource, partition=partition)

    @staticmethod
    def _partition(call: Call) -> tuple[str, str, str]:
        return (
            check_name("instance", call.params["instance"]),
            check_name("resource", call.params["resource"]),
            check_name("partition", call.params["partition"]),
        )

    # --- cluster ------------------------------------------------------------------------

    def cluster_config(self, call: Call) -> Answer:
        """``set_cluster_config``: the body's settings are merged into the cluster config
        (the leader validates each, naming it)."""
        data = parse_body(call, "cluster_config")
        if not isinstance(data, dict):
            raise InvalidConfig("cluster_config", "the body must be an object of settings")
        request = pb.SetClusterConfigRequest(
            request_id=request_id(call), settings_json=json.dumps(data)
        )
        return 200, _done(self._mutator.apply("SetClusterConfig", request))

    def thread_pool(self, call: Call) -> Answer:
        """Helix's setTargetTaskThreadPoolSize: body ``{"size": N}`` (null clears it)."""
        instance = check_name("instance", call.params["instance"])
        data = parse_body(call, "thread pool")
        if not isinstance(data, dict) or "size" not in data:
            raise InvalidConfig("size", 'the body must be {"size": N} (N from 1 to 100, or null)')
        size = data["size"]
        if size is not None:
            check_capacity(size, "size")
        request = pb.ThreadPoolSizeRequest(
            request_id=request_id(call), instance=instance, size=size or 0
        )
        reply = self._mutator.apply("SetTargetTaskThreadPoolSize", request)
        return 200, _done(reply, instance=instance, target=size)

    def _enabled(self, call: Call, enabled: bool) -> Answer:
        instance = check_name("instance", call.params["instance"])
        request = pb.InstanceEnabledRequest(
            request_id=request_id(call), instance=instance, enabled=enabled
        )
        reply = self._mutator.apply("SetInstanceEnabled", request)
        return 200, _done(reply, instance=instance, enabled=enabled)

    def enable(self, call: Call) -> Answer:
        return self._enabled(call, True)

    def disable(self, call: Call) -> Answer:
        return self._enabled(call, False)


def _not_a_tag(value: object) -> str:
    raise InvalidConfig("tags", f"each tag must be a string (got {type(value).__name__})")
