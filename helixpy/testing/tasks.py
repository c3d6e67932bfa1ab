"""Sample tasks for demos and tests: ``helixpy.testing.tasks:registry``.

Commands (their ``task_config`` keys in brackets):

- ``Noop``: completes at once.
- ``Sleep`` [seconds]: waits, returning CANCELED early when cancelled.
- ``Fail`` / ``Fatal``: return FAILED / FATAL_FAILED [info].
- ``Raise`` [message]: raises RuntimeError(message).
- ``CancelUnasked``: returns CANCELED without being asked to cancel.
- ``Stubborn`` [seconds, ignore_sigterm]: ignores cancel, sleeps, then completes; writes
  TASK-scope ``pid`` (its process) first. With ``ignore_sigterm`` it ignores SIGTERM too
  (in a worker process of a process-isolated job, whose main thread runs it).
- ``Record`` [seconds]: records what a test needs in its TASK-scope user content: the
  instance, attempt, start and finish times, and the most tasks of its job seen running at
  once on this participant (``max_concurrent``).
- ``WriteContent``: writes ``"<job>"`` at WORKFLOW scope key ``written_by``, the job name at JOB
  scope key ``job``, and its task id at TASK scope key ``task``.
- ``EchoConfig``: writes its ``task_config`` as JSON at TASK scope key ``config``, and the
  Python type name of each value at key ``types`` (typed arguments arrive as given).
- ``ReadContent``: copies the WORKFLOW-scope ``written_by`` it sees into its TASK scope
  ``saw``.
- ``Spin`` [seconds, chunk]: burns CPU in C calls that hold the GIL (``sum(range(chunk))``)
  until ``seconds`` passed or it is cancelled; writes TASK-scope ``pid`` (its process).
- ``Crash`` [code]: ends its process at once with ``os._exit(code)`` (for process isolation).
- ``SumOnce`` [open_cost, splits]: the one-shot peer of ``Sum``: sleeps ``open_cost``, then
  adds up the JSON list ``splits`` and writes TASK-scope ``total``.
- ``Sum`` (a ``StreamTask``) [delay, fail_value, open_cost, fail_close]: adds up splits
  ``{"v": n}`` (sleeping ``delay`` seconds per split, raising on ``fail_value``); a split's
  result is ``2n``; its contribution is ``{"count", "total", "opened"}`` (``opened``: an id
  made in ``open``, so a test sees how often a slot was opened); ``close`` writes TASK-scope
  ``closed`` (with ``fail_close`` it raises instead on a slot's first attempt).
- ``Locker`` [resource, start, end, type, hold, timeout]: ``ctx.locks.acquire`` of
  ``[start, end)`` (EXCLUSIVE unless ``type``), then holds it ``hold`` seconds and checks it
  still holds with an empty ``commit``; writes TASK-scope ``ok``, ``revoked``, ``granted``
  and ``done`` (times) and ``committed``. The lock is released when the attempt ends.
- ``Contend`` [resource, rounds, seed]: ``rounds`` times, asks ``ctx.locks`` for a random
  interval of ``[0, 20)`` of random type (waiting up to 2 s), holds it briefly, checks it
  with ``commit([])`` and releases it; always completes (a concurrency exercise).
- ``Chaos`` [dir, seconds]: writes ``<dir>/<wf>.<job>.<task>.<attempt>`` with its instance,
  incarnation and start time, waits ``seconds`` (returning CANCELED if cancelled), then
  appends its end time and ``done`` (or ``cancelled``): the chaos test's attempt log.
- ``Return`` [value, size, fail_attempts, hold, hold_attempts]: completes with a value:
  ``value`` (any JSON) if given, else ``{"task", "attempt", "instance"}`` (and ``item``, a
  fanned-out task's element, when it has one); with ``size``, a
  string of ``size`` pseudo-random hex characters (the same for the same task), for values
  that need chunks. Attempts numbered in ``fail_attempts`` return FAILED with a value
  (which is not kept). With ``hold`` seconds, attempts in ``hold_attempts`` (default
  ``[1]``) first write TASK-scope ``returned`` and then hold that long in a follow-up, so
  the value is made but not yet reported. With ``need_file``, it returns FAILED while that
  file does not exist; with ``wait_file``, it first waits for that file (CANCELED if
  cancelled meanwhile).
- ``Unstorable``: returns a set, which is not a JSON value.
- ``Gather`` [from]: returns ``ctx.parent_results(from)``: job ``from``'s results by task id.
- ``FanOut`` [count, fail_at]: emits ``count`` follow-ups (``ctx.emit``); follow-up ``i``
  writes TASK-scope ``f<i>`` = its attempt, and the one numbered ``fail_at`` raises.
- ``AsyncSleep``, ``AsyncReturn``, ``AsyncValue``, ``AsyncRecord``, ``AsyncEmit``: ``async
  def`` tasks, described in :mod:`helixpy.testing.async_tasks`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from helixpy.errors import LockRevoked
from helixpy.model import Scope, TaskResult, TaskStatus
from helixpy.model.locks import LockType
from helixpy.participant.registry import TaskContext, TaskRegistry
from helixpy.participant.stream import StreamTask
from helixpy.testing.async_tasks import register_async_tasks
from helixpy.testing.gauge import Gauge


class SumStream(StreamTask):
    """The ``Sum`` stream slot (see the module docstring)."""

    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.delay = float(ctx.task_config.get("delay", "0"))
        fail = ctx.task_config.get("fail_value")
        self.fail_value = int(fail) if fail is not None else None
        self.count = self.total = 0
        self.opened = ""

    def open(self, checkpoint: dict[str, Any] | None) -> None:
        time.sleep(float(self.ctx.task_config.get("open_cost", "0")))  # expensive set-up
        self.opened = uuid.uuid4().hex

    def process(self, split: Any) -> object | None:
        value = int(split["v"])
        if value == self.fail_value:
            raise ValueError(f"split {value} is poison")
        if self.delay and self.ctx.cancelled.wait(self.delay):
            raise RuntimeError("cancelled mid-split")
        self.count += 1
        self.total += value
        return 2 * value

    def on_barrier(self) -> dict[str, Any]:
        out = {"count": self.count, "total": self.total, "opened": self.opened}
        self.count = self.total = 0
        return out

    def close(self) -> None:
        if self.ctx.task_config.get("fail_close") and self.ctx.attempt == 1:
            raise RuntimeError("close failed on the first attempt")
        self.ctx.put_user_content("closed", "1")


def make_registry() -> TaskRegistry:
    """A fresh registry of the sample commands."""
    reg = TaskRegistry()
    gauge = Gauge()

    @reg.task("Noop")
    def noop(ctx: TaskContext) -> None:
        return None

    @reg.task("Sleep")
    def sleep(ctx: TaskContext) -> TaskResult | None:
        if ctx.cancelled.wait(float(ctx.task_config.get("seconds", "1"))):
            return TaskResult(TaskStatus.CANCELED, "cancelled while sleeping")
        return None

    @reg.task("Fail")
    def fail(ctx: TaskContext) -> TaskResult:
        return TaskResult(TaskStatus.FAILED, ctx.task_config.get("info", "failed on purpose"))

    @reg.task("Fatal")
    def fatal(ctx: TaskContext) -> TaskResult:
        return TaskResult(TaskStatus.FATAL_FAILED, ctx.task_config.get("info", "fatal on purpose"))

    @reg.task("Stubborn")
    def stubborn(ctx: TaskContext) -> TaskResult:
        if ctx.task_config.get("ignore_sigterm"):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        ctx.put_user_content("pid", str(os.getpid()), Scope.TASK)
        time.sleep(float(ctx.task_config.get("seconds", "1")))  # ignores cancel on purpose
        return TaskResult(TaskStatus.COMPLETED, "finished regardless")

    @reg.task("CancelUnasked")
    def cancel_unasked(ctx: TaskContext) -> TaskResult:
        return TaskResult(TaskStatus.CANCELED, "gave up by itself")

    @reg.task("Raise")
    def raise_(ctx: TaskContext) -> None:
        raise RuntimeError(ctx.task_config.get("message", "boom"))

    @reg.task("Record")
    def record(ctx: TaskContext) -> TaskResult | None:
        key = (ctx.workflow, ctx.job)
        start = time.time()
        peak = gauge.enter(key)
        try:
            if ctx.cancelled.wait(float(ctx.task_config.get("seconds", "0.05"))):
                return TaskResult(TaskStatus.CANCELED, "cancelled")
            finish = time.time()
        finally:
            gauge.leave(key)
        for k, v in (
            ("instance", ctx.instance),
            ("attempt", str(ctx.attempt)),
            ("start", repr(start)),
            ("finish", repr(finish)),
            ("max_concurrent", str(peak)),
        ):
            ctx.put_user_content(k, v)
        return None

    @reg.task("WriteContent")
    def write_content(ctx: TaskContext) -> None:
        ctx.put_user_content("written_by", ctx.job, Scope.WORKFLOW)
        ctx.put_user_content("job", ctx.job, Scope.JOB)
        ctx.put_user_content("task", ctx.task_id, Scope.TASK)

    @reg.task("EchoConfig")
    def echo_config(ctx: TaskContext) -> None:
        ctx.put_user_content("config", json.dumps(dict(ctx.task_config), sort_keys=True))
        types = {k: type(v).__name__ for k, v in ctx.task_config.items()}
        ctx.put_user_content("types", json.dumps(types, sort_keys=True))

    @reg.task("Spin")
    def spin(ctx: TaskContext) -> TaskResult | None:
        end = time.monotonic() + float(ctx.task_config.get("seconds", "1"))
        while time.monotonic() < end:
            if ctx.cancelled.is_set():
                return TaskResult(TaskStatus.CANCELED, "cancelled while spinning")
            # One C call that never releases the GIL (~0.4 s here): other threads of this
            # process, the ZooKeeper session's included, wait for it to return.
            sum(range(int(ctx.task_config.get("chunk", "30000000"))))
        ctx.put_user_content("pid", str(os.getpid()))
        return None

    @reg.task("Crash")
    def crash(ctx: TaskContext) -> None:
        os._exit(int(ctx.task_config.get("code", "3")))

    reg.register("Sum", SumStream)

    @reg.task("SumOnce")
    def sum_once(ctx: TaskContext) -> None:
        time.sleep(float(ctx.task_config.get("open_cost", "0")))
        splits = json.loads(ctx.task_config.get("splits", "[]"))
        ctx.put_user_content("total", str(sum(int(s["v"]) for s in splits)))

    @reg.task("Locker")
    def locker(ctx: TaskContext) -> TaskResult | None:
        cfg = ctx.task_config
        interval = (float(cfg.get("start", "0")), float(cfg.get("end", "10")))
        result = ctx.locks.acquire(
            cfg.get("resource", "table"),
            interval,
            LockType(cfg.get("type", "EXCLUSIVE")),
            timeout=float(cfg["timeout"]) if "timeout" in cfg else None,
        )
        ctx.put_user_content("ok", str(result.ok))
        ctx.put_user_content("revoked", str(result.revoked))
        if not result.ok:
            return TaskResult(TaskStatus.FAILED, f"lock not granted: {result.reason}")
        ctx.put_user_content("granted", repr(time.time()))
        if ctx.cancelled.wait(float(cfg.get("hold", "0"))):
            return TaskResult(TaskStatus.CANCELED, "cancelled while holding the lock")
        try:
            ctx.locks.commit([])
            ctx.put_user_content("committed", "True")
        except LockRevoked as exc:
            ctx.put_user_content("committed", f"False: {exc}")
        ctx.put_user_content("done", repr(time.time()))
        return None

    @reg.task("Contend")
    def contend(ctx: TaskContext) -> None:
        cfg = ctx.task_config
        rng = random.Random(f"{cfg.get('seed', '0')}/{ctx.job}/{ctx.attempt}")
        resource = cfg.get("resource", "shared")
        for _ in range(int(cfg.get("rounds", "3"))):
            start = rng.randrange(0, 18)
            interval = (start, start + rng.randrange(1, 20 - start))
            kind = rng.choice([LockType.SHARED, LockType.EXCLUSIVE])
            if ctx.locks.acquire(resource, interval, kind, timeout=2.0).ok:
                time.sleep(rng.uniform(0.01, 0.1))  # the work done under the lock
                with contextlib.suppress(LockRevoked):
                    ctx.locks.commit([])
                ctx.locks.release(resource)

    @reg.task("Chaos")
    def chaos(ctx: TaskContext) -> TaskResult | None:
        path = (
            Path(ctx.task_config["dir"]) / f"{ctx.workflow}.{ctx.job}.{ctx.task_id}.{ctx.attempt}"
        )
        start = time.time()
        with path.open("w") as out:
            out.write(f"{ctx.instance} {ctx.incarnation} {start!r}\n")
        cancelled = ctx.cancelled.wait(float(ctx.task_config.get("seconds", "0.2")))
        with path.open("a") as out:
            out.write(f"{time.time()!r} {'cancelled' if cancelled else 'done'}\n")
        return TaskResult(TaskStatus.CANCELED, "cancelled") if cancelled else None

    @reg.task("FanOut")
    def fan_out(ctx: TaskContext) -> None:
        fail_at = int(ctx.task_config.get("fail_at", "-1"))

        def follow_up(i: int) -> None:
            if i == fail_at:
                raise RuntimeError(f"follow-up {i} failed")
            ctx.put_user_content(f"f{i}", str(ctx.attempt))

        for i in range(int(ctx.task_config.get("count", "10"))):
            ctx.emit(follow_up, i)

    @reg.task("Return")
    def return_(ctx: TaskContext) -> Any:
        cfg = ctx.task_config
        value: Any = {"task": ctx.task_id, "attempt": ctx.attempt, "instance": ctx.instance}
        if "item" in cfg:
            value["item"] = cfg["item"]
        if "value" in cfg:
            value = cfg["value"]
        if "size" in cfg:
            seed = f"{ctx.workflow}/{ctx.job}/{ctx.task_id}"
            value = random.Random(seed).randbytes(int(cfg["size"]) // 2 + 1).hex()[: cfg["size"]]
        if "need_file" in cfg and not Path(cfg["need_file"]).exists():
            return TaskResult(TaskStatus.FAILED, f"no {cfg['need_file']}")
        while "wait_file" in cfg and not Path(cfg["wait_file"]).exists():
            if ctx.cancelled.wait(0.05):  # (a sample task may poll; a test must not)
                return TaskResult(TaskStatus.CANCELED, "cancelled while waiting")
        if ctx.attempt in cfg.get("fail_attempts", []):
            return TaskResult(TaskStatus.FAILED, "failed on purpose", value=value)
        if "hold" in cfg and ctx.attempt in cfg.get("hold_attempts", [1]):
            ctx.put_user_content("returned", str(ctx.attempt))
            ctx.emit(time.sleep, float(cfg["hold"]))
        return value

    @reg.task("Gather")
    def gather(ctx: TaskContext) -> Any:
        return ctx.parent_results(ctx.task_config["from"])

    @reg.task("Unstorable")
    def unstorable(ctx: TaskContext) -> Any:
        return {"a set": {1, 2}}

    @reg.task("ReadContent")
    def read_content(ctx: TaskContext) -> None:
        ctx.put_user_content("saw", ctx.get_user_content("written_by", Scope.WORKFLOW) or "")

    register_async_tasks(reg)
    return reg


registry = make_registry()
