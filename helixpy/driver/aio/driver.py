"""``AsyncTaskDriver``: the TaskDriver's surface as coroutines, on one asyncio event loop.

Mutations go over ``grpc.aio`` to the leader controller (:mod:`.leader`); reads go to
ZooKeeper through kazoo's asynchronous API after a ``sync`` (:mod:`.reads`), and polls and
watches wait on ZooKeeper watches (:mod:`.watch`). No call takes a thread: the threads are
kazoo's own (three per driver) and grpc's, however many calls and watches are in flight.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import ParamSpec, TypeVar

from kazoo.exceptions import NoNodeError

from helixpy.driver.aio import reads
from helixpy.driver.aio.batch import BatchMethods
from helixpy.driver.aio.cluster import ClusterReads
from helixpy.driver.aio.content import ContentMethods
from helixpy.driver.aio.mutations import MutationMethods
from helixpy.driver.aio.session import Session
from helixpy.driver.aio.streams import StreamMethods
from helixpy.driver.aio.watch import WorkflowWatch
from helixpy.driver.base import (
    check_bool,
    check_type,
    task_name,
)
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import workflow_name as _wf
from helixpy.driver.polling import (
    check_timeout,
    job_state,
    wanted_states,
    workflow_state,
)
from helixpy.driver.submit import StartOutcome, name_of, outcome, request_chunks, start_items
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import (
    JobConfig,
    JobContext,
    JobQueue,
    TaskExecutionInfo,
    TaskState,
    Workflow,
    WorkflowConfig,
    WorkflowContext,
)
from helixpy.model.values import JsonValue
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.store import records
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan
from helixpy.store.results import job_results_plan, task_result_plan
from helixpy.store.views import last_scheduled_task_plan, workflow_config_plan

_T = TypeVar("_T")
_P = ParamSpec("_P")
#: The ZooKeeper session timeout, as the sync driver's (``store.client.connect``'s default).
_SESSION_TIMEOUT = 10.0


class AsyncTaskDriver(MutationMethods, ContentMethods, ClusterReads, StreamMethods, BatchMethods):
    """A client of one helixpy cluster for asyncio code.

    The arguments, method names, results and errors are :class:`~helixpy.driver.TaskDriver`'s;
    the methods are coroutines. Use it as ``async with AsyncTaskDriver(zk, cluster) as d``
    (or ``d = await AsyncTaskDriver.open(zk, cluster)`` ... ``await d.close()``). A driver
    belongs to the event loop that connected it; many coroutines of that loop may use it at
    once. ``timeout`` bounds connecting, each mutation (waiting for a leader included) and
    each read; polls and :meth:`watch` take their own.
    """

    # --- mutations ------------------------------------------------------------------------

    async def start(self, workflow: Workflow) -> None:
        """Start ``workflow``; :class:`AlreadyExists` if one of that name exists."""
        self._check_open()
        if not isinstance(workflow, Workflow):
            raise InvalidConfig("workflow", f"must be a Workflow (got {type(workflow).__name__})")
        body = json.dumps(workflow.to_dict())
        await self._mutate(
            "StartWorkflow", pb.StartWorkflowRequest(request_id=_rid(), workflow_json=body)
        )

    async def start_many(self, workflows: Sequence[Workflow | JobQueue]) -> list[StartOutcome]:
        """Start many workflows (or job queues) in one request; one outcome per item, in
        order (see :meth:`TaskDriver.start_many`)."""
        self._check_open()
        outcomes, items = start_items(workflows)
        for chunk in request_chunks(items):
            request = pb.StartManyRequest(request_id=_rid(), items=[e[1] for e in chunk])
            answer = await self._leader_client().call("StartMany", request)
            for (i, _item, _), reply in zip(chunk, answer.replies, strict=True):
                outcomes[i] = outcome(name_of(workflows[i]), reply)
        return [o for o in outcomes if o is not None]

    async def delete(self, name: str, force: bool = False) -> None:
        """Delete workflow ``name`` and everything under it; :class:`NotFound` if absent.
        ``force=True`` removes its znodes directly, with no controller needed (see
        :meth:`TaskDriver.delete`)."""
        self._check_open()
        if check_bool("force", force):
            await self._read("", "", self._force_delete, _wf(name))
            return
        await self._mutate(
            "DeleteWorkflow", pb.DeleteWorkflowRequest(request_id=_rid(), name=_wf(name))
        )

    async def delete_and_wait(self, name: str, timeout: float = 300.0) -> None:
        """Delete ``name`` and wait until no znode of it is left; :class:`PollTimeout`
        naming the state last seen if it is still there after ``timeout`` seconds."""
        check_timeout(timeout)  # before anything is deleted
        await self.delete(name)
        await self._waits_of().gone(_wf(name), timeout)

    async def stop(self, name: str) -> None:
        """Stop workflow ``name`` (running tasks are cancelled); returns once accepted."""
        self._check_open()
        await self._mutate("StopWorkflow", pb.WorkflowRequest(request_id=_rid(), name=_wf(name)))

    async def resume(self, name: str) -> None:
        """Resume a stopped workflow: stopped tasks run again."""
        self._check_open()
        await self._mutate("ResumeWorkflow", pb.WorkflowRequest(request_id=_rid(), name=_wf(name)))

    async def create_queue(self, queue: JobQueue) -> None:
        """Create and start a job queue; :class:`AlreadyExists` if the name is taken."""
        self._check_open()
        checked = JobQueue.from_dict(check_type("queue", queue, JobQueue).to_dict())
        request = pb.CreateQueueRequest(request_id=_rid(), queue_json=json.dumps(checked.to_dict()))
        await self._mutate("CreateQueue", request)

    async def enqueue_job(self, queue: str, job: str, job_config: JobConfig) -> None:
        """Append one job to ``queue``."""
        await self.enqueue_jobs(queue, {_job(job): job_config})

    async def enqueue_jobs(self, queue: str, jobs: Mapping[str, JobConfig]) -> None:
        """Append jobs in the given order, atomically (see :meth:`TaskDriver.enqueue_jobs`)."""
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
        await self._mutate("EnqueueJobs", request)

    # --- reads ----------------------------------------------------------------------------

    async def get_workflow_config(self, name: str) -> WorkflowConfig:
        """Workflow ``name``'s config; :class:`NotFound` if it does not exist."""
        path, what = self._paths.workflow_config(_wf(name)), f"workflow {name}"
        return await self._run(path, what, workflow_config_plan, name)

    async def get_workflow_context(self, name: str) -> WorkflowContext:
        """Workflow ``name``'s state and its jobs' states; :class:`NotFound` if absent."""
        path, what = self._paths.workflow_context(_wf(name)), f"workflow {name}"
        return await self._run(path, what, records.workflow_context_plan, name)

    async def get_job_config(self, name: str, job: str) -> JobConfig:
        """The config of job ``job`` (its short name) of workflow ``name``."""
        path, what = self._paths.job_config(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._run(path, what, visible_job_config, name, job)

    async def get_job_context(self, name: str, job: str) -> JobContext:
        """Job ``job``'s state and its tasks' records (``.tasks`` by partition number)."""
        path, what = self._paths.job_context(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._run(path, what, records.job_context_plan, name, job)

    async def get_last_scheduled_task_execution_info(self, name: str) -> TaskExecutionInfo | None:
        """See :meth:`TaskDriver.get_last_scheduled_task_execution_info`."""
        path, what = self._paths.workflow_context(_wf(name)), f"workflow {name}"
        return await self._run(path, what, last_scheduled_task_plan, name)

    async def get_last_scheduled_task_timestamp(self, name: str) -> datetime | None:
        """See :meth:`TaskDriver.get_last_scheduled_task_timestamp`."""
        info = await self.get_last_scheduled_task_execution_info(name)
        return info.start_time if info is not None else None

    async def get_task_result(self, name: str, job: str, task_id: str | int) -> JsonValue:
        """The value task ``task_id`` COMPLETED with (None when it returned none);
        :class:`~helixpy.errors.NoResult` while it has not completed, :class:`NotFound`
        when it does not exist (see :meth:`TaskDriver.get_task_result`)."""
        tid = task_name(task_id)
        path = self._paths.job_context(_wf(name), _job(job))
        return await self._run(path, "", task_result_plan, name, job, tid)

    async def get_job_results(self, name: str, job: str) -> dict[str, JsonValue]:
        """The values of job ``job``'s COMPLETED tasks, by task id."""
        path, what = self._paths.job_context(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._run(path, what, job_results_plan, name, job)

    # --- polls and watches ----------------------------------------------------------------

    async def poll_for_workflow_state(
        self, name: str, *states: TaskState | str, timeout: float = 300.0
    ) -> TaskState:
        """Wait until workflow ``name`` is in one of ``states``; return the state reached.
        A workflow not yet visible counts as "not yet"; :class:`PollTimeout` (with
        ``last_state``) when none is seen within ``timeout`` seconds."""
        self._check_open()
        wanted = wanted_states(states)
        check_timeout(timeout)
        name = _wf(name)
        path = self._paths.workflow_context(name)
        return await self._waits_of().state(
            f"workflow {name}", path, workflow_state, wanted, timeout
        )

    async def poll_for_workflows(
        self, names: Sequence[str], *states: TaskState | str, timeout: float = 300.0
    ) -> dict[str, TaskState]:
        """Wait until every workflow of ``names`` is in one of ``states``; the state each
        reached, in the order of ``names`` (see :meth:`TaskDriver.poll_for_workflows`):
        one ``sync``, pipelined reads, then one read per change."""
        self._check_open()
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise InvalidConfig("names", "must be a list of workflow names")
        wanted = wanted_states(states)
        check_timeout(timeout)
        return await self._waits_of().states([_wf(n) for n in names], wanted, timeout)

    async def poll_for_job_state(
        self, name: str, job: str, *states: TaskState | str, timeout: float = 300.0
    ) -> TaskState:
        """Wait until job ``job`` of workflow ``name`` is in one of ``states`` (on a
        recurring template: the job of its last clone)."""
        self._check_open()
        wanted = wanted_states(states)
        deadline = time.monotonic() + check_timeout(timeout)
        name, job = _wf(name), _job(job)
        waits = self._waits_of()
        target = await waits.last_clone_or_self(name, deadline)
        path = self._paths.job_context(target, job)
        left = max(deadline - time.monotonic(), 0.0)
        return await waits.state(f"job {target}/{job}", path, job_state, wanted, left)

    def watch(self, name: str, *, timeout: float | None = None) -> WorkflowWatch:
        """``async for event in driver.watch(name)``: the workflow's current state, then
        each change, until a final state (see :class:`WorkflowWatch` for what ends it and
        what it raises). ``timeout`` (seconds, None: no limit) bounds the whole watch."""
        self._check_open()
        if timeout is not None:
            check_timeout(timeout)
        return WorkflowWatch(self._waits_of(), _wf(name), timeout)

    # --- plumbing ---------------------------------------------------------------------------

    async def _force_delete(self, session: Session, paths: Paths, name: str) -> None:
        try:
            # CONFIG first: a leader finding the rest treats it as a cut-short delete.
            await session.delete(paths.workflow_config(name))
        except NoNodeError:
            if not await session.exists(paths.workflow(name)):
                raise NotFound(
                    f"workflow {name} does not exist in cluster {paths.cluster}"
                ) from None
        await reads.delete_tree(session, paths.workflow(name))
        with contextlib.suppress(NoNodeError):  # finished ones have none
            await session.delete(paths.active_entry(name))


def _rid() -> str:
    return uuid.uuid4().hex


def visible_job_config(paths: Paths, name: str, job: str) -> Plan[JobConfig]:
    """A job's config without the tasks deleted from it (what users see)."""
    return records.job_config_plan(paths, name, job, hide_deleted=True)


__all__ = ["AsyncTaskDriver"]
