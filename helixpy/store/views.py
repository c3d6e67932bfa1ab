"""Read-only views of a cluster for clients (the driver, the dashboard): workflows and
instances as plain data, read straight from ZooKeeper."""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.errors import NotFound
from helixpy.model import WorkflowConfig
from helixpy.store import records
from helixpy.store.codec import decode
from helixpy.store.paths import Paths


def read_workflow_config(zk: KazooClient, paths: Paths, name: str) -> WorkflowConfig:
    """Workflow ``name``'s config; :class:`NotFound` while it has no CONFIG."""
    return records.read_stored_workflow(zk, paths, name).config


def read_workflows(zk: KazooClient, paths: Paths) -> dict[str, WorkflowConfig]:
    """Every workflow's config by name, leaving out those being started or deleted."""
    try:
        names = zk.get_children(paths.workflows)
    except NoNodeError:
        return {}
    out: dict[str, WorkflowConfig] = {}
    for name in sorted(names):
        try:
            out[name] = read_workflow_config(zk, paths, name)
        except NotFound:
            continue  # no CONFIG: a start or delete is under way
    return out


def read_instances(zk: KazooClient, paths: Paths) -> dict[str, dict[str, Any]]:
    """Every instance that ever registered: ``{id: {live, enabled, tags, capacity,
    abandoned}}`` (``abandoned``: slots held by threads of attempts given up on after their
    ``cancel_grace``, 0 when not live).

    An instance without a config (registering just now) is left out.
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        names = sorted(zk.get_children(paths.instances))
    except NoNodeError:
        return out
    for name in names:
        try:
            cfg = decode(zk.get(paths.instance_config(name))[0]) or {}
        except NoNodeError:
            continue
        try:
            node = decode(zk.get(paths.live_instance(name))[0]) or {}
            live = True
        except NoNodeError:
            node, live = {}, False
        out[name] = {
            "live": live,
            "enabled": bool(cfg.get("enabled", True)),
            "tags": list(cfg.get("tags") or []),
            "capacity": cfg.get("capacity"),
            "abandoned": int(node.get("abandoned", 0)) if isinstance(node, dict) else 0,
        }
    return out
