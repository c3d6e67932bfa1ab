"""User content, error texts and the cluster config, read by the async driver.

Each method is its :class:`~helixpy.driver.TaskDriver` namesake: the same store plans
(:func:`helixpy.store.content.content_map_plan` and the others), run through kazoo's async
API by the driver's ``_run``, which syncs, retries and names what is missing.
"""

from __future__ import annotations

from typing import Any

from helixpy.driver.aio.base import AsyncDriverBase
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import task_name
from helixpy.driver.base import workflow_name as _wf
from helixpy.errors import InvalidConfig
from helixpy.model import Scope
from helixpy.model.names import check_name
from helixpy.store.content import content_map_plan
from helixpy.store.records import cluster_config_plan
from helixpy.store.task_errors import task_errors_plan


class ContentMethods(AsyncDriverBase):
    """Mixed into :class:`~helixpy.driver.aio.AsyncTaskDriver`."""

    async def get_workflow_user_content_map(self, name: str) -> dict[str, str]:
        """The user content written at the scope of workflow ``name``."""
        path, what = self._paths.workflow_content(_wf(name)), f"workflow {name}"
        return await self._run(path, what, content_map_plan, Scope.WORKFLOW, name)

    async def get_job_user_content_map(self, name: str, job: str) -> dict[str, str]:
        """The user content written at the scope of job ``job`` of workflow ``name``."""
        path, what = self._paths.job_content(_wf(name), _job(job)), f"job {name}/{job}"
        return await self._run(path, what, content_map_plan, Scope.JOB, name, job)

    async def get_task_user_content_map(
        self, name: str, job: str, task_id: str | int
    ) -> dict[str, str]:
        """The user content written by task ``task_id`` (empty if it wrote none)."""
        tid = task_name(task_id)
        path = self._paths.task_content(_wf(name), _job(job), check_name("task.id", tid))
        what = f"job {name}/{job}"
        return await self._run(path, what, content_map_plan, Scope.TASK, name, job, tid)

    async def get_task_error(
        self, name: str, job: str, task_id: str | int, attempt: int | None = None
    ) -> str | None:
        """The full error text of task ``task_id``'s newest failed attempt (or of
        ``attempt``); None when it has none."""
        tid = task_name(task_id)
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
            raise InvalidConfig("attempt", f"must be an attempt number (got {attempt!r})")
        path = self._paths.task_error(_wf(name), _job(job), tid)
        errors = await self._run(path, f"job {name}/{job}", task_errors_plan, name, job, tid)
        if attempt is not None:
            return errors.get(attempt)
        return errors[max(errors)] if errors else None

    async def get_cluster_config(self) -> dict[str, Any]:
        """The cluster config; empty when nothing was ever set."""
        return await self._run(self._paths.config, "", cluster_config_plan)
