"""The rest of the TaskDriver's mutations as coroutines, built by the sync driver's own code.

Each sync mutation (``TaskDriver.add_task`` and the others below) checks its arguments and
builds its gRPC request, then hands it to ``self._mutate``; nothing else of the driver is
used. So the request is built by calling the sync method on a :class:`_Recorder`, which
stands in for the driver and records what it was handed, and the coroutine sends that:
one piece of code decides what each mutation sends, in both drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from helixpy.driver.aio.base import AsyncDriverBase
from helixpy.driver.driver import TaskDriver
from helixpy.driver.polling import check_timeout
from helixpy.model import TaskConfig, TaskState, WorkflowConfig


class _Recorder:
    """What a sync mutation sees as its driver: open, and recording its one call."""

    def __init__(self) -> None:
        self.call: tuple[str, Any] | None = None

    def _check_open(self) -> None:
        """(The async driver checks itself before building.)"""

    def _mutate(self, method: str, request: Any) -> None:
        self.call = (method, request)


def build(mutation: Callable[..., None], *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """(RPC method, request) of the sync ``mutation`` called with ``args``: its argument
    checks raise here, before anything is sent."""
    recorder = _Recorder()
    mutation(cast(TaskDriver, recorder), *args, **kwargs)
    assert recorder.call is not None, f"{mutation.__name__} sent nothing"
    return recorder.call


class MutationMethods(AsyncDriverBase):
    """Mixed into :class:`~helixpy.driver.aio.AsyncTaskDriver`, which defines the methods
    stubbed here (``stop``, ``poll_for_workflow_state``)."""

    async def stop(self, name: str) -> None:
        raise NotImplementedError

    async def poll_for_workflow_state(
        self, name: str, *states: TaskState | str, timeout: float = 300.0
    ) -> TaskState:
        raise NotImplementedError

    async def _send(self, mutation: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        self._check_open()
        await self._mutate(*build(mutation, *args, **kwargs))

    async def rerun_failed(self, name: str) -> None:
        """See :meth:`TaskDriver.rerun_failed`."""
        await self._send(TaskDriver.rerun_failed, name)

    async def delete_job(self, queue: str, job: str, force: bool = False) -> None:
        """See :meth:`TaskDriver.delete_job`."""
        await self._send(TaskDriver.delete_job, queue, job, force)

    async def flush_queue(self, queue: str) -> None:
        """See :meth:`TaskDriver.flush_queue`."""
        await self._send(TaskDriver.flush_queue, queue)

    async def cleanup_queue(self, queue: str) -> None:
        """See :meth:`TaskDriver.cleanup_queue` (the same as :meth:`flush_queue`)."""
        await self.flush_queue(queue)

    async def add_task(self, name: str, job: str, task_config: TaskConfig) -> None:
        """See :meth:`TaskDriver.add_task`."""
        await self._send(TaskDriver.add_task, name, job, task_config)

    async def delete_task(self, name: str, job: str, task_id: str) -> None:
        """See :meth:`TaskDriver.delete_task`."""
        await self._send(TaskDriver.delete_task, name, job, task_id)

    async def update_workflow(self, name: str, config: WorkflowConfig) -> None:
        """See :meth:`TaskDriver.update_workflow`."""
        await self._send(TaskDriver.update_workflow, name, config)

    async def set_instance_enabled(self, instance: str, enabled: bool) -> None:
        """See :meth:`TaskDriver.set_instance_enabled`."""
        await self._send(TaskDriver.set_instance_enabled, instance, enabled)

    async def set_instance_tags(self, instance: str, tags: list[str] | tuple[str, ...]) -> None:
        """See :meth:`TaskDriver.set_instance_tags`."""
        await self._send(TaskDriver.set_instance_tags, instance, tags)

    async def set_partition_state(
        self, instance: str, resource: str, partition: str, state: str
    ) -> None:
        """See :meth:`TaskDriver.set_partition_state`."""
        await self._send(TaskDriver.set_partition_state, instance, resource, partition, state)

    async def remove_partition(self, instance: str, resource: str, partition: str) -> None:
        """See :meth:`TaskDriver.remove_partition`."""
        await self._send(TaskDriver.remove_partition, instance, resource, partition)

    async def add_or_update_workflow_user_content_map(
        self, name: str, content: Mapping[str, str]
    ) -> None:
        """See :meth:`TaskDriver.add_or_update_workflow_user_content_map`."""
        await self._send(TaskDriver.add_or_update_workflow_user_content_map, name, content)

    async def add_or_update_job_user_content_map(
        self, name: str, job: str, content: Mapping[str, str]
    ) -> None:
        """See :meth:`TaskDriver.add_or_update_job_user_content_map`."""
        await self._send(TaskDriver.add_or_update_job_user_content_map, name, job, content)

    async def add_or_update_task_user_content_map(
        self, name: str, job: str, task_id: str | int, content: Mapping[str, str]
    ) -> None:
        """See :meth:`TaskDriver.add_or_update_task_user_content_map`."""
        await self._send(
            TaskDriver.add_or_update_task_user_content_map, name, job, task_id, content
        )

    async def set_target_task_thread_pool_size(self, instance: str, size: int | None) -> None:
        """See :meth:`TaskDriver.set_target_task_thread_pool_size`."""
        await self._send(TaskDriver.set_target_task_thread_pool_size, instance, size)

    async def set_cluster_config(self, **settings: Any) -> None:
        """See :meth:`TaskDriver.set_cluster_config`."""
        await self._send(TaskDriver.set_cluster_config, **settings)

    async def wait_to_stop(self, name: str, timeout: float = 300.0) -> None:
        """See :meth:`TaskDriver.wait_to_stop`."""
        check_timeout(timeout)  # before the workflow is stopped
        await self.stop(name)
        finished = (TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED)
        await self.poll_for_workflow_state(name, TaskState.STOPPED, *finished, timeout=timeout)
