"""User content, error texts and the cluster config, read by the async driver.

The same znodes as :func:`helixpy.store.content.get_content_map`,
:func:`helixpy.store.task_errors.read_task_errors` and
:func:`helixpy.store.records.read_cluster_config`, read through kazoo's async API; the
methods mix into :class:`~helixpy.driver.aio.AsyncTaskDriver`, whose ``_read`` syncs,
retries and names what is missing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from kazoo.exceptions import NoNodeError

from helixpy.driver.aio.session import Session
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import workflow_name as _wf
from helixpy.errors import InvalidConfig, NotFound
from helixpy.model import Scope
from helixpy.model.names import check_name
from helixpy.store.codec import decode
from helixpy.store.content import content_path, owner_config
from helixpy.store.paths import Paths


async def _map_or_empty(s: Session, path: str, owner: str) -> dict[str, Any]:
    """The JSON map at ``path``: empty when it was never written while ``owner`` exists,
    :class:`NotFound` when ``owner`` is gone too."""
    try:
        data = await s.get(path)
    except NoNodeError:
        if not await s.exists(owner):
            raise NotFound(owner.rsplit("/", 1)[0]) from None
        return {}
    return dict(decode(data, path=path) or {})


async def read_content(
    s: Session, paths: Paths, scope: Scope, wf: str, job: str | None = None, tid: str | None = None
) -> dict[str, str]:
    """One scope's user content (``store.content.get_content_map``)."""
    path = content_path(paths, scope, wf, job, tid)
    return await _map_or_empty(s, path, owner_config(paths, scope, wf, job))


async def read_errors(s: Session, paths: Paths, wf: str, job: str, tid: str) -> dict[int, str]:
    """A task's kept error texts by attempt (``store.task_errors.read_task_errors``)."""
    body = await _map_or_empty(s, paths.task_error(wf, job, tid), paths.job_config(wf, job))
    return {int(k): str(v) for k, v in body.items()}


async def read_cluster_config(s: Session, paths: Paths) -> dict[str, Any]:
    """The cluster config, empty when never set (``store.records.read_cluster_config``)."""
    try:
        return dict(decode(await s.get(paths.config), path=paths.config) or {})
    except NoNodeError:
        return {}


Read = Callable[..., Awaitable[Any]]


class ContentMethods:
    """Mixed into :class:`~helixpy.driver.aio.AsyncTaskDriver`, which defines ``_read``
    and ``_paths``; each method is its :class:`~helixpy.driver.TaskDriver` namesake."""

    _paths: Paths

    async def _read(self, path: str, what: str, read: Read, *args: Any) -> Any:
        raise NotImplementedError

    async def get_workflow_user_content_map(self, name: str) -> dict[str, str]:
        """The user content written at the scope of workflow ``name``."""
        path, what = self._paths.workflow_content(_wf(name)), f"workflow {name}"
        result: dict[str, str] = await self._read(path, what, read_content, Scope.WORKFLOW, name)
        return result

    async def get_job_user_content_map(self, name: str, job: str) -> dict[str, str]:
        """The user content written at the scope of job ``job`` of workflow ``name``."""
        path, what = self._paths.job_content(_wf(name), _job(job)), f"job {name}/{job}"
        result: dict[str, str] = await self._read(path, what, read_content, Scope.JOB, name, job)
        return result

    async def get_task_user_content_map(
        self, name: str, job: str, task_id: str | int
    ) -> dict[str, str]:
        """The user content written by task ``task_id`` (empty if it wrote none)."""
        tid = str(task_id) if isinstance(task_id, int) else task_id
        path = self._paths.task_content(_wf(name), _job(job), check_name("task.id", tid))
        result: dict[str, str] = await self._read(
            path, f"job {name}/{job}", read_content, Scope.TASK, name, job, tid
        )
        return result

    async def get_task_error(
        self, name: str, job: str, task_id: str | int, attempt: int | None = None
    ) -> str | None:
        """The full error text of task ``task_id``'s newest failed attempt (or of
        ``attempt``); None when it has none."""
        tid = str(task_id) if isinstance(task_id, int) else check_name("task.id", task_id)
        if attempt is not None and (isinstance(attempt, bool) or not isinstance(attempt, int)):
            raise InvalidConfig("attempt", f"must be an attempt number (got {attempt!r})")
        path = self._paths.task_error(_wf(name), _job(job), tid)
        errors: dict[int, str] = await self._read(
            path, f"job {name}/{job}", read_errors, name, job, tid
        )
        if attempt is not None:
            return errors.get(attempt)
        return errors[max(errors)] if errors else None

    async def get_cluster_config(self) -> dict[str, Any]:
        """The cluster config; empty when nothing was ever set."""
        result: dict[str, Any] = await self._read(self._paths.config, "", read_cluster_config)
        return result
