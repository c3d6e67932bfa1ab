"""Live-instance membership and the participants' reports, for the pipeline.

Owns the pipeline's view of which instances are live (re-read from their live nodes and
CONFIG), folding each participant's STATE reports into the job runtimes, and pruning the
STATE nodes of instances' earlier incarnations.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kazoo.exceptions import NoNodeError

from helixpy.controller import rules
from helixpy.controller.runtime import LiveInstance
from helixpy.errors import CorruptNode
from helixpy.model import TaskPartitionState
from helixpy.model.context import from_epoch
from helixpy.store.codec import decode
from helixpy.store.fencing import MultiFailed
from helixpy.store.ops import Delete
from helixpy.store.paths import parse_task_key

if TYPE_CHECKING:
    from helixpy.controller.pipeline import Pipeline

log = logging.getLogger(__name__)


class Membership:
    def __init__(self, pipeline: Pipeline) -> None:
        self.p = pipeline

    def refresh(self, now: datetime) -> set[str]:
        """Re-read live nodes; drop attempts of instances that left or restarted."""
        try:
            names = self.p.zk.get_children(
                self.p.paths.live_instances, watch=self.p.signals.mark_membership
            )
        except NoNodeError:
            names = []
        live: dict[str, LiveInstance] = {}
        for name in names:
            try:
                # Watched: the participant rewrites it when its abandoned count changes.
                data, stat = self.p.zk.get(
                    self.p.paths.live_instance(name), watch=self.p.signals.mark_membership
                )
                body = decode(data) or {}
                config = self._instance_config(name)
                abandoned = int(body.get("abandoned", 0))
                live[name] = LiveInstance(
                    name=name,
                    incarnation=int(body["incarnation"]),
                    session=int(stat.ephemeralOwner),
                    # CONFIG is authoritative (an operator may retag a running instance);
                    # the live node's tags serve until CONFIG is readable.
                    tags=frozenset(config.get("tags", body.get("tags")) or ()),
                    capacity=max(0, int(body.get("capacity", 0)) - abandoned),
                    enabled=bool(config.get("enabled", True)),
                    abandoned=abandoned,
                )
            except NoNodeError:
                continue
            except (CorruptNode, KeyError, TypeError, ValueError) as exc:
                log.error("live instance %s has an unreadable live node, ignored: %s", name, exc)
        # Every active attempt whose (instance, incarnation) is no longer live: fold that
        # incarnation's last reports first, so a task that finished just before its
        # participant exited or restarted is not retried, then drop what is still active.
        # This also covers instances that died while no controller was leading.
        stale: set[tuple[str, int | None]] = set()
        for job in self.p.all_jobs():
            for p, inst in job.active.items():
                cur = live.get(inst)
                if cur is None or job.tasks[p].incarnation != cur.incarnation:
                    stale.add((inst, job.tasks[p].incarnation))
        for inst, inc in sorted(stale, key=str):
            if inc is not None:
                self._fold_reports(inst, inc, now)
        for inst in sorted({inst for inst, _ in stale}):
            kept = live[inst].incarnation if inst in live else None
            n = rules.drop_instance(self.p.all_jobs(), inst, kept, now)
            if n and self.p.metrics is not None:
                self.p.metrics.attempts_finished.labels(TaskPartitionState.DROPPED.value).inc(n)
            if n:
                log.info(
                    "instance %s %s; %d attempt(s) dropped",
                    inst,
                    "left" if kept is None else "restarted",
                    n,
                )
        changed = {name for name, new in live.items() if self.p.instances.get(name) != new}
        self.p.instances = live
        try:
            for name in sorted(changed):
                self._prune_states(live[name])
        except BaseException:
            # ``changed`` is lost with this pass and a retried refresh finds nothing new:
            # have the next pass read every instance's reports instead.
            self.p.signals.mark_all_instances()
            raise
        return changed

    def _prune_states(self, inst: LiveInstance) -> None:
        """Delete STATE nodes of an instance's earlier incarnations (their reports are in)."""
        path = self.p.paths.states(inst.name)
        try:
            old = [c for c in self.p.zk.get_children(path) if c != str(inst.incarnation)]
        except NoNodeError:
            return
        if old:
            try:
                self.p.writer.commit([Delete(f"{path}/{c}") for c in old])
            except MultiFailed as exc:
                log.info("pruning %s raced: %s", path, exc)

    def _instance_config(self, name: str) -> dict[str, Any]:
        """An instance's CONFIG (enabled, tags), watched: a change re-reads the members."""
        path = self.p.paths.instance_config(name)
        try:
            data, _ = self.p.zk.get(path, watch=self.p.signals.mark_membership)
            return dict(decode(data, path=path) or {})
        except NoNodeError:
            return {}
        except CorruptNode as exc:
            log.error("instance %s: unreadable config, defaults used: %s", name, exc)
            return {}

    def fold(self, insts: list[LiveInstance], now: datetime) -> None:
        """Fold live instances' reports and re-arm the watches on their STATE nodes.

        Every read is sent before the first answer is awaited: one round trip for all the
        instances that reported since the last pass, not one each (200 participants).
        """
        reads = [
            (
                inst,
                self.p.zk.get_async(
                    self.p.paths.state(inst.name, inst.incarnation),
                    watch=self.p.signals.instance_watcher(inst.name),
                ),
            )
            for inst in insts
        ]
        for inst, read in reads:
            try:
                data, _ = read.get()
            except NoNodeError:
                continue
            self._apply_reports(inst.name, inst.incarnation, data, now)

    def _fold_reports(self, inst: str, incarnation: int, now: datetime) -> None:
        """Fold the last reports of an incarnation that is gone (no watch: it is over)."""
        try:
            data, _ = self.p.zk.get(self.p.paths.state(inst, incarnation))
        except NoNodeError:
            return
        self._apply_reports(inst, incarnation, data, now)

    def _apply_reports(self, inst: str, incarnation: int, data: bytes, now: datetime) -> None:
        path = self.p.paths.state(inst, incarnation)
        try:
            reports = decode(data, path=path) or {}
        except CorruptNode as exc:
            log.error("%s", exc)
            return
        if not isinstance(reports, dict):
            log.error("%s: reports are not a mapping (%s); ignored", path, type(reports).__name__)
            return
        for key, rep in reports.items():
            try:
                wf_name, job_name, p = parse_task_key(key)
                wf = self.p.workflows.get(wf_name)
                job = wf.jobs.get(job_name) if wf is not None else None
                if job is None:
                    continue
                state = TaskPartitionState(rep["s"])
                folded = rules.apply_report(
                    job,
                    p,
                    inst,
                    incarnation,
                    int(rep["a"]),
                    state,
                    str(rep.get("i", "")),
                    from_epoch(rep.get("st")),
                    now,
                )
                if folded:
                    self.p.work.touch(wf_name)
                if folded and not state.is_active and self.p.metrics is not None:
                    self.p.metrics.attempts_finished.labels(state.value).inc()
            except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
                # One bad entry is skipped: a failing pass would be retried forever on it.
                log.error("instance %s: bad report %r: %s", inst, key, exc)
