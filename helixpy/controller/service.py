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
from helixpy.model import JobConfig, JobQueue, Workflow
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

    def StartWorkflow(
        self, request: pb.StartWorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            workflow = Workflow.from_dict(json.loads(request.workflow_json))
        except InvalidConfig as exc:
            return _invalid(exc)
        except ValueError as exc:
            return _invalid(InvalidConfig("workflow_json", f"not valid JSON: {exc}"))
        return self._apply(Command("start", request.request_id, workflow), context)

    def CreateQueue(
        self, request: pb.CreateQueueRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            queue = JobQueue.from_dict(json.loads(request.queue_json))
        except InvalidConfig as exc:
            return _invalid(exc)
        except ValueError as exc:
            return _invalid(InvalidConfig("queue_json", f"not valid JSON: {exc}"))
        return self._apply(Command("start", request.request_id, queue), context)

    def EnqueueJobs(
        self, request: pb.EnqueueJobsRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            name = check_name("queue.name", request.queue)
            raw = json.loads(request.jobs_json)
            if not isinstance(raw, list) or not raw:
                raise InvalidConfig("jobs", "must be a non-empty list of [name, job] pairs")
            jobs = [
                (check_name("job.name", n), JobConfig.from_dict(j, f"jobs.{n}")) for n, j in raw
            ]
        except InvalidConfig as exc:
            return _invalid(exc)
        except (TypeError, ValueError) as exc:
            return _invalid(InvalidConfig("jobs_json", f"not a list of [name, job] pairs: {exc}"))
        return self._apply(Command("enqueue", request.request_id, (name, jobs)), context)

    def DeleteJob(
        self, request: pb.DeleteJobRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            payload = (
                check_name("queue.name", request.queue),
                check_name("job.name", request.job),
                request.force,
            )
        except InvalidConfig as exc:
            return _invalid(exc)
        return self._apply(Command("delete_job", request.request_id, payload), context)

    def FlushQueue(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            name = check_name("queue.name", request.name)
        except InvalidConfig as exc:
            return _invalid(exc)
        return self._apply(Command("flush", request.request_id, name), context)

    def DeleteWorkflow(
        self, request: pb.DeleteWorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            name = check_name("workflow.name", request.name)
        except InvalidConfig as exc:
            return _invalid(exc)
        return self._apply(Command("delete", request.request_id, name), context)

    def StopWorkflow(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._target_state("STOP", request, context)

    def ResumeWorkflow(
        self, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        return self._target_state("START", request, context)

    def _target_state(
        self, target: str, request: pb.WorkflowRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            name = check_name("workflow.name", request.name)
        except InvalidConfig as exc:
            return _invalid(exc)
        return self._apply(Command("target_state", request.request_id, (name, target)), context)

    def SetInstanceEnabled(
        self, request: pb.InstanceEnabledRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            name = check_name("instance", request.instance)
        except InvalidConfig as exc:
            return _invalid(exc)
        cmd = Command("instance_enabled", request.request_id, (name, request.enabled))
        return self._apply(cmd, context)

    def SetClusterConfig(
        self, request: pb.SetClusterConfigRequest, context: grpc.ServicerContext
    ) -> pb.MutationReply:
        try:
            settings = validate_cluster_settings(json.loads(request.settings_json))
        except InvalidConfig as exc:
            return _invalid(exc)
        except ValueError as exc:
            return _invalid(InvalidConfig("settings_json", f"not valid JSON: {exc}"))
        return self._apply(Command("cluster_config", request.request_id, settings), context)

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
