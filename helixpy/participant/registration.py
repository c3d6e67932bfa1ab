"""Registering a participant incarnation in ZooKeeper.

A participant process registers once per incarnation: it bumps ``INCARNATION`` (whose
version *is* the incarnation number and the fence of everything this incarnation writes),
merges its flags into the instance ``CONFIG``, and creates ``STATE/<incarnation>`` and its
ephemeral live node in one multi checked against that fence.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from helixpy.errors import Fenced, HelixpyError
from helixpy.model.limits import check_capacity
from helixpy.store.acl import AclProvider
from helixpy.store.codec import decode, encode
from helixpy.store.fencing import MultiFailed, run_multi
from helixpy.store.ops import Check, Create, Delete, SetData
from helixpy.store.paths import Paths
from helixpy.store.views import TARGET_POOL_SIZE

log = logging.getLogger(__name__)


def merge_config(zk: KazooClient, path: str, config: dict[str, Any]) -> None:
    """Merge this process's flags into an existing CONFIG (CAS, against an operator's
    concurrent change). Capacity is the process's own; ``enabled`` is the operator's and
    survives restarts; tags set with ``set_instance_tags`` survive too, unless this process
    was started with different ``--tags`` flags than the last one (then the flags, the newer
    intent, win). A target task thread pool size survives as the operator's."""
    while True:
        data, stat = zk.get(path)
        current = decode(data, path=path) or {}
        merged = dict(config, enabled=bool(current.get("enabled", True)))
        if current.get(TARGET_POOL_SIZE) is not None:  # the operator's too
            merged[TARGET_POOL_SIZE] = current[TARGET_POOL_SIZE]
        if current.get("flag_tags") == config["flag_tags"] and "tags" in current:
            merged["tags"] = list(current["tags"])
        try:
            zk.set(path, encode(merged), version=stat.version)
            return
        except BadVersionError:
            continue  # changed meanwhile: merge again


def live_body(incarnation: int, tags: tuple[str, ...], capacity: int, abandoned: int = 0) -> bytes:
    """The live node's body. ``abandoned``: worker slots held by threads of attempts given
    up on after their cancel grace (see :mod:`helixpy.participant.grace`); the controller
    places at most ``capacity - abandoned`` attempts here."""
    body: dict[str, Any] = {
        "incarnation": incarnation,
        "tags": list(tags),
        "capacity": capacity,
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    if abandoned:
        body["abandoned"] = abandoned
    return encode(body)


def advertise_op(
    paths: Paths, inst: str, incarnation: int, tags: tuple[str, ...], capacity: int, abandoned: int
) -> SetData:
    """The write that advertises a new abandoned count (commit it fenced)."""
    return SetData(paths.live_instance(inst), live_body(incarnation, tags, capacity, abandoned))


def incarnation_fence(paths: Paths, inst: str, incarnation: int) -> tuple[Check, Check]:
    """The checks every write of incarnation ``incarnation`` of ``inst`` carries: the
    INCARNATION node still at its version (no newer incarnation registered) and the live
    node still there (the session that registered it has not ended: once it expires, a
    write from a process that wakes on a new session fails before any re-registration)."""
    return Check(paths.incarnation(inst), incarnation), Check(paths.live_instance(inst), -1)


def register(
    zk: KazooClient,
    paths: Paths,
    inst: str,
    acl: AclProvider,
    tags: tuple[str, ...],
    capacity: int,
    abandoned: int = 0,
) -> int:
    """Register a new incarnation of ``inst``; returns its number.

    Raises :class:`~helixpy.errors.Fenced` when another process registered the instance
    meanwhile (two processes must not share an instance id).
    """
    for path in (paths.live_instances, paths.instance(inst)):
        zk.ensure_path(path, acl=acl.acl_for(path))
    config = {"tags": list(tags), "flag_tags": list(tags), "capacity": capacity, "enabled": True}
    for path, body in (
        (paths.instance_config(inst), config),
        (paths.incarnation(inst), None),
        (paths.assignment(inst), {}),
        (paths.states(inst), None),
    ):
        try:
            zk.create(path, b"" if body is None else encode(body), acl=acl.acl_for(path))
        except NodeExistsError:
            if path == paths.instance_config(inst):
                merge_config(zk, path, config)
    incarnation = int(zk.set(paths.incarnation(inst), b"").version)
    # STATE nodes of earlier incarnations stay: the controller folds their last reports (a
    # task that finished just before a restart is not retried) and then deletes them.
    live = paths.live_instance(inst)
    node = live_body(incarnation, tags, capacity, abandoned)
    fence = Check(paths.incarnation(inst), incarnation)
    for _ in range(20):
        try:
            run_multi(
                zk,
                [
                    fence,
                    Create(paths.state(inst, incarnation), encode({})),
                    Create(live, node, ephemeral=True),
                ],
                acl,
            )
            return incarnation
        except MultiFailed as exc:
            if exc.op is fence:
                raise Fenced(f"{inst}: another process registered this instance") from None
            if isinstance(exc.error, NodeExistsError) and exc.op.path == live:
                # A previous process of this instance whose session has not expired yet: we
                # replace it; its incarnation is fenced off already.
                try:
                    run_multi(zk, [fence, Delete(live)], acl)
                except MultiFailed as inner:
                    log.debug("old live node: %s", inner)
                continue
            if isinstance(exc.error, NodeExistsError):
                zk.delete(paths.state(inst, incarnation))
                continue
            raise
    raise RuntimeError(f"{inst}: could not create the live node")


def target_capacity(zk: KazooClient, paths: Paths, inst: str) -> int | None:
    """The instance's target task thread pool size (``set_target_task_thread_pool_size``),
    None when unset or when the instance never registered."""
    try:
        data, _ = zk.get(paths.instance_config(inst))
    except NoNodeError:
        return None
    try:
        target = (decode(data, path=paths.instance_config(inst)) or {}).get(TARGET_POOL_SIZE)
        return None if target is None else check_capacity(target, TARGET_POOL_SIZE)
    except HelixpyError as exc:  # (hand-edited: the participant still starts, and says so)
        log.error("%s: ignoring its stored %s: %s", inst, TARGET_POOL_SIZE, exc)
        return None
