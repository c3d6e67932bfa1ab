"""The async driver's reads of the cluster beyond one workflow: the workflow list,
instances, partition records and task locks.

Each method is its :class:`~helixpy.driver.TaskDriver` namesake, running the same store
plan (:func:`helixpy.store.views.instances_plan` and the others).
"""

from __future__ import annotations

from typing import Any

from helixpy.driver.aio.base import AsyncDriverBase
from helixpy.model import WorkflowConfig
from helixpy.model.locks import Posse
from helixpy.model.names import check_name
from helixpy.store.locks import audit_plan, locks_plan
from helixpy.store.partitions import PartitionRecords, partitions_plan
from helixpy.store.views import (
    current_pool_size_plan,
    instances_plan,
    target_pool_size_plan,
    workflows_plan,
)


class ClusterReads(AsyncDriverBase):
    """Mixed into :class:`~helixpy.driver.aio.AsyncTaskDriver`."""

    async def get_workflows(self) -> dict[str, WorkflowConfig]:
        """Every workflow's config by name (workflows being started or deleted left out)."""
        return await self._run(self._paths.workflows, "", workflows_plan)

    async def get_instances(self) -> dict[str, dict[str, Any]]:
        """Every instance that ever registered: ``{id: {live, enabled, tags, capacity,
        target_task_thread_pool_size, abandoned}}``."""
        return await self._run(self._paths.instances, "", instances_plan)

    async def get_partitions(self, instance: str | None = None) -> PartitionRecords:
        """Partition records as ``{instance: {resource: {partition: state}}}``, of every
        instance or of ``instance`` only."""
        if instance is not None:
            check_name("instance", instance)
        return await self._run(self._paths.instances, "", partitions_plan, instance)

    async def get_locks(self, resource: str | None = None) -> dict[str, list[Posse]]:
        """Task locks by resource (one resource's when given), as typed :class:`Posse`
        values."""
        raw = await self._run(f"{self._paths.root}/LOCKS", "", locks_plan, resource)
        return {res: [Posse.from_dict(p) for p in posses] for res, posses in raw.items()}

    async def get_lock_audit(self, resource: str) -> list[dict[str, Any]]:
        """Every grant, join, revoke, release and reclaim on ``resource``, oldest first."""
        return await self._run(f"{self._paths.root}/LOCKS", "", audit_plan, resource)

    async def get_target_task_thread_pool_size(self, instance: str) -> int | None:
        """See :meth:`TaskDriver.get_target_task_thread_pool_size`."""
        name = check_name("instance", instance)
        path = self._paths.instance_config(name)
        return await self._run(path, f"instance {name}", target_pool_size_plan, name)

    async def get_current_task_thread_pool_size(self, instance: str) -> int:
        """See :meth:`TaskDriver.get_current_task_thread_pool_size`."""
        name = check_name("instance", instance)
        path = self._paths.live_instance(name)
        return await self._run(path, f"live instance {name}", current_pool_size_plan, name)
