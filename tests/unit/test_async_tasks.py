"""``async def`` tasks without ZooKeeper: how the registry wraps them, and the event-loop
runner (cancel, emit relay, async user content, close) with real threads and a real loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from helixpy.errors import TooMuchWork
from helixpy.model import JobConfig, Scope, TaskPartitionState, TaskResult, TaskStatus
from helixpy.model.values import JsonValue
from helixpy.participant.aio import CancelEvent, FollowUpCancelled, LoopRunner
from helixpy.participant.attempt import Attempt, CancelReason, run_attempt, with_follow_ups
from helixpy.participant.executor import Executor, Item, WorkGroup
from helixpy.participant.registry import AsyncTask, Task, TaskContext, TaskRegistry

P = TaskPartitionState
WAIT = 30.0  # bound of every wait here (the per-test timeout is the backstop)


@pytest.fixture
def runner() -> Iterator[LoopRunner]:
    loop = LoopRunner(name="aio-test")
    yield loop
    loop.close()


def make_ctx(
    runner: LoopRunner | None = None,
    cancelled: threading.Event | None = None,
    command: str = "X",
    **kw: Any,
) -> TaskContext:
    ctx = TaskContext(
        workflow="wf",
        job="j",
        task_id="0",
        partition=0,
        attempt=1,
        instance="p0",
        job_config=JobConfig(command=command, num_tasks=1),
        task_config={},
        command=command,
        _aio=runner,
        **kw,
    )
    if cancelled is not None:
        ctx.cancelled = cancelled
    return ctx


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``fn`` on a thread of its own (as a participant's worker would); its result or
    exception lands in the returned list."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def joined(thread: threading.Thread, out: list[Any]) -> Any:
    thread.join(WAIT)
    assert not thread.is_alive(), "the waiting thread was never woken"
    return out[0]


def task_of(registry: TaskRegistry, command: str, ctx: TaskContext) -> Task:
    factory = registry.get(command)
    assert factory is not None
    task = factory(ctx)
    assert isinstance(task, Task)  # what the participant sees: an ordinary Task
    return task


# --- the registry -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("returned", "expected"),
    [
        (None, TaskResult(TaskStatus.COMPLETED)),
        ({"n": [1, 2]}, TaskResult(TaskStatus.COMPLETED, value={"n": [1, 2]})),
        (TaskResult(TaskStatus.FAILED, "no"), TaskResult(TaskStatus.FAILED, "no")),
    ],
)
def test_an_async_function_returns_what_a_task_function_returns(
    runner: LoopRunner, returned: object, expected: TaskResult
) -> None:
    # Given an async function registered with the task decorator
    reg = TaskRegistry()

    @reg.task("A")
    async def a(ctx: TaskContext) -> object:
        await asyncio.sleep(0)
        return returned

    # When the participant's Task for it runs, Then the value means what it means for a
    # function task
    assert task_of(reg, "A", make_ctx(runner)).run() == expected
    assert a.__name__ == "a"  # the decorator gives the function back


def test_an_async_function_that_raises_raises_from_run(runner: LoopRunner) -> None:
    reg = TaskRegistry()

    @reg.task("Boom")
    async def boom(ctx: TaskContext) -> None:
        await asyncio.sleep(0)
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        task_of(reg, "Boom", make_ctx(runner)).run()


class Doubler(AsyncTask):
    def __init__(self, ctx: TaskContext) -> None:
        self.ctx = ctx
        self.cancels = 0

    async def run(self) -> TaskResult:
        await asyncio.sleep(0)
        return TaskResult(TaskStatus.COMPLETED, "doubled", value=2 * self.ctx.attempt)

    def cancel(self) -> None:
        self.cancels += 1


def test_an_async_task_class_factory_or_duck_is_wrapped_into_a_task(runner: LoopRunner) -> None:
    # Given an AsyncTask class, a factory function making one, a class with an async run
    # and a plain Task
    reg = TaskRegistry()
    reg.register("Class", Doubler)
    reg.register("Factory", lambda ctx: Doubler(ctx))

    class Plain(Task):
        def __init__(self, ctx: TaskContext) -> None:
            pass

        def run(self) -> TaskResult:
            return TaskResult(TaskStatus.COMPLETED)

    class Duck:  # no AsyncTask base: an async run() is enough
        def __init__(self, ctx: TaskContext) -> None:
            pass

        async def run(self) -> int:
            return 7

        def cancel(self) -> None:
            pass

    reg.register("Plain", Plain)
    reg.register("Duck", Duck)  # type: ignore[arg-type]  # typed users subclass AsyncTask
    assert task_of(reg, "Duck", make_ctx(runner)).run() == TaskResult(TaskStatus.COMPLETED, value=7)
    # Then the async ones run as Tasks returning their values, and the plain one is itself
    for command in ("Class", "Factory"):
        result = task_of(reg, command, make_ctx(runner)).run()
        assert result == TaskResult(TaskStatus.COMPLETED, "doubled", value=2)
    assert type(task_of(reg, "Plain", make_ctx(runner))) is Plain


def test_without_a_participant_loop_an_async_task_runs_on_a_loop_of_its_own() -> None:
    reg = TaskRegistry()
    reg.register("Class", Doubler)
    assert task_of(reg, "Class", make_ctx(None)).run().value == 2


# --- cancel -----------------------------------------------------------------------------


def sleeper_registry(
    awaiting: threading.Event, seen: list[str], swallow: object = "no"
) -> TaskRegistry:
    """``Sleeper``: sets ``awaiting``, then awaits an hour; records a CancelledError in
    ``seen`` and re-raises it (or, with ``swallow``, returns that instead)."""
    reg = TaskRegistry()

    @reg.task("Sleeper")
    async def sleeper(ctx: TaskContext) -> object:
        try:
            seen.append("began")
            awaiting.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("CancelledError")
            if swallow == "no":
                raise
            return swallow
        return "slept"

    return reg


def test_a_cancel_mid_await_raises_cancelled_error_there_and_ends_canceled(
    runner: LoopRunner,
) -> None:
    # Given an async task suspended in an await, its worker thread blocked on it
    awaiting, seen = threading.Event(), list[str]()
    ctx = make_ctx(runner)
    task = task_of(sleeper_registry(awaiting, seen), "Sleeper", ctx)
    thread, out = in_thread(task.run)
    assert awaiting.wait(WAIT)
    # When the attempt's cancel sets ctx.cancelled (from another thread)
    ctx.cancelled.set()
    # Then CancelledError was raised at the await, and the worker wakes with CANCELED
    assert joined(thread, out) == TaskResult(TaskStatus.CANCELED)
    assert seen == ["began", "CancelledError"]


def test_task_cancel_reaches_the_coroutine_when_cancelled_is_a_plain_event(
    runner: LoopRunner,
) -> None:
    # Given a context whose cancelled is a plain threading.Event (it runs no hooks)
    awaiting, seen = threading.Event(), list[str]()
    ctx = make_ctx(runner, cancelled=threading.Event())
    task = task_of(sleeper_registry(awaiting, seen), "Sleeper", ctx)
    thread, out = in_thread(task.run)
    assert awaiting.wait(WAIT)
    # When cancelled as Attempt.cancel does it: the event, then the task's cancel()
    ctx.cancelled.set()
    task.cancel()
    # Then the task object's cancel() reached the coroutine
    assert joined(thread, out) == TaskResult(TaskStatus.CANCELED)
    assert seen == ["began", "CancelledError"]


@pytest.mark.parametrize(
    ("swallow", "expected"),
    [
        ("partial", TaskResult(TaskStatus.COMPLETED, value="partial")),
        (None, TaskResult(TaskStatus.CANCELED)),  # None after a cancel: CANCELED, as always
        (TaskResult(TaskStatus.FAILED, "gave up"), TaskResult(TaskStatus.FAILED, "gave up")),
    ],
)
def test_a_coroutine_that_catches_its_cancel_keeps_what_it_returns(
    runner: LoopRunner, swallow: object, expected: TaskResult
) -> None:
    awaiting, seen = threading.Event(), list[str]()
    ctx = make_ctx(runner)
    task = task_of(sleeper_registry(awaiting, seen, swallow), "Sleeper", ctx)
    thread, out = in_thread(task.run)
    assert awaiting.wait(WAIT)
    ctx.cancelled.set()
    assert joined(thread, out) == expected


def test_the_second_delivery_of_a_cancel_does_not_cut_the_cleanup_short(
    runner: LoopRunner,
) -> None:
    # Given an async task whose except-block awaits (as a cleanup writing content would)
    awaiting, handling = threading.Event(), threading.Event()
    release: list[Callable[[], object]] = []
    reg = TaskRegistry()

    @reg.task("Cleanup")
    async def cleanup(ctx: TaskContext) -> str:
        try:
            awaiting.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            done = asyncio.Event()
            loop = asyncio.get_running_loop()
            release.append(lambda: loop.call_soon_threadsafe(done.set))
            handling.set()
            await done.wait()
        return "cleaned up"

    ctx = make_ctx(runner)
    task = task_of(reg, "Cleanup", ctx)
    thread, out = in_thread(task.run)
    assert awaiting.wait(WAIT)
    # When its cancel arrives as Attempt.cancel sends it (ctx.cancelled, then the task's
    # cancel()), the second delivery while the except-block awaits
    ctx.cancelled.set()
    assert handling.wait(WAIT)
    task.cancel()
    release[0]()  # queued on the loop after the second delivery
    # Then the cleanup ran to its end: one attempt, one CancelledError
    assert joined(thread, out) == TaskResult(TaskStatus.COMPLETED, value="cleaned up")


def test_cancelled_before_it_began_its_body_never_runs(runner: LoopRunner) -> None:
    # Given an attempt cancelled before its task ran (run_attempt then calls cancel())
    awaiting, seen = threading.Event(), list[str]()
    ctx = make_ctx(runner)
    ctx.cancelled.set()
    task = task_of(sleeper_registry(awaiting, seen), "Sleeper", ctx)
    task.cancel()
    # Then run() ends CANCELED at once, without entering the coroutine
    assert task.run() == TaskResult(TaskStatus.CANCELED)
    assert seen == []


def test_a_cancelled_error_nobody_asked_for_is_canceled_saying_so(runner: LoopRunner) -> None:
    reg = TaskRegistry()

    @reg.task("Self")
    async def self_cancel(ctx: TaskContext) -> None:
        raise asyncio.CancelledError

    result = task_of(reg, "Self", make_ctx(runner)).run()
    assert result == TaskResult(TaskStatus.CANCELED, "raised CancelledError unasked")


def test_a_timeout_cancel_of_an_awaiting_task_ends_the_attempt_timed_out(
    runner: LoopRunner,
) -> None:
    # Given an attempt of an async task awaiting an hour, run as the participant runs it
    awaiting, seen = threading.Event(), list[str]()
    reg = sleeper_registry(awaiting, seen)
    attempt = Attempt(key="wf/j/0", attempt=1, ctx=make_ctx(runner, command="Sleeper"))
    thread, out = in_thread(lambda: run_attempt(reg.get, attempt))
    assert awaiting.wait(WAIT)
    # When its per-task timeout cancels it
    assert attempt.cancel(CancelReason.TIMEOUT)
    # Then it ends TIMED_OUT (a CANCELED result takes its cancel's state)
    assert joined(thread, out) == (P.TIMED_OUT, "timed out")
    assert seen == ["began", "CancelledError"]


# --- the cancel event -------------------------------------------------------------------


def test_cancel_event_hooks_run_once_and_late_ones_at_once() -> None:
    event = CancelEvent()
    calls: list[str] = []
    event.add_hook(lambda: calls.append("a"))
    remove_b = event.add_hook(lambda: calls.append("b"))
    remove_b()
    event.set()
    event.set()
    assert calls == ["a"] and event.is_set()
    event.add_hook(lambda: calls.append("late"))  # already set: runs now
    assert calls == ["a", "late"]


# --- emit -------------------------------------------------------------------------------


def test_emits_from_the_coroutine_and_its_threads_are_performed_on_the_waiting_thread(
    runner: LoopRunner,
) -> None:
    # Given an async task emitting from its coroutine and from an asyncio.to_thread thread
    where: list[int] = []
    emitted: list[Callable[[], object]] = []

    def emit(fn: Callable[[], object]) -> None:  # the executor's emit: on a worker only
        where.append(threading.get_ident())
        emitted.append(fn)

    reg = TaskRegistry()
    ran: list[str] = []

    async def coroutine_follow_up(tag: str) -> None:
        await asyncio.sleep(0)
        ran.append(tag)

    @reg.task("Emit")
    async def emitting(ctx: TaskContext) -> None:
        ctx.emit(ran.append, "sync")
        await asyncio.to_thread(ctx.emit, coroutine_follow_up, "from a thread")
        ctx.emit(coroutine_follow_up, "async")

    ctx = make_ctx(runner, _emit=emit)
    thread, out = in_thread(task_of(reg, "Emit", ctx).run)
    # Then every emit was made on the thread waiting for the coroutine, in order
    assert joined(thread, out) == TaskResult(TaskStatus.COMPLETED)
    assert where == [thread.ident] * 3
    # and each follow-up, run as an executor item would run it, does its work (the
    # coroutine ones awaited on the loop)
    for fn in emitted:
        fn()
    assert ran == ["sync", "from a thread", "async"]


def test_an_emit_that_raises_cancels_the_coroutine_and_fails_the_run(runner: LoopRunner) -> None:
    # Given an emit that is refused (the participant is overloaded)
    def emit(fn: Callable[[], object]) -> None:
        raise TooMuchWork("the internal queue is full")

    seen: list[str] = []
    reg = TaskRegistry()

    @reg.task("Emit")
    async def emitting(ctx: TaskContext) -> None:
        ctx.emit(print, "never")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("CancelledError")
            raise

    # Then the coroutine is cancelled and run() raises the emit's error
    with pytest.raises(TooMuchWork, match="full"):
        task_of(reg, "Emit", make_ctx(runner, _emit=emit)).run()
    assert seen == ["CancelledError"]


def test_a_coroutine_follow_up_that_raises_or_is_cancelled_fails_its_item(
    runner: LoopRunner,
) -> None:
    emitted: list[Callable[[], object]] = []
    ctx = make_ctx(runner, _emit=emitted.append)

    async def fails() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("follow-up failed")

    awaiting = threading.Event()

    async def waits() -> None:
        awaiting.set()
        await asyncio.sleep(3600)

    ctx.emit(fails)
    ctx.emit(waits)
    fail, wait = emitted
    with pytest.raises(RuntimeError, match="follow-up failed"):
        fail()
    thread, out = in_thread(wait)
    assert awaiting.wait(WAIT)
    ctx.cancelled.set()
    assert isinstance(joined(thread, out), FollowUpCancelled)


def test_with_an_executor_the_attempt_ends_only_after_its_coroutine_follow_ups(
    runner: LoopRunner,
) -> None:
    # Given a participant-like executor and an async task emitting 5 coroutine follow-ups
    reg = TaskRegistry()
    done: list[int] = []

    @reg.task("Fan")
    async def fan(ctx: TaskContext) -> None:
        async def follow_up(i: int) -> None:
            await asyncio.sleep(0.01 * i)
            done.append(i)

        for i in range(5):
            ctx.emit(follow_up, i)

    ex = Executor(workers=2, name="aio-exec")
    ex.start()
    try:
        ended = threading.Event()
        attempt = Attempt(key="wf/j/0", attempt=1, ctx=make_ctx(runner, command="Fan"))
        seen_at_end: list[list[int]] = []

        def on_done(_err: BaseException | None) -> None:
            seen_at_end.append(sorted(done))
            ended.set()

        attempt.group = WorkGroup(on_done=on_done)
        attempt.ctx._emit = lambda fn: ex.emit(Item(fn, job="wf/j"))

        def root() -> None:
            attempt.outcome = run_attempt(reg.get, attempt)

        assert ex.submit(Item(root, job="wf/j", group=attempt.group), timeout=WAIT)
        assert ended.wait(WAIT)
        # Then the group (the attempt) was done only once every follow-up had finished
        assert seen_at_end == [[0, 1, 2, 3, 4]]
        assert attempt.outcome is not None
        assert with_follow_ups(*attempt.outcome, attempt) == (P.COMPLETED, "")
    finally:
        assert ex.stop(WAIT)


def test_a_follow_up_cut_short_by_the_cancel_gives_the_cancels_state() -> None:
    group = WorkGroup()
    group.error = FollowUpCancelled("cut")
    attempt = Attempt(key="wf/j/0", attempt=1, ctx=make_ctx(None), group=group)
    assert with_follow_ups(P.COMPLETED, "", attempt)[0] is P.TASK_ERROR  # nobody asked
    attempt.reason = CancelReason.STOP
    assert with_follow_ups(P.COMPLETED, "", attempt) == (
        P.STOPPED,
        "stopped while its emitted work ran",
    )


# --- async user content -----------------------------------------------------------------


class BlockingContent:
    """A content store whose ``put`` blocks until ``release`` is set: a slow ZooKeeper."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.values: dict[tuple[str, Scope], str] = {}

    def put(self, ctx: TaskContext, key: str, value: str, scope: Scope) -> None:
        assert self.release.wait(WAIT)
        self.values[(key, scope)] = value

    def get(self, ctx: TaskContext, key: str, scope: Scope) -> str | None:
        return self.values.get((key, scope))

    def results(self, ctx: TaskContext, job: str) -> dict[str, JsonValue]:
        return {"0": {"job": job}}


