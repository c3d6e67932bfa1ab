"""Targeted jobs: tasks that run where the partitions of a resource are hosted.

Helix's FixedTargetTaskAssignmentCalculator, with our records in place of a resource's
current state: ``INSTANCES/<inst>/PARTITIONS/<resource>/<partition>`` says an instance hosts
a partition in a state (:mod:`helixpy.store.partitions`). A job with ``target_resource``
gets one task per partition of the resource (or per ``target_partitions``), fixed when the
job starts; each task runs on a live instance hosting its partition in one of
``target_partition_states`` (any state when none are named). When the partition moves (its
record changes, is removed, or its instance dies) the running attempt is cancelled there
(reported DROPPED, "partition moved") and the task follows it as a new attempt; like any
DROPPED attempt, a move counts toward ``max_attempts_per_task``. A job whose resource has
no partition on any instance fails with an ``info`` naming the resource.

The decisions here are pure; the command handlers write through the leader's fenced writer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from helixpy.controller.runtime import JobRuntime
from helixpy.controller.signals import Command
from helixpy.errors import NotFound
from helixpy.model import JobConfig, TaskConfig
from helixpy.store.partitions import PartitionRecords, remove_partition_ops, set_partition_ops

if TYPE_CHECKING:
    from helixpy.controller.commands import CommandHandler

log = logging.getLogger(__name__)


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key putting ``p_2`` before ``p_10``."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)
    )


class PartitionMap:
    """The leader's copy of every partition record: instance -> resource -> partition ->
    state. Liveness is not its business: callers pass the live instances."""

    def __init__(self, records: PartitionRecords | None = None) -> None:
        self.records: PartitionRecords = records or {}

    def state(self, instance: str, resource: str, partition: str) -> str | None:
        return self.records.get(instance, {}).get(resource, {}).get(partition)

    def set(self, instance: str, resource: str, partition: str, state: str) -> None:
        self.records.setdefault(instance, {}).setdefault(resource, {})[partition] = state

    def remove(self, instance: str, resource: str, partition: str) -> None:
        resources = self.records.get(instance, {})
        parts = resources.get(resource, {})
        parts.pop(partition, None)
        if not parts:
            resources.pop(resource, None)
        if not resources:
            self.records.pop(instance, None)

    def has_resource(self, resource: str) -> bool:
        return any(resource in resources for resources in self.records.values())

    def partitions_of(self, resource: str) -> list[str]:
        """Every partition of ``resource`` recorded on any instance, live or not."""
        names = {p for resources in self.records.values() for p in resources.get(resource, {})}
        return sorted(names, key=natural_key)

    def hosts(self, resource: str, partition: str, states: tuple[str, ...]) -> frozenset[str]:
        """Instances recording ``partition`` in one of ``states`` (any when empty)."""
        return frozenset(
            inst
            for inst, resources in self.records.items()
            if (s := resources.get(resource, {}).get(partition)) is not None
            and (not states or s in states)
        )


def materialize(cfg: JobConfig, pmap: PartitionMap) -> JobConfig | str:
    """The started form of a targeted job (one task per target partition), or why it fails."""
    assert cfg.target_resource is not None
    if not pmap.has_resource(cfg.target_resource):
        return (
            f"target resource {cfg.target_resource!r} has no partition on any instance "
            "(record them with set_partition_state)"
        )
    names = list(cfg.target_partitions) or pmap.partitions_of(cfg.target_resource)
    tasks = tuple(TaskConfig(id=name, target_partition=name) for name in names)
    return replace(cfg, tasks=tasks, target_partitions=())


def target_of(job: JobRuntime, partition: int) -> str | None:
    """The resource partition a task of a targeted job follows (None for other jobs)."""
    if job.config.target_resource is None or partition >= len(job.config.tasks):
        return None
    return job.config.tasks[partition].target_partition


def allowed_instances(pmap: PartitionMap, job: JobRuntime, partition: int) -> frozenset[str] | None:
    """Where a task may run: the hosts of its target partition; None for untargeted jobs."""
    target = target_of(job, partition)
    if target is None:
        return None
    assert job.config.target_resource is not None
    return pmap.hosts(job.config.target_resource, target, tuple(job.config.target_partition_states))


def has_moved(pmap: PartitionMap, job: JobRuntime, partition: int, instance: str) -> bool:
    """Whether an attempt on ``instance`` lost its partition (moved, removed, wrong state)."""
    hosts = allowed_instances(pmap, job, partition)
    return hosts is not None and instance not in hosts


# --- commands -----------------------------------------------------------------------------


def set_partition(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    inst, res, part, state = cmd.payload
    if h.p.zk.exists(h.p.paths.instance_config(inst)) is None:
        raise NotFound(f"instance {inst} has never registered")
    result = {"code": "OK", "message": f"{inst} hosts {res}/{part} as {state}"}
    ops = set_partition_ops(h.p.paths, inst, res, part, state, known=h.p.partitions.records)
    h.p.writer.commit([*ops, h.request_op(cmd.request_id, result)])
    h.p.partitions.set(inst, res, part, state)
    return result


def remove_partition(h: CommandHandler, cmd: Command, now: datetime) -> dict[str, str]:
    inst, res, part = cmd.payload
    if h.p.partitions.state(inst, res, part) is None:
        raise NotFound(f"instance {inst} has no record of partition {res}/{part}")
    result = {"code": "OK", "message": f"{inst} no longer hosts {res}/{part}"}
    ops = remove_partition_ops(h.p.paths, inst, res, part, known=h.p.partitions.records)
    h.p.writer.commit([*ops, h.request_op(cmd.request_id, result)])
    h.p.partitions.remove(inst, res, part)
    return result


TARGET_COMMANDS = {"set_partition": set_partition, "remove_partition": remove_partition}
