"""The controller's gRPC service: the driver's mutations, answered by the leader only."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import grpc

from helixpy.controller.admin import validate_cluster_settings
from helixpy.controller.signals import Command
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, JobQueue, Scope, TaskConfig, Workflow, WorkflowConfig
from helixpy.model.limits import Limits, check_capacity
from helixpy.model.names import check_name
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

#: How long a handler waits for the pipeline to apply a mutation before answering UNAVAILABLE.
APPLY_TIMEOUT = 30.0
_CODES = {
    "OK": pb.OK,
    "INVALID_CONFIG": pb.INVALID_CONFIG,
    "NOT_FOUND": pb.NOT_FOUND,
    "ALREADY_EXISTS": pb.ALREADY_EXISTS,
}


class ControllerService(pb_grpc.ControllerServicer):
    """Validates requests, hands them to the pipeline, and waits (bounded) for the reply.

    ``submit`` returns False when this controller is not the leader; the handler then
    answers UNAVAILABLE so the driver re-reads LEADER and retries with the same request id.
    """

    def __init__(
        self, submit: Callable[[Command], bool], limits: Callable[[], Limits] = Limits
    ) -> None:
        self._submit = submit
        #: the cluster's size limits now (the leader's cluster config; defaults until read)
        self._limits = limits

    # Each handler parses and validates its request, then hands it to the pipeline; bad
    # input is answered INVALID_CONFIG here, before anything is queued.

    def StartWorkflow(
        self, request: pb.StartWorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "start",
            request.request_id,
            context,
            "workflow_json",
            lambda: self._sized(
                request, lambda: Workflow.from_dict(json.loads(request.workflow_json))
            ),
        )

    def CreateQueue(
        self, request: pb.CreateQueueRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "start",
            request.request_id,
            context,
            "queue_json",
            lambda: self._sized(
                request, lambda: JobQueue.from_dict(json.loads(request.queue_json))
            ),
        )

    def StartMany(
        self, request: pb.StartManyRequest, context: grpc.ServicerContext
    ) -> pb.StartManyReply:
        """Each item is its own start (request id ``<id>.<i>``): a bad item is answered
        INVALID_CONFIG naming its field and never holds back the others."""
        items: list[Command | pb.MutationReply] = []
        oversized = self._oversized(request)
        for i, item in enumerate(request.items):
            body = item.WhichOneof("body") or "workflow_json"

            def parse(item: pb.StartItem = item, body: str = body) -> object:
                if oversized is not None:
                    raise oversized
                if body == "queue_json":
                    return self._sized(
                        None, lambda: JobQueue.from_dict(json.loads(item.queue_json))
                    )
                return self._sized(None, lambda: Workflow.from_dict(json.loads(item.workflow_json)))

            items.append(
                self._parse("start", f"{request.request_id}.{i}", f"items[{i}].{body}", parse)
            )
        return pb.StartManyReply(replies=self._apply_many(items, context))

    def EnqueueMany(
        self, request: pb.EnqueueManyRequest, context: grpc.ServicerContext
    ) -> pb.StartManyReply:
        """Each item appends one job on its own (request id ``<id>.<i>``)."""
        items: list[Command | pb.MutationReply] = []
        oversized = self._oversized(request)
        for i, item in enumerate(request.items):

            def parse(item: pb.EnqueueItem = item, i: int = i) -> object:
                if oversized is not None:
                    raise oversized
                name = check_name(f"items[{i}].job", item.job)
                job = JobConfig.from_dict(json.loads(item.job_json), f"items[{i}].job_json")
                self._limits().check_job(f"items[{i}].job_json", job)
                return check_name(f"items[{i}].queue", item.queue), [(name, job)]

            items.append(
                self._parse("enqueue", f"{request.request_id}.{i}", f"items[{i}].job_json", parse)
            )
        return pb.StartManyReply(replies=self._apply_many(items, context))

    def EnqueueJobs(
        self, request: pb.EnqueueJobsRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        def parse() -> object:
            raw = json.loads(request.jobs_json)
            if not isinstance(raw, list) or not raw:
                raise InvalidConfig("jobs", "must be a non-empty list of [name, job] pairs")
            limits = self._limits()
            limits.check_request(request.ByteSize())
            limits.check_job_count("request", len(raw))  # before parsing them
            jobs = [
                (check_name("job.name", n), JobConfig.from_dict(j, f"jobs.{n}")) for n, j in raw
            ]
            limits.check_jobs("request", dict(jobs))
            return check_name("queue.name", request.queue), jobs

        return self._handle("enqueue", request.request_id, context, "jobs_json", parse)

    def DeleteJob(
        self, request: pb.DeleteJobRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "delete_job",
            request.request_id,
            context,
            "request",
            lambda: (
                check_name("queue.name", request.queue),
                check_name("job.name", request.job),
                request.force,
            ),
        )

    def FlushQueue(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "flush",
            request.request_id,
            context,
            "request",
            lambda: check_name("queue.name", request.name),
        )

    def DeleteWorkflow(
        self, request: pb.DeleteWorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "delete",
            request.request_id,
            context,
            "request",
            lambda: check_name("workflow.name", request.name),
        )

    def StopWorkflow(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "target_state",
            request.request_id,
            context,
            "request",
            lambda: (check_name("workflow.name", request.name), "STOP"),
        )

    def ResumeWorkflow(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "target_state",
            request.request_id,
            context,
            "request",
            lambda: (check_name("workflow.name", request.name), "START"),
        )

    def RerunFailed(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "rerun_failed",
            request.request_id,
            context,
            "request",
            lambda: check_name("workflow.name", request.name),
        )

    def SetInstanceEnabled(
        self, request: pb.InstanceEnabledRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "instance_enabled",
            request.request_id,
            context,
            "request",
            lambda: (check_name("instance", request.instance), request.enabled),
        )

    def SetInstanceTags(
        self, request: pb.InstanceTagsRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "instance_tags",
            request.request_id,
            context,
            "request",
            lambda: (
                check_name("instance", request.instance),
                [check_name("tag", t) for t in request.tags],
            ),
        )

    def AddTask(
        self, request: pb.AddTaskRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "add_task",
            request.request_id,
            context,
            "task_json",
            lambda: (
                check_name("workflow.name", request.workflow),
                check_name("job.name", request.job),
                TaskConfig.from_dict(json.loads(request.task_json)),
            ),
        )

    def DeleteTask(
        self, request: pb.DeleteTaskRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "delete_task",
            request.request_id,
            context,
            "request",
            lambda: (
                check_name("workflow.name", request.workflow),
                check_name("job.name", request.job),
                check_name("task.id", request.task_id),
            ),
        )

    def UpdateWorkflow(
        self, request: pb.UpdateWorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "update_workflow",
            request.request_id,
            context,
            "config_json",
            lambda: (
                check_name("workflow.name", request.name),
                WorkflowConfig.from_dict(json.loads(request.config_json), "config"),
            ),
        )

    def SetPartitionState(
        self, request: pb.SetPartitionStateRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "set_partition",
            request.request_id,
            context,
            "request",
            lambda: (
                check_name("instance", request.instance),
                check_name("resource", request.resource),
                check_name("partition", request.partition),
                check_name("state", request.state),
            ),
        )

    def RemovePartition(
        self, request: pb.RemovePartitionRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "remove_partition",
            request.request_id,
            context,
            "request",
            lambda: (
                check_name("instance", request.instance),
                check_name("resource", request.resource),
                check_name("partition", request.partition),
            ),
        )

    def UpdateUserContent(
        self, request: pb.UserContentRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        def parse() -> object:
            self._limits().check_request(request.ByteSize())
            if request.task and not request.job:
                raise InvalidConfig("job.name", "task scope needs its job")
            scope = Scope.TASK if request.task else Scope.JOB if request.job else Scope.WORKFLOW
            return (
                scope,
                check_name("workflow.name", request.workflow),
                check_name("job.name", request.job) if request.job else None,
                check_name("task.id", request.task) if request.task else None,
                dict(request.content),
            )

        return self._handle("user_content", request.request_id, context, "request", parse)

    def SetTargetTaskThreadPoolSize(
        self, request: pb.ThreadPoolSizeRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        def parse() -> object:
            if request.size != 0:
                check_capacity(request.size, "size")
            return check_name("instance", request.instance), request.size or None

        return self._handle("thread_pool_size", request.request_id, context, "request", parse)

    def SetClusterConfig(
        self, request: pb.SetClusterConfigRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "cluster_config",
            request.request_id,
            context,
            "settings_json",
            lambda: validate_cluster_settings(json.loads(request.settings_json)),
        )

    def _handle(
        self,
        kind: str,
        request_id: str,
        context: grpc.ServicerContext,
        json_field: str,
        parse: Callable[[], object],
    ) -> pb.MutationReply:
        parsed = self._parse(kind, request_id, json_field, parse)
        if isinstance(parsed, pb.MutationReply):
            return parsed
        return self._apply_many([parsed], context)[0]

    def _sized(self, request: Any, parse: Callable[[], Workflow | JobQueue]) -> Workflow | JobQueue:
        """What ``parse`` makes of a request once it is within the cluster's limits:
        ``request`` (when given) within max_request_bytes before it is parsed at all, its
        jobs and tasks after, before the leader builds anything of them."""
        limits = self._limits()
        if request is not None:
            limits.check_request(request.ByteSize())
        parsed = parse()
        limits.check_jobs("workflow" if isinstance(parsed, Workflow) else "queue", parsed.jobs)
        return parsed

    def _oversized(self, request: Any) -> InvalidConfig | None:
        try:
            self._limits().check_request(request.ByteSize())
        except InvalidConfig as exc:
            return exc
        return None

    @staticmethod
    def _parse(
        kind: str, request_id: str, json_field: str, parse: Callable[[], object]
    ) -> Command | pb.MutationReply:
        """The command for one mutation, or the INVALID_CONFIG reply that refuses it."""
        try:
            # Request ids become znode names (CONTROLLER/REQUESTS/<id>).
            check_name("request_id", request_id)
            payload = parse()
        except InvalidConfig as exc:
            return _invalid(exc)
        except (TypeError, ValueError, AttributeError) as exc:
            return _invalid(InvalidConfig(json_field, f"not valid: {exc}"))
        return Command(kind, request_id, payload)

    def _apply_many(
        self, items: list[Command | pb.MutationReply], context: grpc.ServicerContext
    ) -> list[pb.MutationReply]:
        """Submit every command together (one pass decides them all), then wait for each
        under one deadline. Any unanswered one makes the whole call UNAVAILABLE: the driver
        retries with the same ids, and those already applied answer with their stored reply."""
        commands = [c for c in items if isinstance(c, Command)]
        for cmd in commands:
            if not self._submit(cmd):
                context.abort(grpc.StatusCode.UNAVAILABLE, "not the leader")
        deadline = time.monotonic() + APPLY_TIMEOUT
        replies: list[pb.MutationReply] = []
        for item in items:
            if isinstance(item, pb.MutationReply):
                replies.append(item)
                continue
            try:
                result: dict[str, Any] = item.future.result(
                    timeout=max(deadline - time.monotonic(), 0.0)
                )
            except FutureTimeout:
                context.abort(grpc.StatusCode.UNAVAILABLE, "the leader did not apply it in time")
            except Exception as exc:  # the pipeline failed (fenced, lost): the driver retries
                log.warning("%s %s not applied: %s", item.kind, item.request_id, exc)
                context.abort(grpc.StatusCode.UNAVAILABLE, f"not applied: {exc}")
            replies.append(
                pb.MutationReply(
                    code=_CODES.get(result["code"], pb.INTERNAL),
                    message=result.get("message", ""),
                    field=result.get("field", ""),
                    rule=result.get("rule", ""),
                )
            )
        return replies


def _invalid(exc: InvalidConfig) -> pb.MutationReply:
    return pb.MutationReply(
        code=pb.INVALID_CONFIG, message=str(exc), field=exc.field, rule=exc.rule
    )
