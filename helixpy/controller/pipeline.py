"""One pipeline pass: read what changed, decide, write contexts first, then assignments.

Runs on the leader's single pipeline thread; nothing else touches the runtime. Every write
goes through the leader's :class:`~helixpy.store.fencing.FencedWriter`, so a deposed leader's
pass fails with :class:`~helixpy.errors.Fenced` and changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.controller import rules
from helixpy.controller.commands import CommandHandler
from helixpy.controller.contexts import context_ops, written
from helixpy.controller.late_tasks import start_late_bound
from helixpy.controller.loader import Broken, load_workflows
from helixpy.controller.membership import Membership
from helixpy.controller.metrics import ControllerMetrics
from helixpy.controller.overlap import Overlap
from helixpy.controller.queues import purge_due
from helixpy.controller.quota import Quotas
from helixpy.controller.removal import Removal
from helixpy.controller.replies import REQUEST_TTL, ReplyLog
from helixpy.controller.retention import ExpiryIndex, is_retirable
from helixpy.controller.runtime import (
    ABORT,
    DROP,
    MOVE,
    RUN,
    STOP,
    JobRuntime,
    LiveInstance,
    WorkflowRuntime,
    job_header,
)
from helixpy.controller.schedules import run_schedules
from helixpy.controller.signals import ALL_WORKFLOWS, Pending, Signals
from helixpy.controller.targeting import (
    PartitionMap,
    allowed_instances,
    has_moved,
)
from helixpy.controller.worklist import WorkList
from helixpy.errors import CorruptNode
from helixpy.model import TaskState
from helixpy.model.context import cap_info
from helixpy.model.limits import Limits
from helixpy.store.client import forget_data_watch
from helixpy.store.codec import decode, encode
from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Create, Delete, Op, SetData
from helixpy.store.partitions import read_partitions
from helixpy.store.paths import Paths
from helixpy.store.records import (
    job_context_ops,
    job_states_chunks,
    read_cluster_config,
    stored_chunks,
)

log = logging.getLogger(__name__)
_STOPPED = (TaskState.STOPPING, TaskState.STOPPED)


class Pipeline:
    """The leader's state and its pass. Created per leadership term."""

    def __init__(
        self,
        zk: KazooClient,
        paths: Paths,
        writer: FencedWriter,
        signals: Signals,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.zk = zk
        #: events and levels for Prometheus (None: not collected)
        self.metrics = metrics
        self.paths = paths
        self.writer = writer
        self.signals = signals
        self.workflows: dict[str, WorkflowRuntime] = {}
        self.instances: dict[str, LiveInstance] = {}
        #: what each ASSIGNMENT node holds now (as last read or written)
        self.assignments: dict[str, dict[str, Any]] = {}
        #: the stored replies this term wrote, oldest first (pruned after REQUEST_TTL)
        self.replies = ReplyLog(zk, paths, writer)
        #: deletes and purges of workflow trees (CONFIG first, the ACTIVE entry last)
        self.removal = Removal(zk, paths, writer)
        self.commands = CommandHandler(self)
        self.members = Membership(self)
        self.next_wakeup: float | None = None
        self.passes = 0
        self._next_request_prune = 0.0
        self.quotas = Quotas()
        self.cluster_config: dict[str, Any] = {}
        self.limits = Limits()
        #: every instance's partition records (targeted jobs); the leader is their writer
        self.partitions = PartitionMap()
        #: finished workflows retained in ZooKeeper, by due time (never in memory)
        self.expiry = ExpiryIndex(zk, paths, writer)
        #: what this pass must look at: touched, due, busy, candidates (controller/worklist)
        self.work = WorkList()

    # --- takeover -------------------------------------------------------------------------

    def set_cluster_config(self, config: Mapping[str, Any]) -> None:
        """Adopt cluster settings the pass acts on (quota types, minimum recurrence)."""
        self.cluster_config = dict(config)
        #: read by the gRPC handlers (another thread): replaced whole, never changed
        self.limits = Limits.of(self.cluster_config)
        self.quotas = Quotas(dict(config.get("quota_types") or {}))

    def load(self) -> None:
        """Rebuild everything from ZooKeeper; half-written workflows are finished off."""
        now = datetime.now(UTC)
        self.set_cluster_config(read_cluster_config(self.zk, self.paths))
        errors: list[str] = []
        self.partitions = PartitionMap(read_partitions(self.zk, self.paths, errors=errors))
        for error in errors:
            log.error("partition record ignored: %s", error)
        if self.zk.exists(self.paths.layout) is None:
            self._build_indexes(now)
        self.expiry.load()
        for item in load_workflows(self.zk, self.paths, self.paths.active):
            if isinstance(item, str):
                log.warning("workflow %s was half written or half deleted; removing it", item)
                self.removal.remove_workflow(item)
            elif isinstance(item, Broken):
                self.mark_broken(item.name, item.reason, now)
            else:
                self.workflows[item.name] = item
                self._remove_orphan_jobs(item)
        for name in self.workflows:
            self.watch_config(name)
        log.info(
            "loaded %d active workflows (finished ones stay in ZooKeeper, indexed by expiry)",
            len(self.workflows),
        )
        if self.metrics is not None:
            self.metrics.baseline(self.workflows.values())
        try:
            for inst in self.zk.get_children(self.paths.instances):
                try:
                    data, _ = self.zk.get(self.paths.assignment(inst))
                    self.assignments[inst] = dict(decode(data) or {})
                except (NoNodeError, CorruptNode):
                    continue
        except NoNodeError:
            pass

    def _build_indexes(self, now: datetime) -> None:
        """Once per cluster (created before the indexes existed): scan every workflow,
        index the active ones in ACTIVE and the finished ones in EXPIRY, then mark it done.
        Safe to repeat if cut short: entries already there are kept."""
        log.info("building the ACTIVE and EXPIRY indexes from every stored workflow")
        for path in (self.paths.active, self.paths.expiry):
            if self.zk.exists(path) is None:
                self.writer.commit([Create(path)])
        indexed = set(self.zk.get_children(self.paths.active))
        ops: list[Op] = []
        finished: list[WorkflowRuntime] = []
        for item in load_workflows(self.zk, self.paths, self.paths.workflows):
            name = item if isinstance(item, str) else item.name
            if isinstance(item, WorkflowRuntime) and is_retirable(item):
                finished.append(item)
            elif name not in indexed:
                ops.append(Create(self.paths.active_entry(name)))
        self.expiry.load()
        retire, committed = self.expiry.retire_ops(finished)
        ops += [op for op in retire if not isinstance(op, Delete)]  # none is in ACTIVE
        self.writer.commit([*ops, Create(self.paths.layout)])
        committed()

    def watch_config(self, name: str) -> None:
        """Arm a watch on an active workflow's CONFIG: a delete by anyone (a driver's force
        delete with no controller involved, a zkCli user) reaches the next pass."""
        path = self.paths.workflow_config(name)
        sent = self.zk.exists_async(path, watch=self.signals.mark_workflow)

        def landed(result: Any) -> None:
            # Gone already (or unknown after a connection loss): the pass re-checks.
            if not result.successful() or result.value is None:
                self.signals.mark_workflow_path(path)

        sent.rawlink(landed)

    def _recheck_configs(self, paths: set[str]) -> None:
        """Forget active workflows whose CONFIG is gone (their attempts leave the
        assignments in this pass, so participants cancel them); re-arm the others."""
        prefix, names = self.paths.workflows + "/", []
        if ALL_WORKFLOWS in paths:
            paths = {self.paths.workflow_config(n) for n in self.workflows}
        for path in paths:
            name = path[len(prefix) :].split("/", 1)[0] if path.startswith(prefix) else ""
            if name in self.workflows and path == self.paths.workflow_config(name):
                names.append(name)
        watch = self.signals.mark_workflow
        sent = [
            (n, self.zk.exists_async(self.paths.workflow_config(n), watch=watch)) for n in names
        ]
        for name, result in sent:
            if result.get() is None and name in self.workflows:
                log.warning("workflow %s was removed from ZooKeeper directly; forgetting it", name)
                del self.workflows[name]
                self.work.forget(name)

    def _remove_orphan_jobs(self, wf: WorkflowRuntime) -> None:
        """Job directories outside the workflow's DAG (left by an interrupted write) go."""
        try:
            children = self.zk.get_children(self.paths.jobs(wf.name))
        except NoNodeError:
            return
        for job in children:
            if job not in wf.jobs:
                log.warning("removing orphaned job context %s/%s", wf.name, job)
                self.removal.remove_tree(self.paths.job(wf.name, job))

    def _expire(self, now: datetime) -> float | None:
        """Purge what is due: queue jobs (of queues touched in this pass or due) and retired
        workflows (through the expiry index); returns the next due time."""
        work = self.work
        wakeup = self.expiry.purge(
            now.timestamp(), lambda items: self.removal.purge_workflows(items, self.workflows)
        )
        # A queue is looked at when due, or when touched (a job of it may have finished).
        names = set(work.purges.pop_due(now.timestamp())) | work.touched
        for wf in work.resident(self.workflows, sorted(names)):
            if wf.stored.queue is None:
                continue
            dirty = wf.context_dirty
            work.purges.set(wf.name, purge_due(self.commands, wf, now))
            if wf.context_dirty and not dirty:
                work.touch(wf.name)
        due = work.purges.next()
        if due is not None:
            wakeup = due if wakeup is None else min(wakeup, due)
        return wakeup

    def mark_broken(self, name: str, reason: str, now: datetime) -> None:
        """Record FAILED with ``reason`` for a workflow whose znodes cannot be read."""
        log.error("workflow %s is unreadable and marked FAILED: %s", name, reason)
        path = self.paths.workflow_context(name)
        body = {
            "state": TaskState.FAILED.value,
            "jobs": {},
            "finish": now.timestamp(),
            "info": cap_info(reason),
        }
        try:
            current = decode(self.zk.get(path)[0], path=path) or {}
        except (NoNodeError, CorruptNode):
            current = {}
        ops: list[Op] = []
        if current.get("state") != TaskState.FAILED.value and self.zk.exists(path) is not None:
            ops.append(SetData(path, encode(body, path=path)))
        if self.zk.exists(self.paths.active_entry(name)) is not None:
            ops.append(Delete(self.paths.active_entry(name)))  # kept, never loaded again
        if ops:
            self.writer.commit(ops)

    # --- the pass -------------------------------------------------------------------------

    def run_pass(self) -> float | None:
        """One pass over everything pending; returns when the next timer must fire."""
        self.passes += 1
        pending = self.signals.drain()
        started = time.monotonic()
        try:
            wakeup = self._pass(pending)
        except BaseException:
            # Nothing drained may be lost: an instance whose STATE read failed has no watch
            # armed, and would never be read again (the work it reports would hang).
            self.signals.restore(pending)
            self.work.failed()
            self.contexts_unknown()
            if self.metrics is not None:
                self.metrics.passes.labels("failed").inc()
            raise
        if self.metrics is not None:
            self.metrics.after_pass(self.workflows, self.instances, time.monotonic() - started)
        return wakeup

    def _pass(self, pending: Pending) -> float | None:
        now = datetime.now(UTC)
        work = self.work
        if pending.workflows:
            self._recheck_configs(pending.workflows)
        dirty = pending.instances  # grows in place, so a failed pass restores all of it
        if pending.membership or pending.all_instances:
            # An instance that left or was disabled changes attempts of any workflow.
            work.sweep_next()
        if pending.membership:
            dirty |= self.members.refresh(now)
        if pending.all_instances:
            dirty |= set(self.instances)
        self.members.fold([self.instances[i] for i in sorted(dirty) if i in self.instances], now)
        self.commands.handle_all(pending.commands, now)
        scheduled = run_schedules(self, now, work.resident(self.workflows, work.templates))
        wakeups = [] if scheduled is None else [scheduled]
        # Only what changed or is due is evaluated (every resident workflow on a sweep).
        evaluated = work.begin(self.workflows, now.timestamp())
        for wf in evaluated:
            work.timers.set(wf.name, rules.evaluate_workflow(wf, now))
        missed = work.unmarked(evaluated)
        if missed:
            log.error("changes no pass had marked, found by a sweep: %s", ", ".join(missed[:20]))
        started = start_late_bound(self.commands, evaluated, now)
        # Fixing a targeted or fan-out job's tasks may end it (no partition, no list): its
        # workflow is evaluated again now, not left for a pass nothing would trigger.
        for wf in work.resident(self.workflows, sorted({job.workflow for job in started})):
            work.timers.set(wf.name, rules.evaluate_workflow(wf, now))
        due = work.timers.next()
        if due is not None:
            wakeups.append(due)
        busy = work.resident(self.workflows, work.busy | work.touched)
        if work.sweeping:
            work.candidates.rebuild(evaluated)
        else:
            for wf in evaluated:
                work.candidates.add(wf)
        placed = rules.assign(
            work.candidates.take(self.workflows),
            self.instances,
            rules.instance_load(_jobs(busy)),
            self.quotas,
            self._quota_type,
            self._type_load(busy),
            lambda job, p: allowed_instances(self.partitions, job, p),
            Overlap(self._exclusive, lambda job: self.workflows[job.workflow].hot_jobs()),
        )
        work.candidates.give_back()
        for job, p, target in placed:
            work.touch(job.workflow)
            rules.schedule(job, p, target, now)
            if self.metrics is not None and job.tasks[p].num_attempts == 1 and job.start_time:
                self.metrics.schedule_delay.observe(
                    max(0.0, (now - job.start_time).total_seconds())
                )
        # Counted before purges: work that expires at once (expiry 0) still counts.
        if self.metrics is not None:
            self.metrics.count_finished(work.resident(self.workflows, work.touched))
        # Purges first: what they change (a queue's job list) rides in this pass's write.
        expiry = self._expire(now)
        if expiry is not None:
            wakeups.append(expiry)
        self._write(now)
        if time.monotonic() >= self._next_request_prune:
            self.replies.prune(REQUEST_TTL)
            self._next_request_prune = time.monotonic() + REQUEST_TTL / 10
        self.next_wakeup = min(wakeups) if wakeups else None
        return self.next_wakeup

    def _exclusive(self, job: JobRuntime) -> bool:
        """Whether ``job``'s workflow keeps its jobs on separate instances (Helix's
        AllowOverlapJobAssignment false, the default)."""
        return not self.workflows[job.workflow].stored.config.allow_overlap_job_assignment

    def _quota_type(self, job: JobRuntime) -> str:
        wf = self.workflows[job.workflow]
        return self.quotas.type_of(wf.stored.config.workflow_type, job.config.job_type)

    def _type_load(self, busy: list[WorkflowRuntime]) -> Counter[tuple[str, str]]:
        load: Counter[tuple[str, str]] = Counter()
        if self.quotas.ratios:
            for job in _jobs(busy):
                qtype = self._quota_type(job)
                for inst in job.active.values():
                    load[(inst, qtype)] += 1
        return load

    def all_jobs(self) -> Iterable[JobRuntime]:
        """Every job that may hold attempts (the hot ones) of every resident workflow."""
        return _jobs(self.workflows.values())

    # --- writes ---------------------------------------------------------------------------

    def _write(self, now: datetime) -> None:
        """Contexts first, then assignments, in fenced multis; only what changed (what this
        pass touched). The work list is re-indexed once the write landed."""
        ops: list[Op] = []
        contexts: list[tuple[WorkflowRuntime, int]] = []
        touched = self.work.resident(self.workflows, self.work.touched)
        for wf in touched:
            for job in wf.hot.values():  # a cold job has nothing unwritten
                if job.config.stream and job.header_dirty and job.state.is_final:
                    # A finished stream takes no more splits or barriers (their appends
                    # check this node's version).
                    path = self.paths.stream_state(wf.name, job.name)
                    ops.append(SetData(path, encode({"closed": job.state.value}, path=path)))
                if job.header_dirty or job.dirty_chunks:
                    ops += job_context_ops(
                        self.paths,
                        wf.name,
                        job.name,
                        job_header(job),
                        job.tasks,
                        job.dirty_chunks,
                        create=False,
                        include_header=job.header_dirty,
                        existing_chunks=job.stored_chunks,
                    )
            ctx_ops, chunks = context_ops(self.zk, self.paths, wf)
            ops += ctx_ops
            contexts.append((wf, chunks))
        assignment_ops = self._assignment_ops()
        ops += [op for _, op in assignment_ops]
        # Last, after their final contexts: finished workflows leave the hot set.
        retiring = [wf for wf in touched if is_retirable(wf)]
        retire_ops, retired = self.expiry.retire_ops(retiring)
        ops += retire_ops
        if ops:
            try:
                self.writer.commit(ops)
            except MultiFailed as exc:
                gone = self._vanished_workflow(exc)
                if gone is None:
                    raise
                # Written again by the next pass: its dirty flags and touched marks stay.
                self.work.sweep_next()
                self.contexts_unknown()
                if not gone:
                    self.signals.wake()
                    return
                # Force-deleted behind our back (no controller was needed for that): forget
                # it and write the rest in the next pass.
                log.warning("workflow %s was removed from ZooKeeper directly; forgetting it", gone)
                self.workflows.pop(gone, None)
                self.work.forget(gone)
                self.signals.wake()
                return
        for wf, chunks in contexts:
            written(wf, chunks)
        for wf in touched:
            wf.context_dirty = False
            for job in wf.hot.values():
                job.header_dirty = False
                job.dirty_chunks.clear()
                job.stored_chunks = stored_chunks(len(job.tasks))
            wf.cool()
        for inst, op in assignment_ops:
            self.assignments[inst] = decode(op.data)
        retired()
        for wf in retiring:
            del self.workflows[wf.name]
            # Its CONFIG watch is no longer wanted (a retired workflow is not watched).
            forget_data_watch(
                self.zk, self.paths.workflow_config(wf.name), self.signals.mark_workflow
            )
        self.work.settle(self.workflows)

    def contexts_unknown(self) -> None:
        """A write failed, maybe after some of its multis landed: which CONTEXT chunks
        exist is read again before they are next written."""
        for wf in self.workflows.values():
            if wf.ctx_chunks or job_states_chunks(len(wf.order)):
                wf.ctx_chunks = -1

    def _vanished_workflow(self, exc: MultiFailed) -> str | None:
        """The workflow whose znode a failed write found missing, if that was the failure."""
        if not isinstance(exc.error, NoNodeError):
            return None
        for root in (self.paths.workflows + "/", self.paths.active + "/"):
            if not exc.op.path.startswith(root):
                continue
            name = exc.op.path[len(root) :].split("/", 1)[0]
            if name not in self.workflows:
                return None
            if self.zk.exists(self.paths.workflow_config(name)) is None:
                return name
            if exc.op.path == self.paths.active_entry(name):
                # Its index entry alone was removed by hand: put it back, retire it again.
                log.warning("workflow %s had lost its ACTIVE entry; restoring it", name)
                self.writer.commit([Create(exc.op.path)])
                return ""
        return None

    def _target(self, job: JobRuntime, partition: int, inst: LiveInstance) -> str:
        """What an active attempt should do: run, or be cancelled and why."""
        if partition in job.aborting:
            return ABORT
        if not inst.enabled:
            return DROP  # cancelled here first; retried elsewhere once it reports
        if has_moved(self.partitions, job, partition, inst.name):
            return MOVE  # likewise, then it follows its partition
        if job.state in _STOPPED:
            return STOP
        return RUN

    def _assignment_ops(self) -> list[tuple[str, SetData]]:
        desired: dict[str, dict[str, Any]] = {
            name: {"inc": inst.incarnation, "tasks": {}} for name, inst in self.instances.items()
        }
        # Only workflows with attempts out (or touched in this pass) have entries.
        for wf in self.work.resident(self.workflows, sorted(self.work.busy | self.work.touched)):
            for job in wf.hot.values():  # a job with attempts out is hot
                for p, inst in job.active.items():
                    live = self.instances.get(inst)
                    t = job.tasks[p]
                    if live is None or t.incarnation != live.incarnation:
                        continue
                    target = self._target(job, p, live)
                    entry: dict[str, Any] = {
                        "a": t.num_attempts,
                        "t": target,
                        # the job-config version makes participants re-read a changed job
                        "u": f"{wf.stored.uid}.{job.config_version}",
                    }
                    if target == RUN:
                        # A small config rides along: the attempt starts with no read.
                        config = job.assignment_config()
                        if config is not None:
                            entry["c"] = config
                    desired[inst]["tasks"][job.key(p)] = entry
        for inst, current in self.assignments.items():
            if inst not in desired and current.get("tasks"):
                desired[inst] = {"inc": current.get("inc"), "tasks": {}}
        out: list[tuple[str, SetData]] = []
        for inst, body in sorted(desired.items()):
            if self.assignments.get(inst) != body:
                path = self.paths.assignment(inst)
                out.append((inst, SetData(path, encode(body, path=path))))
        return out


def _jobs(workflows: Iterable[WorkflowRuntime]) -> Iterable[JobRuntime]:
    """The hot jobs of ``workflows``: a job with attempts out is never cold."""
    for wf in workflows:
        yield from wf.hot_jobs()
