"""Sample ``async def`` tasks for demos and tests, registered into
``helixpy.testing.tasks:registry`` by :func:`register_async_tasks`.

Commands (their ``task_config`` keys in brackets):

- ``AsyncSleep`` [seconds]: writes TASK-scope ``started`` = its attempt, then awaits
  ``asyncio.sleep(seconds)`` (default 1; a list gives attempt ``n`` its ``n``-th entry, the
  last one to later attempts). When cancelled in either await it writes ``cancelled`` =
  its attempt (with ``aput_user_content``, inside its ``except CancelledError``) and lets
  the ``CancelledError`` go on: the attempt ends in its cancel's state (STOPPED, TIMED_OUT,
  ...).
- ``AsyncReturn`` [value, parent]: completes with ``value`` if given, else with the
  results of job ``parent`` (``aparent_results``) if given, else with
  ``{"task", "attempt", "instance", "pid"}``.
- ``AsyncValue``: an :class:`~helixpy.participant.registry.AsyncTask` class; returns
  ``TaskResult(COMPLETED, "from an AsyncTask", value={"task", "attempt", "kind"})``.
- ``AsyncRecord`` [seconds]: the async ``Record``: awaits ``seconds`` (default 0.05), then
  writes TASK-scope ``start``, ``finish`` and ``max_concurrent`` (the most ``AsyncRecord``
  tasks of its job seen running at once in this process).
- ``AsyncEmit`` [count, fail_at, delay]: emits ``count`` (default 3) coroutine follow-ups
  and one plain function follow-up. Follow-up ``i`` awaits ``delay`` seconds (default 0.2)
  and writes TASK-scope ``f<i>`` = its attempt; the one numbered ``fail_at`` raises
  instead. The function follow-up writes ``sync`` = its attempt.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from helixpy.model import TaskResult, TaskStatus
from helixpy.participant.registry import AsyncTask, TaskContext, TaskRegistry
from helixpy.testing.gauge import Gauge


class AsyncValue(AsyncTask):
    """The ``AsyncValue`` command: an async Task class returning a value."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx

    async def run(self) -> TaskResult:
        await asyncio.sleep(0)  # a real suspension: the loop runs others meanwhile
        value = {"task": self.ctx.task_id, "attempt": self.ctx.attempt, "kind": "AsyncTask"}
        return TaskResult(TaskStatus.COMPLETED, "from an AsyncTask", value=value)


def register_async_tasks(reg: TaskRegistry) -> None:
    """Register the async sample commands (see the module docstring) into ``reg``."""
    gauge = Gauge()

    @reg.task("AsyncSleep")
    async def async_sleep(ctx: TaskContext) -> None:
        seconds = ctx.task_config.get("seconds", 1)
        if isinstance(seconds, list):
            seconds = seconds[min(ctx.attempt, len(seconds)) - 1]
        try:
            await ctx.aput_user_content("started", str(ctx.attempt))
            await asyncio.sleep(float(seconds))
        except asyncio.CancelledError:
            # Awaiting again is fine here: the cancel was delivered once, at the sleep.
            await ctx.aput_user_content("cancelled", str(ctx.attempt))
            raise

    @reg.task("AsyncReturn")
    async def async_return(ctx: TaskContext) -> Any:
        cfg = ctx.task_config
        if "value" in cfg:
            return cfg["value"]
        if "parent" in cfg:
            return await ctx.aparent_results(str(cfg["parent"]))
        return {
            "task": ctx.task_id,
            "attempt": ctx.attempt,
            "instance": ctx.instance,
            "pid": os.getpid(),
        }

    reg.register("AsyncValue", AsyncValue)

    @reg.task("AsyncRecord")
    async def async_record(ctx: TaskContext) -> None:
        key = (ctx.workflow, ctx.job)
        start = time.time()
        peak = gauge.enter(key)
        try:
            await asyncio.sleep(float(ctx.task_config.get("seconds", 0.05)))
            finish = time.time()
        finally:
            gauge.leave(key)
        for k, v in (("start", repr(start)), ("finish", repr(finish)), ("max_concurrent", peak)):
            await ctx.aput_user_content(k, str(v))

    @reg.task("AsyncEmit")
    async def async_emit(ctx: TaskContext) -> None:
        cfg = ctx.task_config
        fail_at = int(cfg.get("fail_at", -1))
        delay = float(cfg.get("delay", 0.2))

        async def follow_up(i: int) -> None:
            await asyncio.sleep(delay)
            if i == fail_at:
                raise RuntimeError(f"follow-up {i} failed")
            await ctx.aput_user_content(f"f{i}", str(ctx.attempt))

        def sync_follow_up() -> None:
            ctx.put_user_content("sync", str(ctx.attempt))

        for i in range(int(cfg.get("count", 3))):
            ctx.emit(follow_up, i)
        ctx.emit(sync_follow_up)
