"""The controller's gRPC service: the driver's mutations, answered by the leader only."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

import grpc

from helixpy.controller.commands import validate_cluster_settings
from helixpy.controller.signals import Command
from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, JobQueue, TaskConfig, Workflow, WorkflowConfig
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

    def __init__(self, submit: Callable[[Command], bool]) -> None:
        self._submit = submit

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
            lambda: Workflow.from_dict(json.loads(request.workflow_json)),
        )

    def CreateQueue(
        self, request: pb.CreateQueueRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._handle(
            "start",
            request.request_id,
            context,
            "queue_json",
            lambda: JobQueue.from_dict(json.loads(request.queue_json)),
        )

    def EnqueueJobs(
        self, request: pb.EnqueueJobsRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        def parse() -> object:
            raw = json.loads(request.jobs_json)
            if not isinstance(raw, list) or not raw:
                raise InvalidConfig("jobs", "must be a non-empty list of [name, job] pairs")
            jobs = [
                (check_name("job.name", n), JobConfig.from_dict(j, f"jobs.{n}")) for n, j in raw
            ]
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
        try:
            payload = parse()
        except InvalidConfig as exc:
            return _invalid(exc)
        except (TypeError, ValueError) as exc:
            return _invalid(InvalidConfig(json_field, f"not valid: {exc}"))
        return self._apply(Command(kind, request_id, payload), context)

    def _apply(self, cmd: Command, context: grpc.ServicerContext) -> pb.MutationReply:
        try:
            # Request ids become znode names (CONTROLLER/REQUESTS/<id>).
            check_name("request_id", cmd.request_id)
        except InvalidConfig as exc:
            return _invalid(exc)
        if not self._submit(cmd):
            context.abort(grpc.StatusCode.UNAVAILABLE, "not the leader")
        try:
            result: dict[str, Any] = cmd.future.result(timeout=APPLY_TIMEOUT)
        except FutureTimeout:
            context.abort(grpc.StatusCode.UNAVAILABLE, "the leader did not apply it in time")
        except Exception as exc:  # the pipeline failed (fenced, lost): the driver retries
            log.warning("%s %s not applied: %s", cmd.kind, cmd.request_id, exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"not applied: {exc}")
        return pb.MutationReply(
            code=_CODES.get(result["code"], pb.INTERNAL),
            message=result.get("message", ""),
            field=result.get("field", ""),
            rule=result.get("rule", ""),
        )


def _invalid(exc: InvalidConfig) -> pb.MutationReply:
    return pb.MutationReply(
        code=pb.INVALID_CONFIG, message=str(exc), field=exc.field, rule=exc.rule
    )
