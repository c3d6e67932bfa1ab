"""The driver's ZooKeeper reads that the store does not offer as such.

Each is a plain ``read(zk, paths, *args)`` function, the shape ``TaskDriver._read`` syncs
and retries; they live here so that the driver module holds only its public methods.
"""

from __future__ import annotations

from kazoo.client import KazooClient

from helixpy.model import JobConfig
from helixpy.store import records
from helixpy.store.paths import Paths
from helixpy.store.views import read_instances, read_workflow_config, read_workflows

__all__ = ["read_instances", "read_visible_job_config", "read_workflow_config", "read_workflows"]


def read_visible_job_config(zk: KazooClient, paths: Paths, name: str, job: str) -> JobConfig:
    """Job ``job``'s config without the tasks deleted from it (users never see those)."""
    return records.read_job_config(zk, paths, name, job, hide_deleted=True)
