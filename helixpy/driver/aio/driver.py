"""``AsyncTaskDriver``: the TaskDriver's surface as coroutines, on one asyncio event loop.

Mutations go over ``grpc.aio`` to the leader controller (:mod:`.leader`); reads go to
ZooKeeper through kazoo's asynchronous API after a ``sync`` (:mod:`.reads`), and polls and
watches wait on ZooKeeper watches (:mod:`.watch`). No call takes a thread: the threads are
kazoo's own (three per driver) and grpc's, however many calls and watches are in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar

from kazoo.exceptions import KazooException, NoAuthError, NoNodeError
from kazoo.retry import KazooRetry

from helixpy.driver.aio import reads
from helixpy.driver.aio.content import ContentMethods
from helixpy.driver.aio.leader import AsyncLeaderClient
from helixpy.driver.aio.mutations import MutationMethods
from helixpy.driver.aio.session import Session, zk_error
from helixpy.driver.aio.watch import Waits, WorkflowWatch
from helixpy.driver.base import (
    NoNode,
    check_bool,
    check_type,
    reply_error,
)
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import workflow_name as _wf
from helixpy.driver.leader import SAFETY_WAKE, TRANSIENT_ZK
from helixpy.driver.polling import (
    check_timeout,
    is_seconds,
    job_state,
    wanted_states,
    workflow_state,
)
from helixpy.driver.submit import StartOutcome, _chunks, _name_of, _outcome, start_items
from helixpy.errors import ClusterUnavailable, HelixpyError, InvalidConfig, NotFound
from helixpy.model import (
    JobConfig,
    JobContext,
    JobQueue,
    TaskState,
    Workflow,
    WorkflowConfig,
    WorkflowContext,
)
from helixpy.model.names import check_name
from helixpy.model.values import JsonValue
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.security import ClientTls
from helixpy.store.client import CountingClient, reconnect_policy, zk_auth_settings
from helixpy.store.handler import PollHandler
from helixpy.store.paths import Paths

_T = TypeVar("_T")
_P = ParamSpec("_P")
#: The ZooKeeper session timeout, as the sync driver's (``store.client.connect``'s default).
_SESSION_TIMEOUT = 10.0


class AsyncTaskDriver(MutationMethods, ContentMethods):
    """A client of one helixpy cluster for asyncio code.

    The arguments, method names, results and errors are :class:`~helixpy.driver.TaskDriver`'s;
    the methods are coroutines. Use it as ``async with AsyncTaskDriver(zk, cluster) as d``
    (or ``d = await AsyncTaskDriver.open(zk, cluster)`` ... ``await d.close()``). A driver
    belongs to the event loop that connected it; many coroutines of that loop may use it at
    once. ``timeout`` bounds connecting, each mutation (waiting for a leader included) and
    each read; polls and :meth:`watch` take their own.
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
        if not is_seconds(timeout) or not 0 < timeout < math.inf:
            raise InvalidConfig("timeout", f"must be a finite number of seconds > 0: {timeout!r}")
        self._paths = Paths(cluster)
        self._hosts = zk
        self._timeout = float(timeout)
        self._zk_auth = zk_auth_settings(zk_auth)  # checked now: InvalidConfig
        self._tls = tls
        self._token = token
        self._session: Session | None = None
        self._leader: AsyncLeaderClient | None = None
        self._waits: Waits | None = None
        self._closed = False

    # --- connection -----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        zk: str,
        cluster: str,
        *,
        timeout: float = 10.0,
        zk_auth: str | None = None,
        tls: ClientTls | None = None,
        token: str | None = None,
    ) -> AsyncTaskDriver:
        """A connected driver (call :meth:`close` when done)."""
        driver = cls(zk, cluster, timeout=timeout, zk_auth=zk_auth, tls=tls, token=token)
        return await driver.connect()

    async def connect(self) -> Self:
        """Open the ZooKeeper session; :class:`ClusterUnavailable` when ZooKeeper is not
        reached within the timeout. Idempotent; the gRPC channel opens at the first
        mutation."""
        if self._closed:
            raise HelixpyError("the AsyncTaskDriver is closed")
        if self._session is not None:
            return self
        cluster = self._paths.cluster
        auth_data, default_acl = self._zk_auth
        try:
            zk = CountingClient(
                hosts=self._hosts,
                timeout=_SESSION_TIMEOUT,
                connection_retry=reconnect_policy(),
                command_retry=KazooRetry(max_tries=5, delay=0.05, backoff=2, max_delay=1.0),
                auth_data=auth_data or None,
                default_acl=default_acl,
                handler=PollHandler(),
            )
        except (ValueError, TypeError, KazooException) as exc:
            raise ClusterUnavailable(f"cluster {cluster}: bad ZooKeeper address: {exc}") from exc
        session = Session(zk, asyncio.get_running_loop())
        zk.start_async()  # kazoo's connection thread connects; its listener tells the loop
        if not await session.wait_connected(time.monotonic() + self._timeout):
            session.close()
            zk.stop()
            zk.close()
            raise ClusterUnavailable(
                f"cluster {cluster}: cannot reach ZooKeeper at {self._hosts} within "
                f"{self._timeout:g}s"
            )
        self._session = session
        self._leader = AsyncLeaderClient(
            session, self._paths, self._timeout, tls=self._tls, token=self._token
        )
        self._waits = Waits(
            session,
            self._paths,
            self._timeout,
            check_open=self._check_open,
            get_workflow_config=self.get_workflow_config,
        )
        return self

    async def __aenter__(self) -> Self:
        return await self.connect()

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the gRPC channels and the ZooKeeper session; idempotent. Watches and
        polls still waiting raise :class:`HelixpyError` (the driver is closed)."""
        if self._closed:
            return
        self._closed = True
        if self._leader is not None:
            await self._leader.close()
        if self._session is not None:
            self._session.close()
            zk = self._session.zk
            zk.stop()  # sends the session's close and joins kazoo's threads (a few ms)
            zk.close()

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
        for chunk in _chunks(items):
            request = pb.StartManyRequest(request_id=_rid(), items=[e[1] for e in chunk])
            answer = await self._leader_client().call("StartMany", request)
            for (i, _item, _), reply in zip(chunk, answer.replies, strict=True):
                outcomes[i] = _outcome(_name_of(workflows[i]), reply)
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
        return await self._read(path, what, reads.read_workflow_config, name)

    async def get_workflow_context(self, name: str) -> WorkflowContext:
        """Workflow ``name``'s state and its jobs' states; :class:`NotFound` if absent."""
        path, what = self._paths.workflow_context(_wf(name)), f"workflow {name}"
        return await self._read(path, what, reads.read_workflow_context, name)

    async def get_job_config(self, name: str, job: str) -> JobConfig:
        """The config of job ``job`` (its short name) of workflow ``name``."""
        path, what = self._paths.job_config(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._read(path, what, reads.read_job_config, name, job)

    async def get_job_context(self, name: str, job: str) -> JobContext:
        """Job ``job``'s state and its tasks' records (``.tasks`` by partition number)."""
        path, what = self._paths.job_context(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._read(path, what, reads.read_job_context, name, job)

    async def get_task_result(self, name: str, job: str, task_id: str | int) -> JsonValue:
        """The value task ``task_id`` COMPLETED with (None when it returned none);
        :class:`~helixpy.errors.NoResult` while it has not completed, :class:`NotFound`
        when it does not exist (see :meth:`TaskDriver.get_task_result`)."""
        tid = str(task_id) if isinstance(task_id, int) else check_name("task.id", task_id)
        path = self._paths.job_context(_wf(name), _job(job))
        return await self._read(path, "", reads.read_task_result, name, job, tid)

    async def get_job_results(self, name: str, job: str) -> dict[str, JsonValue]:
        """The values of job ``job``'s COMPLETED tasks, by task id."""
        path, what = self._paths.job_context(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._read(path, what, reads.read_job_results, name, job)

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

    # --- plumbing -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise HelixpyError("the AsyncTaskDriver is closed")
        if self._session is None:
            raise HelixpyError(
                "the AsyncTaskDriver is not connected (use `async with` or `await connect()`)"
            )

    def _session_of(self) -> Session:
        self._check_open()
        assert self._session is not None
        return self._session

    def _leader_client(self) -> AsyncLeaderClient:
        self._check_open()
        assert self._leader is not None
        return self._leader

    def _waits_of(self) -> Waits:
        self._check_open()
        assert self._waits is not None
        return self._waits

    async def _mutate(self, method: str, request: Any) -> None:
        error = reply_error(method, await self._leader_client().call(method, request))
        if error is not None:
            raise error

    async def _read(
        self,
        path: str,
        what: str,
        read: Callable[Concatenate[Session, Paths, _P], Awaitable[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``read(session, paths, *args)`` after syncing ``path``, retried across
        reconnects within the timeout (as :meth:`DriverBase._read`)."""
        session = self._session_of()
        cluster = self._paths.cluster
        deadline = time.monotonic() + self._timeout
        backoff = 0.05
        while True:
            if not await session.wait_connected(deadline):
                self._check_open()
                raise self._unavailable("ZooKeeper is not reachable")
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0.0)):
                    if path:
                        await session.sync(path)
                    return await read(session, self._paths, *args, **kwargs)
            except NotFound:
                if not what:
                    raise
                raise NotFound(f"{what} does not exist in cluster {cluster}") from None
            except TRANSIENT_ZK as exc:
                if time.monotonic() + backoff >= deadline:
                    raise self._unavailable(f"ZooKeeper failed ({exc!r})") from exc
            except TimeoutError:
                raise self._unavailable("ZooKeeper did not answer") from None
            except NoNodeError as exc:
                thing = what or path or "a znode it needs"
                raise NoNode(f"{thing} does not exist in cluster {cluster}") from exc
            except (NoAuthError, KazooException) as exc:
                raise zk_error(cluster, what or path, exc) from exc
            # kazoo fails the pending requests before it tells listeners the connection is
            # gone, so back off briefly instead of trusting wait_connected at once.
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, SAFETY_WAKE)

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

    def _unavailable(self, why: str) -> ClusterUnavailable:
        return ClusterUnavailable(f"cluster {self._paths.cluster}: {why} within {self._timeout:g}s")


def _rid() -> str:
    return uuid.uuid4().hex


__all__ = ["AsyncTaskDriver"]
