"""The TaskDriver's user content methods: Helix's ``get*UserContentMap`` reads and
``addOrUpdate*UserContentMap`` writes, at workflow, job and task scope.

Reads go to ZooKeeper after a ``sync``, like every read of the driver. Writes go over gRPC
to the leader, which merges the entries into the scope's map with the same fenced CAS a
task's ``put_user_content`` uses, so a driver's write and tasks' writes never lose each
other's keys.
"""

from __future__ import annotations

from collections.abc import Mapping

from helixpy.driver.base import DriverBase, check_content, task_name
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import request_id as _rid
from helixpy.driver.base import workflow_name as _wf
from helixpy.model import Scope
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.store.content import get_content_map


class ContentMethods(DriverBase):
    """Read and write user content."""

    def get_workflow_user_content_map(self, name: str) -> dict[str, str]:
        """The user content written at the scope of workflow ``name``."""
        path, what = self._paths.workflow_content(_wf(name)), f"workflow {name}"
        return self._read(path, what, get_content_map, Scope.WORKFLOW, name)

    def get_job_user_content_map(self, name: str, job: str) -> dict[str, str]:
        """The user content written at the scope of job ``job`` of workflow ``name``."""
        path, what = self._paths.job_content(_wf(name), _job(job)), f"job {name}/{job}"
        return self._read(path, what, get_content_map, Scope.JOB, name, job)

    def get_task_user_content_map(self, name: str, job: str, task_id: str | int) -> dict[str, str]:
        """The user content written by task ``task_id`` (empty if it wrote none)."""
        tid = task_name(task_id)
        path = self._paths.task_content(_wf(name), _job(job), tid)
        return self._read(path, f"job {name}/{job}", get_content_map, Scope.TASK, name, job, tid)

    def add_or_update_workflow_user_content_map(
        self, name: str, content: Mapping[str, str]
    ) -> None:
        """Helix's ``addOrUpdateWorkflowUserContentMap``: set the keys of ``content`` in
        workflow ``name``'s map (other keys stay). :class:`NotFound` when it does not exist."""
        self._check_open()
        self._mutate("UpdateUserContent", _request(name, "", "", content))

    def add_or_update_job_user_content_map(
        self, name: str, job: str, content: Mapping[str, str]
    ) -> None:
        """Helix's ``addOrUpdateJobUserContentMap``: the same at the scope of job ``job``."""
        self._check_open()
        self._mutate("UpdateUserContent", _request(name, _job(job), "", content))

    def add_or_update_task_user_content_map(
        self, name: str, job: str, task_id: str | int, content: Mapping[str, str]
    ) -> None:
        """Helix's ``addOrUpdateTaskUserContentMap``: the same at the scope of task
        ``task_id`` (by id, or a ``num_tasks`` job's partition number). :class:`NotFound`
        when the job has no such task."""
        self._check_open()
        request = _request(name, _job(job), task_name(task_id), content)
        self._mutate("UpdateUserContent", request)


def _request(name: str, job: str, task: str, content: Mapping[str, str]) -> pb.UserContentRequest:
    # (a function, not a method: the async driver builds requests by calling this class's
    # methods on a stand-in that has only _check_open and _mutate)
    return pb.UserContentRequest(
        request_id=_rid(), workflow=_wf(name), job=job, task=task, content=check_content(content)
    )
