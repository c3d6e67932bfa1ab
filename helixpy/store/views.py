"""Read-only views of a cluster for clients (the driver, the dashboard): workflows and
instances as plain data, read straight from ZooKeeper."""

from __future__ import annotations

from typing import Any

from kazoo.client import KazooClient

from helixpy.model import WorkflowConfig
from helixpy.store import plan, records
from helixpy.store.codec import decode
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan, run_plan


def read_workflow_config(zk: KazooClient, paths: Paths, name: str) -> WorkflowConfig:
    """Workflow ``name``'s config; :class:`NotFound` while it has no CONFIG."""
    return records.read_stored_workflow(zk, paths, name).config


def workflow_config_plan(paths: Paths, name: str) -> Plan[WorkflowConfig]:
    """:func:`read_workflow_config` as a plan (see :mod:`helixpy.store.plan`)."""
    return (yield from records.stored_workflow_plan(paths, name)).config


def read_workflows(zk: KazooClient, paths: Paths) -> dict[str, WorkflowConfig]:
    """Every workflow's config by name, leaving out those being started or deleted."""
    return run_plan(zk, workflows_plan(paths))


def workflows_plan(paths: Paths) -> Plan[dict[str, WorkflowConfig]]:
    """:func:`read_workflows` as a plan: the configs read together."""
    names = sorted((yield from plan.children(paths.workflows)) or ())
    configs = yield from plan.get_many([paths.workflow_config(n) for n in names])
    out: dict[str, WorkflowConfig] = {}
    for name, data in zip(names, configs, strict=True):
        if data is None:
            continue  # no CONFIG: a start or delete is under way
        out[name] = records.stored_workflow_from(
            paths, name, decode(data, path=paths.workflow_config(name))
        ).config
    return out


def read_instances(zk: KazooClient, paths: Paths) -> dict[str, dict[str, Any]]:
    """Every instance that ever registered: ``{id: {live, enabled, tags, capacity,
    abandoned}}`` (``abandoned``: slots held by threads of attempts given up on after their
    ``cancel_grace``, 0 when not live).

    An instance without a config (registering just now) is left out.
    """
    return run_plan(zk, instances_plan(paths))


def instances_plan(paths: Paths) -> Plan[dict[str, dict[str, Any]]]:
    """:func:`read_instances` as a plan: every config and live node read together."""
    names = sorted((yield from plan.children(paths.instances)) or ())
    wanted = [p for n in names for p in (paths.instance_config(n), paths.live_instance(n))]
    found = yield from plan.get_many(wanted)
    out: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        cfg_data, live_data = found[2 * i], found[2 * i + 1]
        if cfg_data is None:
            continue
        cfg = decode(cfg_data) or {}
        node = {} if live_data is None else decode(live_data) or {}
        out[name] = {
            "live": live_data is not None,
            "enabled": bool(cfg.get("enabled", True)),
            "tags": list(cfg.get("tags") or []),
            "capacity": cfg.get("capacity"),
            "abandoned": int(node.get("abandoned", 0)) if isinstance(node, dict) else 0,
        }
    return out
