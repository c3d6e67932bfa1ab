"""The TaskDriver: submit, delete and observe the workflows of one cluster.

Mutations go over gRPC to the leader controller, found through its LEADER znode; all the
retries of one mutation carry the same request id, so a retry after a leader change applies
it once. Reads go straight to ZooKeeper after a ``sync``, so a client reads its own writes
(that plumbing is :class:`helixpy.driver.base.DriverBase`; the streaming-job methods are in
:mod:`helixpy.driver.stream_api`). Polls wait on ZooKeeper watches, with a bounded wait as a
safety net for a watch lost while the session reconnects.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from helixpy.driver.base import check_bool, check_type, task_name
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import request_id as _rid
from helixpy.driver.base import workflow_name as _wf
from helixpy.driver.content_api import ContentMethods
from helixpy.driver.instance_api import InstanceMethods
from helixpy.driver.polling import StatePoller, check_timeout
from helixpy.driver.reads import (
    read_instances,
    read_visible_job_config,
    read_workflow_config,
    read_workflows,
)
from helixpy.driver.stream_api import StreamMethods
from helixpy.driver.submit import SubmitMethods
from helixpy.errors import InvalidConfig
from helixpy.model import (
    JobConfig,
    JobContext,
    JobQueue,
    TaskConfig,
    TaskExecutionInfo,
    TaskState,
    Workflow,
    WorkflowConfig,
    WorkflowContext,
)
from helixpy.model.locks import Posse
from helixpy.model.names import check_name
from helixpy.model.values import JsonValue
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.security import ClientTls
from helixpy.store import records
from helixpy.store.force_delete import force_delete_workflow
from helixpy.store.locks import read_audit, read_locks
from helixpy.store.partitions import read_partitions
from helixpy.store.results import read_job_results, read_task_result
from helixpy.store.task_errors import read_task_errors
from helixpy.store.views import read_last_scheduled_task


class TaskDriver(SubmitMethods, StreamMethods, ContentMethods, InstanceMethods):
    """A client of one helixpy cluster: start and delete workflows, read and poll state.

    ``zk`` is a ZooKeeper connect string (a chroot may follow the hosts) and ``cluster`` the
    cluster's name. ``timeout`` bounds connecting, each mutation (waiting for a leader
    included) and each read; polls take their own timeout. Use it as a context manager or
    call :meth:`close`. One driver may be shared between threads.
    """

    def __init__(
        self,
        zk: str,
        cluster: str,
        *,
        timeout: float = 10.0,
        zk_auth: str | None = None,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> None:
        super().__init__(zk, cluster, timeout=timeout, zk_auth=zk_auth, tls=tls, token=token)
        self._poller = StatePoller(
            self._zk,
            self._paths,
            self._watcher,
            check_open=self._check_open,
            sync=self._sync,
            get_workflow_config=self.get_workflow_config,
            get_workflow_context=self.get_workflow_context,
        )

    # --- mutations ------------------------------------------------------------------------

    def start(self, workflow: Workflow) -> None:
        """Start ``workflow``; :class:`AlreadyExists` if one of that name exists."""
        self._check_open()
        if not isinstance(workflow, Workflow):
            raise InvalidConfig("workflow", f"must be a Workflow (got {type(workflow).__name__})")
        # The object validated itself when built (it is frozen); the leader parses the dict
        # again and names the field of anything it refuses.
        body = json.dumps(workflow.to_dict())
        self._mutate(
            "StartWorkflow", pb.StartWorkflowRequest(request_id=_rid(), workflow_json=body)
        )

    def delete(self, name: str, force: bool = False) -> None:
        """Delete workflow ``name`` and everything under it; :class:`NotFound` if absent.

        The leader cancels its running tasks and removes every znode (configs, contexts,
        user content) before answering. ``force=True`` removes the znodes directly from
        ZooKeeper and works while no controller runs; a controller that leads later finds
        no trace of it, and participants cancel its tasks when their assignments are
        recomputed.
        """
        self._check_open()
        if check_bool("force", force):
            self._read("", "", lambda _zk, _paths: self._force_delete(_wf(name)))
            return
        self._mutate("DeleteWorkflow", pb.DeleteWorkflowRequest(request_id=_rid(), name=_wf(name)))

    def delete_and_wait(self, name: str, timeout: float = 300.0) -> None:
        """Delete ``name`` and wait until no znode of it is left; :class:`PollTimeout` naming
        the state last seen if it is still there after ``timeout`` seconds."""
        check_timeout(timeout)  # before anything is deleted
        self.delete(name)
        self._poller.wait_gone(_wf(name), timeout)

    def stop(self, name: str) -> None:
        """Stop workflow ``name``: running tasks are cancelled, no new task starts; jobs go
        STOPPING, then STOPPED once nothing of theirs runs. Returns once accepted."""
        self._check_open()
        self._mutate("StopWorkflow", pb.WorkflowRequest(request_id=_rid(), name=_wf(name)))

    def resume(self, name: str) -> None:
        """Resume a stopped workflow: stopped tasks run again."""
        self._check_open()
        self._mutate("ResumeWorkflow", pb.WorkflowRequest(request_id=_rid(), name=_wf(name)))

    def rerun_failed(self, name: str) -> None:
        """Run again what did not complete of workflow ``name`` (FAILED, TIMED_OUT or
        STOPPED): its failed, timed-out, aborted, stopped and never-run jobs start over,
        their attempts counting from 1 (their results and error texts go), while completed
        jobs keep their results and every job keeps its user content. The workflow runs
        again (and is resumed if it was stopped). InvalidConfig while it runs or still ends
        attempts, and for a queue or a recurring template. Returns once accepted."""
        self._check_open()
        self._mutate("RerunFailed", pb.WorkflowRequest(request_id=_rid(), name=_wf(name)))

    # --- job queues -------------------------------------------------------------------------

    def create_queue(self, queue: JobQueue) -> None:
        """Create and start a job queue; :class:`AlreadyExists` if the name is taken."""
        self._check_open()
        checked = check_type("queue", queue, JobQueue)
        queue = JobQueue.from_dict(checked.to_dict())  # re-validated before it leaves
        request = pb.CreateQueueRequest(request_id=_rid(), queue_json=json.dumps(queue.to_dict()))
        self._mutate("CreateQueue", request)

    def enqueue_job(self, queue: str, job: str, job_config: JobConfig) -> None:
        """Append one job to ``queue``."""
        self.enqueue_jobs(queue, {_job(job): job_config})

    def enqueue_jobs(self, queue: str, jobs: Mapping[str, JobConfig]) -> None:
        """Append jobs in the given order, atomically: a duplicate name raises
        :class:`AlreadyExists` and a full ``capacity`` :class:`InvalidConfig`; either way
        nothing is written."""
        self._check_open()
        if not isinstance(jobs, Mapping):
            raise InvalidConfig("jobs", "must be a mapping of job name to JobConfig")
        pairs = [
            [_job(name), check_type(f"jobs[{name!r}]", cfg, JobConfig).to_dict()]
            for name, cfg in jobs.items()
        ]
        request = pb.EnqueueJobsRequest(
            request_id=_rid(), queue=_wf(queue), jobs_json=json.dumps(pairs)
        )
        self._mutate("EnqueueJobs", request)

    def delete_job(self, queue: str, job: str, force: bool = False) -> None:
        """Remove ``job`` from ``queue``; refused while the queue runs unless ``force``."""
        self._check_open()
        request = pb.DeleteJobRequest(
            request_id=_rid(), queue=_wf(queue), job=_job(job), force=check_bool("force", force)
        )
        self._mutate("DeleteJob", request)

    def flush_queue(self, queue: str) -> None:
        """Remove the queue's COMPLETED, FAILED and ABORTED jobs."""
        self._check_open()
        self._mutate("FlushQueue", pb.WorkflowRequest(request_id=_rid(), name=_wf(queue)))

    def cleanup_queue(self, queue: str) -> None:
        """Helix's ``cleanupQueue``: the same as :meth:`flush_queue` (Helix's two calls
        both remove the queue's jobs in a final state)."""
        self.flush_queue(queue)

    # --- dynamic tasks ----------------------------------------------------------------------

    def add_task(self, name: str, job: str, task_config: TaskConfig) -> None:
        """Add a task to a running job defined by tasks. The command goes on exactly one of
        the job and the task; ids are unique; refused in terminal or stopping states. Visible
        in ``get_job_context`` when this returns."""
        self._check_open()
        request = pb.AddTaskRequest(
            request_id=_rid(),
            workflow=_wf(name),
            job=_job(job),
            task_json=json.dumps(check_type("task_config", task_config, TaskConfig).to_dict()),
        )
        self._mutate("AddTask", request)

    def delete_task(self, name: str, job: str, task_id: str) -> None:
        """Delete a task from a running job (a running attempt of it is cancelled); gone
        from ``get_job_context`` and ``get_job_config`` when this returns."""
        self._check_open()
        request = pb.DeleteTaskRequest(
            request_id=_rid(),
            workflow=_wf(name),
            job=_job(job),
            task_id=check_name("task.id", task_id),
        )
        self._mutate("DeleteTask", request)

    def update_workflow(self, name: str, config: WorkflowConfig) -> None:
        """Replace the config of a job queue (its new ``parallel_jobs``, ``capacity`` and
        expiries apply at once) or of a recurring template (its future clones use it)."""
        self._check_open()
        request = pb.UpdateWorkflowRequest(
            request_id=_rid(),
            name=_wf(name),
            config_json=json.dumps(check_type("config", config, WorkflowConfig).to_dict()),
        )
        self._mutate("UpdateWorkflow", request)

    # --- partition records (for targeted jobs) ---------------------------------------------

    def set_partition_state(self, instance: str, resource: str, partition: str, state: str) -> None:
        """Record that ``instance`` hosts ``partition`` of ``resource`` in ``state``, creating
        or overwriting the record.

        Targeted jobs place their tasks by these records (Helix's current state of a
        resource); a partition counts as hosted only while its instance is live, but the
        record itself outlives the instance's session.
        """
        self._check_open()
        request = pb.SetPartitionStateRequest(
            request_id=_rid(),
            instance=check_name("instance", instance),
            resource=check_name("resource", resource),
            partition=check_name("partition", partition),
            state=check_name("state", state),
        )
        self._mutate("SetPartitionState", request)

    def remove_partition(self, instance: str, resource: str, partition: str) -> None:
        """Remove ``instance``'s record of ``partition`` of ``resource``; :class:`NotFound`
        when there is no such record."""
        self._check_open()
        request = pb.RemovePartitionRequest(
            request_id=_rid(),
            instance=check_name("instance", instance),
            resource=check_name("resource", resource),
            partition=check_name("partition", partition),
        )
        self._mutate("RemovePartition", request)

    def get_partitions(self, instance: str | None = None) -> dict[str, dict[str, dict[str, str]]]:
        """Partition records as ``{instance: {resource: {partition: state}}}``, of every
        instance or of ``instance`` only; empty when there are none.

        Records are listed whether or not their instance is live (see :meth:`get_instances`).
        """
        if instance is not None:
            check_name("instance", instance)
        return self._read(self._paths.instances, "", read_partitions, instance)

    def get_locks(self, resource: str | None = None) -> dict[str, list[Posse]]:
        """Task locks by resource (one resource's when given), as typed :class:`Posse`
        values: each lock's interval, type, group, priority, token, members (holders),
        critical-section members and revoked. A resource whose locks all went maps to []."""
        raw = self._read(f"{self._paths.root}/LOCKS", "", read_locks, resource)
        return {res: [Posse.from_dict(p) for p in posses] for res, posses in raw.items()}

    def get_lock_audit(self, resource: str) -> list[dict[str, Any]]:
        """Every grant, join, revoke, release and reclaim on ``resource``, oldest first."""
        return self._read(f"{self._paths.root}/LOCKS", "", read_audit, resource)

    def get_instances(self) -> dict[str, dict[str, Any]]:
        """Every instance that ever registered: ``{id: {live, enabled, tags, capacity,
        abandoned}}`` (see :func:`helixpy.store.views.read_instances`)."""
        return self._read(self._paths.instances, "", read_instances)

    def wait_to_stop(self, name: str, timeout: float = 300.0) -> None:
        """Stop ``name`` and wait until it is STOPPED; :class:`PollTimeout` (naming the state
        it saw) when a task ignores its cancel past ``timeout`` seconds."""
        check_timeout(timeout)  # before the workflow is stopped
        self.stop(name)
        # A workflow that finishes meanwhile runs nothing either: no need to wait it out.
        finished = (TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED)
        self.poll_for_workflow_state(name, TaskState.STOPPED, *finished, timeout=timeout)

    def _force_delete(self, name: str) -> None:
        force_delete_workflow(self._zk, self._paths, name)

    def set_cluster_config(self, **settings: Any) -> None:
        """Merge ``settings`` into the cluster config; the controller checks each one."""
        self._check_open()
        try:
            body = json.dumps(settings)
        except (TypeError, ValueError) as exc:
            raise InvalidConfig("cluster_config", f"must be JSON-serializable: {exc}") from None
        self._mutate(
            "SetClusterConfig", pb.SetClusterConfigRequest(request_id=_rid(), settings_json=body)
        )

    # --- reads ----------------------------------------------------------------------------

    def get_cluster_config(self) -> dict[str, Any]:
        """The cluster config; empty when nothing was ever set."""
        return self._read(self._paths.config, "", records.read_cluster_config)

    def get_workflows(self) -> dict[str, WorkflowConfig]:
        """Every workflow's config by name (workflows being started or deleted left out)."""
        return self._read(self._paths.workflows, "", read_workflows)

    def get_workflow_config(self, name: str) -> WorkflowConfig:
        """Workflow ``name``'s config; :class:`NotFound` if it does not exist."""
        path, what = self._paths.workflow_config(_wf(name)), f"workflow {name}"
        return self._read(path, what, read_workflow_config, name)

    def get_job_config(self, name: str, job: str) -> JobConfig:
        """The config of job ``job`` (its short name) of workflow ``name``."""
        path, what = self._paths.job_config(_wf(name), _job(job)), f"job {name}/{job}"
        return self._read(path, what, read_visible_job_config, name, job)

    def get_workflow_context(self, name: str) -> WorkflowContext:
        """Workflow ``name``'s state and its jobs' states; :class:`NotFound` if absent."""
        path, what = self._paths.workflow_context(_wf(name)), f"workflow {name}"
        return self._read(path, what, records.read_workflow_context, name)

    def get_job_context(self, name: str, job: str) -> JobContext:
        """Job ``job``'s state and its tasks' records (``.tasks`` by partition number)."""
        path, what = self._paths.job_context(_wf(name), _job(job)), f"job {name}/{job}"
        return self._read(path, what, records.read_job_context, name, job)

    def get_task_error(
        self, name: str, job: str, task_id: str | int, attempt: int | None = None
    ) -> str | None:
        """The full error text of task ``task_id``'s newest failed attempt (or of
        ``attempt``): the traceback when it raised, else the whole info it returned, up to
        16 KB. None when it has none. The task context's ``info`` is its first 256 bytes;
        the last three failed attempts of a task are kept, until the workflow goes."""
        tid = task_name(task_id)
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
            raise InvalidConfig("attempt", f"must be an attempt number (got {attempt!r})")
        path = self._paths.task_error(_wf(name), _job(job), tid)
        errors = self._read(path, f"job {name}/{job}", read_task_errors, name, job, tid)
        if attempt is not None:
            return errors.get(attempt)
        return errors[max(errors)] if errors else None

    def get_task_result(self, name: str, job: str, task_id: str | int) -> JsonValue:
        """The value task ``task_id`` of job ``job`` COMPLETED with (what its function
        returned, or ``TaskResult.value``); None when it returned none. Raises
        :class:`~helixpy.errors.NoResult` (a :class:`NotFound`) while it has not completed,
        :class:`NotFound` when the task does not exist. Only the completed attempt's value
        is ever returned; it is kept until the workflow goes."""
        tid = task_name(task_id)
        path = self._paths.job_context(_wf(name), _job(job))
        return self._read(path, "", read_task_result, name, job, tid)

    def get_job_results(self, name: str, job: str) -> dict[str, JsonValue]:
        """The values of job ``job``'s COMPLETED tasks, by task id (None for a task that
        returned none); tasks that have not completed are left out."""
        path, what = self._paths.job_context(_wf(name), _job(job)), f"job {name}/{job}"
        return self._read(path, what, read_job_results, name, job)

    def get_last_scheduled_task_execution_info(self, name: str) -> TaskExecutionInfo | None:
        """Helix's ``getLastScheduledTaskExecutionInfo``: the task of workflow ``name``
        scheduled last (the latest ``start_time`` over its started jobs), with its job,
        partition, id and state; None when no task was scheduled yet."""
        path, what = self._paths.workflow_context(_wf(name)), f"workflow {name}"
        return self._read(path, what, read_last_scheduled_task, name)

    def get_last_scheduled_task_timestamp(self, name: str) -> datetime | None:
        """Helix's ``getLastScheduledTaskTimestamp``: the ``start_time`` of
        :meth:`get_last_scheduled_task_execution_info` (None where Helix answers -1)."""
        info = self.get_last_scheduled_task_execution_info(name)
        return info.start_time if info is not None else None

    # --- polls ----------------------------------------------------------------------------

    def poll_for_workflow_state(
        self, name: str, *states: TaskState | str, timeout: float = 300.0
    ) -> TaskState:
        """Wait until workflow ``name`` is in one of ``states``; return the state reached.

        A workflow not yet visible counts as "not yet". Raises :class:`PollTimeout` (with
        ``last_state``) when none of ``states`` is seen within ``timeout`` seconds.
        """
        return self._poller.workflow_state(_wf(name), states, timeout)

    def poll_for_workflows(
        self, names: Sequence[str], *states: TaskState | str, timeout: float = 300.0
    ) -> dict[str, TaskState]:
        """Wait until every workflow of ``names`` is in one of ``states``; return the state
        each reached (in the order of ``names``).

        The batch form of :meth:`poll_for_workflow_state`, for a producer waiting on many
        workflows (like Celery's ``ResultSet.get``): one ``sync``, pipelined reads, then one
        read per change, all on the calling thread. A workflow not yet visible counts as
        "not yet"; :class:`PollTimeout` names those that did not get there in time.
        """
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise InvalidConfig("names", "must be a list of workflow names")
        return self._poller.workflow_states([_wf(n) for n in names], states, timeout)

    def poll_for_job_state(
        self, name: str, job: str, *states: TaskState | str, timeout: float = 300.0
    ) -> TaskState:
        """Wait until job ``job`` of workflow ``name`` is in one of ``states``.

        Same contract as :meth:`poll_for_workflow_state`. On a recurring template it follows
        the template's last clone (waiting, within ``timeout``, for the first one).
        """
        return self._poller.job_state(_wf(name), _job(job), states, timeout)
