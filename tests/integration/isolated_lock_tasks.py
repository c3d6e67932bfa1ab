"""Tasks for ``test_isolated_locks``: ``tests.integration.isolated_lock_tasks:registry``.

They run process-isolated (``JobConfig(isolation="process")``), so ``ctx.locks`` is served by
the participant. Each writes what the test needs to its TASK-scope user content.

- ``LockedWrite`` [resource, target]: acquires ``[0, 10)`` EXCLUSIVE, commits
  ``SetData(target, b"\\x00\\xff" + holder id)`` inside a critical section, records the errors
  a parent-side ``InvalidConfig`` and a failing op (``MultiFailed``) arrive as, releases,
  and records that a critical section is then refused (``LockRevoked``).
- ``HoldLock`` [resource]: acquires ``[0, 10)`` EXCLUSIVE, writes ``pid`` and ``token`` and
  waits for its cancel (the test SIGKILLs it).
- ``FreezeInSection`` [resource]: acquires ``[0, 10)`` EXCLUSIVE, enters a critical section,
  writes ``pid`` then ``inside``, and SIGSTOPs its own process (a task hung inside).
"""

from __future__ import annotations

import os
import signal

from kazoo.exceptions import NoNodeError

from helixpy.errors import InvalidConfig, LockRevoked
from helixpy.model import TaskResult, TaskStatus
from helixpy.participant.registry import TaskContext, TaskRegistry
from helixpy.store.fencing import MultiFailed
from helixpy.store.ops import SetData

registry = TaskRegistry()
SPAN = (0.0, 10.0)


def _acquire(ctx: TaskContext) -> int:
    result = ctx.locks.acquire(ctx.task_config["resource"], SPAN, timeout=30)
    if not result.ok or result.lock is None:
        raise RuntimeError(f"lock not granted: {result.reason}")
    ctx.put_user_content("token", str(result.lock.token))
    return result.lock.token


@registry.task("LockedWrite")
def locked_write(ctx: TaskContext) -> None:
    resource, target = ctx.task_config["resource"], ctx.task_config["target"]
    holder = ctx.locks.holder.id
    ctx.put_user_content("holder", holder)
    ctx.put_user_content("group", ctx.locks.group)
    _acquire(ctx)
    with ctx.locks.critical_section(resource, [SPAN]):
        ctx.locks.commit([SetData(target, b"\x00\xff" + holder.encode())])
    # An error raised in the participant arrives as its own class, message and fields
    try:
        ctx.locks.try_acquire(resource, ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"))
    except InvalidConfig as exc:
        ctx.put_user_content("invalid", f"{type(exc).__name__}|{exc.field}|{exc}")
    missing = SetData(f"{target}-missing", b"x")
    try:
        ctx.locks.commit([missing])
    except MultiFailed as exc:
        same = exc.op is missing and isinstance(exc.error, NoNodeError)
        ctx.put_user_content("failed_op", f"{type(exc).__name__}|{same}|{exc}")
    ctx.locks.release(resource)
    try:
        with ctx.locks.critical_section(resource, [SPAN]):
            pass
    except LockRevoked as exc:
        ctx.put_user_content("after_release", f"{type(exc).__name__}|{exc}")


@registry.task("HoldLock")
def hold_lock(ctx: TaskContext) -> TaskResult:
    _acquire(ctx)
    ctx.put_user_content("pid", str(os.getpid()))
    ctx.cancelled.wait(600)  # until the test kills this process
    return TaskResult(TaskStatus.CANCELED, "cancelled while holding the lock")


@registry.task("FreezeInSection")
def freeze_in_section(ctx: TaskContext) -> TaskResult:
    _acquire(ctx)
    with ctx.locks.critical_section(ctx.task_config["resource"], [SPAN]):
        ctx.put_user_content("pid", str(os.getpid()))
        ctx.put_user_content("inside", "1")
        os.kill(os.getpid(), signal.SIGSTOP)  # frozen here until SIGKILLed
        ctx.cancelled.wait(600)
    return TaskResult(TaskStatus.CANCELED, "woke up")
