"""Leader election: LEADER (ephemeral) and EPOCH (persistent) change in one multi.

The winner's epoch is EPOCH's version after its bump; every write it makes carries
``check(EPOCH, epoch)``. A standby that takes over bumps EPOCH again, so anything the old
leader still tries to write fails, however late it wakes up.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from helixpy.store.acl import AclProvider
from helixpy.store.fencing import MultiFailed, run_multi
from helixpy.store.ops import Create, SetData
from helixpy.store.paths import Paths

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leadership:
    """A won election: the epoch to fence writes with."""

    controller_id: str
    epoch: int
    endpoint: str


def try_lead(
    zk: KazooClient, paths: Paths, acl: AclProvider, controller_id: str, endpoint: str
) -> Leadership | None:
    """One attempt to become leader; None when another controller leads."""
    _, stat = zk.get(paths.epoch)
    epoch = stat.version + 1
    body = json.dumps({"id": controller_id, "endpoint": endpoint, "epoch": epoch}).encode()
    try:
        run_multi(
            zk,
            [
                Create(paths.leader, body, ephemeral=True),
                SetData(paths.epoch, str(epoch).encode(), stat.version),
            ],
            acl,
        )
    except MultiFailed as exc:
        if isinstance(exc.error, NodeExistsError | BadVersionError):
            return None
        raise
    return Leadership(controller_id, epoch, endpoint)


def wait_for_vacancy(zk: KazooClient, paths: Paths, wake: threading.Event, timeout: float) -> None:
    """Block until LEADER may be vacant, ``wake`` is set (stop), or ``timeout`` passes."""

    def watch(_event: object) -> None:
        wake.set()

    if zk.exists(paths.leader, watch=watch) is None:
        return
    wake.wait(timeout)


def read_leader(zk: KazooClient, paths: Paths) -> dict[str, object] | None:
    try:
        data, _ = zk.get(paths.leader)
    except NoNodeError:
        return None
    result: dict[str, object] = json.loads(data)
    return result
