"""``delete(force=True)``: a workflow's znodes removed straight from ZooKeeper.

It works while no controller leads (the driver's and the HTTP API's force delete). CONFIG
goes first: a leader that finds the rest treats it as a delete cut short and finishes it.
"""

from __future__ import annotations

import contextlib

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.errors import NotFound
from helixpy.store.paths import Paths


def force_delete_workflow(zk: KazooClient, paths: Paths, name: str) -> None:
    """Remove workflow ``name``'s tree and its ACTIVE entry; :class:`NotFound` when there is
    nothing of it."""
    root = paths.workflow(name)
    try:
        zk.delete(paths.workflow_config(name))
    except NoNodeError:
        if zk.exists(root) is None:
            raise NotFound(f"workflow {name} does not exist in cluster {paths.cluster}") from None
    zk.delete(root, recursive=True)
    with contextlib.suppress(NoNodeError):  # finished workflows have no ACTIVE entry
        zk.delete(paths.active_entry(name))
