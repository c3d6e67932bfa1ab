"""``AsyncTaskDriver``: the TaskDriver as coroutines, plus ``watch`` for state-change events.

``async with AsyncTaskDriver(zk, cluster) as driver``: ``await driver.start(wf)``,
``await driver.poll_for_workflow_state(name, TaskState.COMPLETED)``,
``await driver.get_task_result(name, job, task)``, and
``async for event in driver.watch(name)`` yielding :class:`WorkflowEvent` values driven by
ZooKeeper watches. Mutations use ``grpc.aio``; ZooKeeper reads use kazoo's asynchronous
API; no call takes a thread of its own (see ``docs/guide/asyncio-client.md``).
"""

from helixpy.driver.aio.driver import AsyncTaskDriver
from helixpy.driver.aio.watch import WorkflowEvent, WorkflowWatch

__all__ = ["AsyncTaskDriver", "WorkflowEvent", "WorkflowWatch"]