def test_async_user_content_runs_off_the_loop(runner: LoopRunner) -> None:
    # Given a task whose aput_user_content waits on a store that another coroutine of the
    # same loop releases
    content = BlockingContent()
    reg = TaskRegistry()

    @reg.task("Writer")
    async def writer(ctx: TaskContext) -> object:
        await ctx.aput_user_content("k", "v", Scope.JOB)
        return [await ctx.aget_user_content("k", Scope.JOB), await ctx.aparent_results("up")]

    @reg.task("Releaser")
    async def releaser(ctx: TaskContext) -> None:
        await asyncio.sleep(0)
        content.release.set()

    thread, out = in_thread(task_of(reg, "Writer", make_ctx(runner, _content=content)).run)
    # When the other coroutine runs meanwhile: it can, only if the loop is not blocked
    assert task_of(reg, "Releaser", make_ctx(runner)).run() == TaskResult(TaskStatus.COMPLETED)
    # Then both complete, the writer with what it read back
    expected = TaskResult(TaskStatus.COMPLETED, value=["v", {"0": {"job": "up"}}])
    assert joined(thread, out) == expected


# --- close ------------------------------------------------------------------------------


def test_close_wakes_a_waiter_whose_coroutine_ignores_its_cancel() -> None:
    # Given a coroutine that swallows every cancel and awaits on
    runner = LoopRunner(name="aio-close")
    awaiting = threading.Event()

    async def stubborn() -> None:
        awaiting.set()
        while True:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue

    thread, out = in_thread(lambda: runner.run(stubborn, CancelEvent()))
    assert awaiting.wait(WAIT)
    # When the runner closes (its participant stops), Then its waiter is woken, failed
    runner.close(grace=0.1)
    error = joined(thread, out)
    assert isinstance(error, RuntimeError) and "event loop was closed" in str(error)
    # and nothing more can start on it
    with pytest.raises(RuntimeError, match="closed"):
        runner.start(stubborn, CancelEvent())
