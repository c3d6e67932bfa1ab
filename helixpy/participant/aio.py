"""``async def`` tasks: the participant's event loop and how an attempt waits on it.

A :class:`LoopRunner` owns one event loop on one daemon thread (started on the first
coroutine, stopped with its participant). An async attempt still runs as an executor item
on a worker thread: that thread hands the coroutine to the loop (:meth:`LoopRunner.start`)
and blocks until it ends (:meth:`AsyncRun.wait`). Keeping the worker blocked is deliberate:
one running attempt holds one worker, so an async attempt counts against the participant's
capacity exactly like a thread attempt (a participant of capacity 2 never runs more than 2
async attempts at once), and timeouts, cancel graces and reports need no second path. The
price is a thread per running async attempt, which capacity bounds anyway.

Cancellation. ``ctx.cancelled`` is a :class:`CancelEvent`: setting it (a stop, a per-task
timeout, a drop, shutdown: every cancel goes through it) runs the hooks registered on it,
and each run registers one that cancels its asyncio task from the loop thread
(``loop.call_soon_threadsafe(task.cancel)``). ``CancelledError`` is then raised inside the
coroutine at the ``await`` it is suspended in; the waiting worker thread wakes when the
coroutine ends, with no polling. The task object's ``cancel()`` does the same, for a
context whose ``cancelled`` is a plain :class:`threading.Event`; whichever comes first
cancels, once: the coroutine's ``except CancelledError`` block may await undisturbed.

Emitting. The executor takes follow-ups only from its worker threads, and a coroutine runs
on the loop thread. So ``ctx.emit`` inside a run (the coroutine, tasks it spawned, threads
of ``asyncio.to_thread``: they all inherit the run's context variables) does not emit at
once: it passes the emit to the run's waiting worker thread (:func:`relay`), which performs
it. A follow-up that is a coroutine function runs on the loop too (:func:`run_follow_up`),
awaited by the worker thread that took the follow-up item.

The loop is shared by every async attempt of the participant: a coroutine that blocks
(``time.sleep``, a synchronous ZooKeeper call) stalls all of them. Blocking work belongs in
``await asyncio.to_thread(...)``; the context's ``aput_user_content`` & co. do that.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long :meth:`LoopRunner.close` lets cancelled coroutines finish, by default.
CLOSE_GRACE = 1.0


class FollowUpCancelled(Exception):
    """A coroutine follow-up ended with ``CancelledError``. An Exception (an executor item
    must not raise a BaseException past its group): the attempt then ends in its cancel's
    state when it was cancelled, else TASK_ERROR."""


class CancelEvent(threading.Event):
    """``ctx.cancelled``: a :class:`threading.Event` that also runs hooks when set.

    A hook runs once, on the thread that sets the event (or at once, when it is added to an
    event already set), so it must be quick and must not block: the runner's hook only
    schedules a callback on the loop."""

    def __init__(self) -> None:
        super().__init__()
        self._hooks_lock = threading.Lock()
        self._hooks: dict[int, Callable[[], None]] = {}
        self._next = 0

    def set(self) -> None:
        with self._hooks_lock:
            super().set()
            hooks, self._hooks = list(self._hooks.values()), {}
        for hook in hooks:
            try:
                hook()
            except Exception:  # one hook's bug must not keep the others from running
                log.exception("a cancel hook raised")

    def add_hook(self, hook: Callable[[], None]) -> Callable[[], None]:
        """Run ``hook()`` when the event is set (now, if it is set already); returns a
        callable that removes it."""
        with self._hooks_lock:
            if not self.is_set():
                key = self._next
                self._next += 1
                self._hooks[key] = hook
                return lambda: self._remove(key)
        hook()
        return lambda: None

    def _remove(self, key: int) -> None:
        with self._hooks_lock:
            self._hooks.pop(key, None)


def on_cancel(event: threading.Event, hook: Callable[[], None]) -> Callable[[], None]:
    """``hook`` on ``event`` when it is a :class:`CancelEvent` (else nothing: the task's
    ``cancel()`` is then the only way in); returns its remover."""
    if isinstance(event, CancelEvent):
        return event.add_hook(hook)
    return lambda: None


#: The run whose coroutine (or a task or thread it started) is running in this context.
_CURRENT: contextvars.ContextVar[AsyncRun[Any] | None] = contextvars.ContextVar(
    "helixpy_async_run", default=None
)
_DONE = object()


class AsyncRun(Generic[T]):
    """One coroutine on a :class:`LoopRunner`'s loop, and the thread waiting for it.

    Made by :meth:`LoopRunner.start`; :meth:`cancel` from any thread; :meth:`wait` once, on
    the thread that started it, which also performs the emits the coroutine relays to it."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        make: Callable[[], Coroutine[Any, Any, T]],
        cancelled: bool = False,
    ) -> None:
        self._loop = loop
        self._make = make
        self._inbox: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._ended = False  # set with the outcome, under _lock
        self._value: T | None = None
        self._error: BaseException | None = None
        #: run by wait() once the run ended (the cancel hook's remover, the runner's count)
        self.cleanups: list[Callable[[], None]] = []
        # loop thread only:
        self._task: asyncio.Task[T] | None = None
        # (set here, before _begin is scheduled, for a run cancelled before it started: a
        # cancel sent through the loop could reach it only after the task's first step)
        self._cancel_asked = cancelled

    # --- on the loop thread ----------------------------------------------------------------

    def _begin(self) -> None:
        try:
            coro = self._make()
        except Exception as exc:  # the factory's own error is the task's
            self._end(None, exc)
            return
        # The run's context: what the coroutine, its tasks and its to_thread threads emit
        # is relayed to this run's waiting thread (see relay()).
        context = contextvars.copy_context()
        context.run(_CURRENT.set, self)
        task = self._loop.create_task(coro, context=context)
        self._task = task
        if self._cancel_asked:  # cancelled before it began: CancelledError at its start
            task.cancel()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[T]) -> None:
        if task.cancelled():
            self._end(None, asyncio.CancelledError())
            return
        error = task.exception()
        self._end(None if error is not None else task.result(), error)

    def _cancel_here(self) -> None:
        # Once per run: an attempt is cancelled once, but its cancel arrives twice (its
        # CancelEvent hook, then the task's cancel()), and a second task.cancel() reaching
        # the coroutine while its except-block awaits (writing what it saw, say) would cut
        # that cleanup short.
        if self._cancel_asked:
            return
        self._cancel_asked = True
        if self._task is not None:
            self._task.cancel()

    # --- any thread ------------------------------------------------------------------------

    def _end(self, value: T | None, error: BaseException | None) -> None:
        """Record the outcome (the first one wins) and wake the waiting thread."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._value, self._error = value, error
        self._inbox.put(_DONE)

    def cancel(self) -> None:
        """Raise ``CancelledError`` in the coroutine at its current ``await`` (or at its
        start, if it has not begun). The first call does; later ones (and calls after it
        ended) do nothing."""
        # (a closed loop raises RuntimeError: close() has ended the run already)
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._cancel_here)

    def post(self, thunk: Callable[[], object]) -> None:
        """Have the waiting thread call ``thunk()`` (an emit); refused once the run ended."""
        with self._lock:
            if self._ended:
                raise RuntimeError(
                    "emit() from an async task after its run ended (from a task or thread "
                    "it left running): emit while its coroutine runs"
                )
            self._inbox.put(thunk)

    def wait(self) -> T:
        """Block until the coroutine ends, performing the emits it relays meanwhile; its
        value, or what it raised (``asyncio.CancelledError`` when it ended cancelled). An
        emit that raised (``TooMuchWork``) cancels the coroutine and is raised instead."""
        emit_error: Exception | None = None
        try:
            while True:
                thunk = self._inbox.get()  # woken by an emit or the end: no polling
                if thunk is _DONE:
                    break
                if emit_error is not None or not callable(thunk):
                    continue  # the run fails anyway: later emits are dropped
                try:
                    thunk()
                except Exception as exc:
                    emit_error = exc
                    self.cancel()
        finally:
            for cleanup in self.cleanups:
                cleanup()
        if emit_error is not None:
            raise emit_error
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # None only when T admits it

    def abandon(self, why: str) -> None:
        """End the run as failed without its coroutine (its loop is gone)."""
        self._end(None, RuntimeError(why))


def relay(thunk: Callable[[], object]) -> bool:
    """Inside a run (its coroutine, or a task or ``to_thread`` thread it started), pass
    ``thunk`` to the run's waiting thread and return True; elsewhere return False (the
    caller performs it itself)."""
    run = _CURRENT.get()
    if run is None:
        return False
    run.post(thunk)
    return True


class LoopRunner:
    """An event loop on a daemon thread of its own, started on first use.

    The participant owns one (every async attempt runs on it); a process-isolated task's
    worker process owns one too."""

    def __init__(self, name: str = "aio") -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._runs: set[AsyncRun[Any]] = set()

    @property
    def started(self) -> bool:
        """Whether the loop's thread was started (by a first coroutine)."""
        with self._lock:
            return self._thread is not None

    def start(
        self,
        make: Callable[[], Coroutine[Any, Any, T]],
        cancelled: threading.Event,
        *,
        cancel_now: bool = False,
    ) -> AsyncRun[T]:
        """Run the coroutine ``make()`` on the loop (``make`` is called there); cancelled
        when ``cancelled`` is set (a :class:`CancelEvent`) or by :meth:`AsyncRun.cancel`.
        When ``cancelled`` is set already (or ``cancel_now``), the coroutine never begins:
        the run ends cancelled. The caller must :meth:`~AsyncRun.wait` for it."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the participant's event loop is closed (shutting down)")
            if self._loop is None:
                self._loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=self._serve, args=(self._loop,), name=self.name, daemon=True
                )
                self._thread.start()
            run: AsyncRun[T] = AsyncRun(self._loop, make, cancel_now or cancelled.is_set())
            self._runs.add(run)
            # Scheduled before the cancel hook can be: a cancel always finds its task made.
            self._loop.call_soon_threadsafe(run._begin)
        run.cleanups.append(on_cancel(cancelled, run.cancel))
        run.cleanups.append(lambda: self._forget(run))
        return run

    def run(self, make: Callable[[], Coroutine[Any, Any, T]], cancelled: threading.Event) -> T:
        """:meth:`start`, then :meth:`~AsyncRun.wait` on this thread."""
        return self.start(make, cancelled).wait()

    def _forget(self, run: AsyncRun[Any]) -> None:
        with self._lock:
            self._runs.discard(run)

    def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            while True:
                try:
                    loop.run_forever()
                    return  # stopped by close()
                except BaseException:
                    # A coroutine raised SystemExit (or the like) past its task: that task
                    # ended with it (its waiter sees it), the other coroutines go on.
                    log.exception("%s: the event loop was interrupted; it goes on", self.name)
        finally:
            loop.close()

    def close(self, grace: float = CLOSE_GRACE) -> None:
        """Cancel the coroutines still running, give them ``grace`` seconds to end, stop the
        loop and join its thread (bounded). Runs still waiting then fail, so no worker
        thread waits for a loop that is gone."""
        with self._lock:
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
            loop.stop()

        with contextlib.suppress(RuntimeError):  # (closed already)
            loop.call_soon_threadsafe(lambda: loop.create_task(drain()))
        thread.join(grace + 1.0)
        if thread.is_alive():  # a coroutine blocks the loop: leave the daemon thread be
            log.warning("%s: the event loop did not stop within %gs", self.name, grace + 1.0)
        with self._lock:
            runs = list(self._runs)
        for run in runs:
            run.abandon("the participant's event loop was closed while the task ran")


@contextlib.contextmanager
def loop_runner(runner: LoopRunner | None) -> Iterator[LoopRunner]:
    """``runner``; or, for a context no participant gave a loop (a test's own context), a
    loop of its own for the duration of the block."""
    if runner is not None:
        yield runner
        return
    own = LoopRunner(name="aio-own")
    try:
        yield own
    finally:
        own.close()


def run_follow_up(
    runner: LoopRunner | None,
    make: Callable[[], Coroutine[Any, Any, object]],
    cancelled: threading.Event,
) -> None:
    """Run the follow-up coroutine ``make()`` to its end on ``runner``, from the executor
    item (or the worker process's loop) that took it. ``CancelledError`` becomes
    :class:`FollowUpCancelled`: an item must raise an Exception."""
    with loop_runner(runner) as loop:
        try:
            loop.run(make, cancelled)
        except asyncio.CancelledError:
            raise FollowUpCancelled("an emitted coroutine ended with CancelledError") from None
