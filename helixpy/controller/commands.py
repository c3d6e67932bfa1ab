"""Driver mutations, applied on the pipeline thread.

Each carries a request id. The reply of a successful mutation is stored in a request node
written in the same fenced multi as the mutation's decisive batch (start: the last, with
CONFIG; delete: the first, removing CONFIG), so a driver that retries after a leader change
(same id) gets the stored reply instead of applying it twice.
Start writes the workflow's CONFIG last and delete removes it first: a workflow directory
without CONFIG is a start or delete cut short, which a new leader finishes removing.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from kazoo.exceptions import NodeExistsError, NoNodeError

from helixpy.controller.admin import ADMIN_COMMANDS
from helixpy.controller.dynamic import DYNAMIC_COMMANDS
from helixpy.controller.enqueues import EnqueueBatch
from helixpy.controller.groupcommit import GroupCommit
from helixpy.controller.loader import load_workflow, new_workflow_runtime
from helixpy.controller.prefetch import Prefetch
from helixpy.controller.queues import QUEUE_COMMANDS
from helixpy.controller.replies import OK, reply
from helixpy.controller.rules import evaluate_workflow
from helixpy.controller.runtime import JobRuntime, WorkflowRuntime, job_header, workflow_context
from helixpy.controller.schedules import CLONE_SUFFIX_LEN
from helixpy.controller.signals import Command
from helixpy.controller.targeting import TARGET_COMMANDS
from helixpy.errors import AlreadyExists, CorruptNode, InvalidConfig, NotFound, PayloadTooLarge
from helixpy.model import JobConfig, JobQueue, ScheduleConfig, Workflow
from helixpy.store.codec import decode, encode
from helixpy.store.fencing import MultiFailed
from helixpy.store.ops import Create, Op
from helixpy.store.records import StoredWorkflow, job_config_ops, job_context_ops

if TYPE_CHECKING:
    from helixpy.controller.pipeline import Pipeline

log = logging.getLogger(__name__)

#: commands whose effect is one named workflow, which they mark touched themselves; any
#: other makes the pass sweep every resident workflow (controller/worklist)
TOUCHING = frozenset({"start", "enqueue"})


@dataclass
class _InFlight:
    """A start whose multi was sent: answered with ``result`` once ``wait`` returns."""

    command: Command
    wait: Callable[[], None]
    register: Callable[[], None]
    result: dict[str, str] = field(default_factory=dict)
    #: written without reading first: if something it creates exists, it is decided again
    #: with the reads (a retry, a name taken, a half-written start)
    optimistic: bool = False


class _Careful(Exception):
    """Control flow: an optimistic start must be decided with the reads after all."""


class CommandHandler:
    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline
        #: reads sent ahead for a burst of starts (see ``prefetch``)
        self.ahead = Prefetch(pipeline.zk, pipeline.paths)
        #: a burst's starts whose commits are in flight; None outside a burst
        self._inflight: list[_InFlight] | None = None
        #: a burst's starts collected into shared multis; None outside a burst
        self._group: GroupCommit | None = None
        #: consecutive enqueues to one queue, written together
        self._batch: EnqueueBatch | None = None
        self._current: Command | None = None
        #: in a burst: starts of workflows not resident are written without reading first
        self._optimistic = False

    def handle_all(self, commands: list[Command], now: datetime) -> None:
        """Apply and answer ``commands`` in order.

        A burst of independent starts (see :mod:`~helixpy.controller.prefetch`) has its
        reads sent ahead, and its starts written many per multi
        (:mod:`~helixpy.controller.groupcommit`), sent without waiting: 1,000 starts cost a
        few round trips per pass, not four each. A start is answered, and its workflow
        known to the pass, only once its multi succeeded.
        """
        burst = self.ahead.send(commands, skip=self._goes_optimistic)
        self._inflight = []
        self._group = GroupCommit(self.p.writer) if burst else None
        self._optimistic = burst
        try:
            for cmd in commands:
                self.handle(cmd, now)
        except BaseException:
            # The first failure is the one to report (a Fenced must not be masked by a
            # connection loss of a start still in flight); the in-flight ones are settled.
            inflight, self._inflight = self._inflight or [], None
            self._optimistic = False
            self.ahead.clear()
            with contextlib.suppress(Exception):
                self._flush_group()
            with contextlib.suppress(Exception):
                self._settle(inflight, now)
            raise
        inflight, self._inflight = self._inflight or [], None
        self._optimistic = False
        self.ahead.clear()
        self._flush_group()
        self._settle(inflight, now)

    def _goes_optimistic(self, cmd: Command) -> bool:
        """Whether a start of a burst is written without reading first: its workflow is not
        resident, so it most likely does not exist (its multi fails if anything it creates
        does, and nothing of it is applied; it is then decided with the reads)."""
        return cmd.kind == "start" and cmd.payload.name not in self.p.workflows

    def _flush_group(self) -> None:
        group, self._group = self._group, None
        if group is not None:
            group.flush()
        self._write_batch()

    def enqueue_batch(self, wf: WorkflowRuntime) -> EnqueueBatch:
        """The pending enqueues to ``wf`` (a new batch if they were to another queue)."""
        if self._batch is not None and self._batch.wf is wf:
            return self._batch
        self._write_batch()
        self._batch = EnqueueBatch(wf, wf.stored)
        return self._batch

    def _write_batch(self) -> None:
        batch, self._batch = self._batch, None
        if batch is not None:
            batch.write(self.p.writer, self.p.paths)

    def answer_when_written(self, cmd: Command, wait: Callable[[], None]) -> None:
        """Answer ``cmd`` once ``wait`` returns (its write landed), not before."""
        if self._inflight is None:  # outside handle_all: write now
            self._write_batch()
            wait()
            return
        self._inflight.append(_InFlight(cmd, wait, lambda: None))

    def _settle(self, inflight: list[_InFlight], now: datetime) -> None:
        """Wait for each in-flight start in order; answer it; raise the first failure."""
        failure: BaseException | None = None
        for entry in inflight:
            try:
                try:
                    entry.wait()
                except MultiFailed as exc:
                    if not (entry.optimistic and isinstance(exc.error, NodeExistsError)):
                        raise
                    self.handle(entry.command, now)  # with the reads; it answers itself
                    continue
            except BaseException as exc:
                # As in ``handle``: the pass fails and is retried, the driver retries.
                if not entry.command.future.done():
                    entry.command.future.set_exception(exc)
                failure = failure or exc
                continue
            entry.register()
            if not entry.command.future.done():
                entry.command.future.set_result(entry.result)
        if failure is not None:
            raise failure

    def handle(self, cmd: Command, now: datetime) -> None:
        """Apply ``cmd`` and answer its future.

        Bad input is answered (INVALID_CONFIG, NOT_FOUND, ALREADY_EXISTS); anything else
        fails the future and propagates, so the pass is retried and the driver retries.
        """
        self._current = cmd
        optimistic = self._optimistic and self._goes_optimistic(cmd)
        if cmd.kind not in TOUCHING:
            # Its reach is not one known workflow (an instance, a setting, a delete): the
            # pass looks at everything (controller/worklist).
            self.p.work.sweep_next()
        try:
            if cmd.kind != "enqueue":
                self._write_batch()  # what it may read must be written first
            if optimistic:
                try:
                    result = self._start(cmd, now, optimistic=True)
                except _Careful:
                    result = self._decide(cmd, now)
            else:
                result = self._decide(cmd, now)
        except InvalidConfig as exc:
            result = reply("INVALID_CONFIG", str(exc), field=exc.field, rule=exc.rule)
        except AlreadyExists as exc:
            result = reply("ALREADY_EXISTS", str(exc))
        except NotFound as exc:
            result = reply("NOT_FOUND", str(exc))
        except PayloadTooLarge as exc:
            result = reply("INVALID_CONFIG", str(exc), field="workflow", rule=str(exc))
        except BaseException as exc:
            # Fenced, a lost session, a ZooKeeper error: the pass fails and is retried; the
            # caller hears UNAVAILABLE and retries with the same request id.
            if not cmd.future.done():
                cmd.future.set_exception(exc)
            raise
        finally:
            self._current = None
        if self._inflight and self._inflight[-1].command is cmd:
            self._inflight[-1].result = result  # answered when its multi lands (_settle)
        elif not cmd.future.done():
            cmd.future.set_result(result)

    def _decide(self, cmd: Command, now: datetime) -> dict[str, str]:
        """Apply ``cmd`` (its stored reply first, if it is a retry); return the reply."""
        stored = self._stored_reply(cmd.request_id)
        if stored is not None:
            out = stored
            if cmd.kind == "delete" and self.p.zk.exists(self.p.paths.workflow(cmd.payload)):
                # The first attempt was cut short after its first batch: finish it.
                self.p.removal.remove_workflow(cmd.payload)
            if cmd.kind == "start" and isinstance(cmd.payload, Workflow | JobQueue):
                # The first attempt's multi landed but its answer was lost (a connection
                # blip): the workflow exists in ZooKeeper, maybe not yet in this pass.
                self._adopt(cmd.payload.name)
        elif cmd.kind == "start":
            out = self._start(cmd, now)
        elif cmd.kind == "delete":
            out = self._delete(cmd)
        elif cmd.kind in ADMIN_COMMANDS:
            out = ADMIN_COMMANDS[cmd.kind](self, cmd, now)
        elif cmd.kind in QUEUE_COMMANDS:
            out = QUEUE_COMMANDS[cmd.kind](self, cmd, now)
        elif cmd.kind in DYNAMIC_COMMANDS:
            out = DYNAMIC_COMMANDS[cmd.kind](self, cmd, now)
        elif cmd.kind in TARGET_COMMANDS:
            out = TARGET_COMMANDS[cmd.kind](self, cmd, now)
        else:
            out = reply(
                "INVALID_CONFIG", f"unknown command {cmd.kind}", field="command", rule="unknown"
            )
        return out

    def _adopt(self, name: str) -> None:
        """Load workflow ``name`` from ZooKeeper if it is stored but not known here."""
        if name in self.p.workflows or not self.p.zk.exists(self.p.paths.active_entry(name)):
            return  # known, or retired (finished and out of the hot set) already
        loaded = load_workflow(self.p.zk, self.p.paths, name)
        if isinstance(loaded, WorkflowRuntime):
            self.p.workflows[name] = loaded
            self.p.work.touch(name)
            log.info("workflow %s adopted: its start landed, its answer was lost", name)

    def resident(self, name: str, what: str = "workflow") -> WorkflowRuntime:
        """The active workflow ``name``: :class:`NotFound` if there is none, InvalidConfig
        if it finished and left the hot set (readable in ZooKeeper until it expires)."""
        runtime = self.p.workflows.get(name)
        if runtime is not None:
            return runtime
        state = self.retired_state(name)
        if state is None:
            raise NotFound(f"{what} {name} does not exist")
        raise InvalidConfig("workflow", f"{name} has finished ({state}): it can no longer change")

    def retired_state(self, name: str) -> str | None:
        """The final state of a stored workflow that is not in the hot set (None: no such)."""
        paths = self.p.paths
        if "/" in name or not self.p.zk.exists(paths.workflow_config(name)):
            return None
        try:
            ctx = decode(self.p.zk.get(paths.workflow_context(name))[0]) or {}
        except (NoNodeError, CorruptNode):
            return None
        return str(ctx.get("state", "UNKNOWN"))

    def _stored_reply(self, request_id: str) -> dict[str, str] | None:
        data = self.ahead.get(self.p.paths.request(request_id))
        if data is None:
            return None
        return dict(decode(data) or reply(OK))

    def request_op(self, request_id: str, result: dict[str, str]) -> Op:
        path = self.p.paths.request(request_id)
        self.p.replies.written(path)
        return Create(path, encode(result, path=path))

    def new_job_ops(self, wf: str, job: JobRuntime) -> list[Op]:
        """Creates for one new job: config (+ task-config chunks) and its context.

        User content nodes are created by their first write (store/content.py).
        """
        paths = self.p.paths
        ops = job_config_ops(paths, wf, job.name, job.config)
        header = job_header(job)  # as the runtime holds it (a new job: NOT_STARTED)
        return ops + job_context_ops(paths, wf, job.name, header, job.tasks, None, create=True)

    def check_recurrence(self, schedule: ScheduleConfig) -> None:
        """Refuse a recurring schedule below the cluster's ``min_recurrence_interval``
        (default 60 s, Helix's floor): at start and at every config update."""
        minimum = float(self.p.cluster_config.get("min_recurrence_interval", 60.0))
        interval = schedule.recurrence_interval
        if interval is not None and interval < minimum:
            raise InvalidConfig(
                "schedule.recurrence_interval",
                f"must be >= the cluster's min_recurrence_interval ({minimum:g}s)",
            )

    def _start(self, cmd: Command, now: datetime, optimistic: bool = False) -> dict[str, str]:
        wf: Workflow | JobQueue = cmd.payload
        kind = "queue" if isinstance(wf, JobQueue) else "workflow"
        schedule = wf.config.schedule
        if schedule is not None and isinstance(wf, JobQueue) and not schedule.is_recurring:
            # (Helix's recurring queue is a template; a queue that only starts later has
            # nothing to wait for: its jobs wait for their enqueue anyway)
            raise InvalidConfig(
                "queue.config.schedule",
                "a job queue takes a recurring schedule only (recurrence_interval)",
            )
        if schedule is not None and schedule.is_recurring:
            self.check_recurrence(schedule)
            if len(wf.name) > 128 - CLONE_SUFFIX_LEN:
                raise InvalidConfig(
                    "workflow.name",
                    f"a recurring workflow's name is at most {128 - CLONE_SUFFIX_LEN} "
                    "characters (its clones add a timestamp)",
                )
        result = reply(OK, f"{kind} {wf.name} started")
        if isinstance(wf, JobQueue):
            stored = StoredWorkflow(
                name=wf.name,
                config=wf.config,
                parents={},
                uid=uuid.uuid4().hex,
                queue=tuple(wf.jobs),
            )
        else:
            stored = StoredWorkflow(
                name=wf.name, config=wf.config, parents=wf.parents, uid=uuid.uuid4().hex
            )
        request_op = self.request_op(cmd.request_id, result)
        self.create_workflow(stored, dict(wf.jobs), request_op, optimistic=optimistic, now=now)
        return result

    def create_workflow(
        self,
        stored: StoredWorkflow,
        jobs: dict[str, JobConfig],
        request_op: Op | None,
        optimistic: bool = False,
        now: datetime | None = None,
    ) -> None:
        """Write a new workflow (or queue, or clone) and add its runtime.

        CONFIG goes last, with the request node: its presence marks a complete start.
        ``optimistic``: nothing is read first (see ``_goes_optimistic``); raises
        :class:`_Careful` if it cannot be written with the burst's other starts.
        With ``now``, the workflow is evaluated first (``rules.evaluate_workflow``, as the
        pass would) and created in that state: the pass that follows finds its contexts
        current and rewrites none of them (a one-task workflow's IN_PROGRESS cost a
        context write per start, and a sync start waited for that write's pass).
        """
        paths, name = self.p.paths, stored.name
        if not optimistic:
            if self.ahead.exists(paths.workflow_config(name)):
                raise AlreadyExists(f"workflow {name} already exists")
            # Known here but gone from ZooKeeper: force-deleted while we led. Forget it.
            self.p.workflows.pop(name, None)
            if self.ahead.exists(paths.workflow(name)):
                if self._group is not None:
                    self._group.flush()  # what came before goes first
                self.p.removal.remove_tree(paths.workflow(name))  # a half-written earlier start
        runtime = new_workflow_runtime(stored, jobs)
        wakeup = evaluate_workflow(runtime, now) if now is not None else None
        # First: a start cut short is found by the next leader through this entry.
        ops: list[Op] = (
            []
            if not optimistic and self.ahead.exists(paths.active_entry(name))
            else [Create(paths.active_entry(name))]
        )
        ops += [
            Create(paths.workflow(name)),
            Create(paths.workflow_context(name), encode(workflow_context(runtime))),
            Create(paths.jobs(name)),
        ]
        for job in runtime.jobs.values():
            ops += self.new_job_ops(name, job)
        config_path = paths.workflow_config(name)
        ops.append(Create(config_path, encode(stored.to_dict(), path=config_path)))
        if request_op is not None:
            ops.append(request_op)

        # What was created is what the runtime holds now.
        runtime.context_dirty = False
        for job in runtime.jobs.values():
            job.header_dirty = False
            job.dirty_chunks.clear()

        def register() -> None:
            self.p.workflows[name] = runtime
            self.p.work.timers.set(name, wakeup)
            self.p.work.touch(name)
            self.p.watch_config(name)
            # debug: at a thousand starts a second, a line each is a real share of the pass
            log.debug("workflow %s started (%d jobs)", name, len(runtime.jobs))

        if self._group is not None and self._current is not None and request_op is not None:
            wait = self._group.add(ops)
            if wait is not None:  # written with the burst's other starts (group commit)
                assert self._inflight is not None
                self._inflight.append(
                    _InFlight(self._current, wait, register, optimistic=optimistic)
                )
                return
        if optimistic:
            raise _Careful(name)  # too big for one multi: written on its own, after reads
        if self._group is not None:
            self._group.flush()  # what came before goes first
        self.p.writer.commit(ops)
        register()

    def _delete(self, cmd: Command) -> dict[str, str]:
        name = str(cmd.payload)
        paths = self.p.paths
        runtime = self.p.workflows.pop(name, None)
        if runtime is None and not self.p.zk.exists(paths.workflow(name)):
            raise NotFound(f"workflow {name} does not exist")
        result = reply(OK, f"workflow {name} deleted")
        # The workflow's attempts leave the assignments at the end of this pass; the
        # participants cancel them when their entries disappear.
        self.p.removal.remove_workflow(name, self.request_op(cmd.request_id, result))
        # A recurring template takes its clones with it.
        for clone in runtime.scheduled if runtime is not None else ():
            self.p.workflows.pop(clone, None)
            self.p.removal.remove_workflow(clone)
        log.info("workflow %s deleted", name)
        return result
