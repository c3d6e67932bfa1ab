"""Partition records: which partitions of which resources each instance hosts, in what state.

``INSTANCES/<inst>/PARTITIONS/<resource>/<partition>`` holds ``{"state": <state>}``.
Targeted jobs place their tasks by these records (Helix's current state of a resource). The
controller writes them (``TaskDriver.set_partition_state``) and keeps them in memory while
it leads; anyone may read them. A record outlives its instance's session, but a partition
counts as hosted only while its instance is live (the controller's rule, not the store's).
"""

from __future__ import annotations

from kazoo.client import KazooClient

from helixpy.errors import CorruptNode
from helixpy.store import plan
from helixpy.store.codec import decode, encode
from helixpy.store.ops import Create, Delete, Op, SetData
from helixpy.store.paths import Paths
from helixpy.store.plan import Children, Plan, run_plan

#: instance -> resource -> partition -> state
PartitionRecords = dict[str, dict[str, dict[str, str]]]


def read_partitions(
    zk: KazooClient,
    paths: Paths,
    instance: str | None = None,
    *,
    errors: list[str] | None = None,
) -> PartitionRecords:
    """Every partition record (of one instance when ``instance`` is given).

    A record whose payload is unreadable raises :class:`CorruptNode` naming its path, or,
    when ``errors`` is given, is described there and skipped (a leader loading must not
    stop at one bad record).
    """
    return run_plan(zk, partitions_plan(paths, instance, errors=errors))


def partitions_plan(
    paths: Paths, instance: str | None = None, *, errors: list[str] | None = None
) -> Plan[PartitionRecords]:
    """:func:`read_partitions` as a plan (see :mod:`helixpy.store.plan`): each level of the
    tree is read together."""
    if instance is not None:
        names = [instance]
    else:
        names = sorted((yield from plan.children(paths.instances)) or ())
    listed = yield [Children(paths.partitions(inst)) for inst in names]
    pairs = [(i, r) for i, res in zip(names, listed, strict=True) for r in sorted(res or ())]
    listed = yield [Children(paths.partition_resource(i, r)) for i, r in pairs]
    records = [
        (i, r, part)
        for (i, r), parts in zip(pairs, listed, strict=True)
        for part in sorted(parts or ())
    ]
    found = yield from plan.get_many([paths.partition(i, r, part) for i, r, part in records])
    out: PartitionRecords = {}
    for (inst, res, part), data in zip(records, found, strict=True):
        if data is None:
            continue
        path = paths.partition(inst, res, part)
        try:
            body = decode(data, path=path)
            if not isinstance(body, dict) or not isinstance(body.get("state"), str):
                raise CorruptNode(f"{path}: not a partition record")
        except CorruptNode as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            continue
        out.setdefault(inst, {}).setdefault(res, {})[part] = body["state"]
    return out


def set_partition_ops(
    paths: Paths,
    instance: str,
    resource: str,
    partition: str,
    state: str,
    *,
    known: PartitionRecords,
) -> list[Op]:
    """Ops recording ``partition`` of ``resource`` on ``instance`` in ``state``.

    ``known`` is what the caller holds (the leader's map): it decides which parent nodes
    exist and whether the record is created or overwritten.
    """
    ops: list[Op] = []
    hosted = known.get(instance, {})
    if not hosted:
        ops.append(Create(paths.partitions(instance)))
    if resource not in hosted:
        ops.append(Create(paths.partition_resource(instance, resource)))
    path = paths.partition(instance, resource, partition)
    body = encode({"state": state}, path=path)
    if partition in hosted.get(resource, {}):
        ops.append(SetData(path, body))
    else:
        ops.append(Create(path, body))
    return ops


def remove_partition_ops(
    paths: Paths, instance: str, resource: str, partition: str, *, known: PartitionRecords
) -> list[Op]:
    """Ops deleting the record, and the parent nodes it leaves empty (so that an absent
    parent and an empty map mean the same thing to :func:`set_partition_ops`)."""
    ops: list[Op] = [Delete(paths.partition(instance, resource, partition))]
    hosted = known.get(instance, {})
    if set(hosted.get(resource, {})) == {partition}:
        ops.append(Delete(paths.partition_resource(instance, resource)))
        if set(hosted) == {resource}:
            ops.append(Delete(paths.partitions(instance)))
    return ops
