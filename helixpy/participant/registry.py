"""User tasks: the ``Task`` and ``AsyncTask`` interfaces, the ``TaskContext`` they receive,
and ``TaskRegistry``."""

from __future__ import annotations

import abc
import asyncio
import functools
import importlib
import inspect
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from helixpy.errors import InvalidConfig
from helixpy.model import JobConfig, Scope, TaskResult, TaskStatus
from helixpy.model.locks import Holder, Interval, LockResult, LockType
from helixpy.model.names import check_name
from helixpy.model.values import JsonValue
from helixpy.participant.aio import CancelEvent, LoopRunner, loop_runner, relay, run_follow_up
from helixpy.store.ops import Op


class Task(abc.ABC):
    """A unit of user work. ``run`` returns a ``TaskResult``; ``cancel`` asks it to stop.

    ``cancel`` is called from another thread; a task should return soon after, typically
    with ``TaskResult(TaskStatus.CANCELED)``.
    """

    @abc.abstractmethod
    def run(self) -> TaskResult: ...

    def cancel(self) -> None:  # noqa: B027 - optional hook; the context's event is the default
        """Ask the task to stop. The default relies on ``ctx.cancelled`` being polled."""


class AsyncTask(abc.ABC):
    """A unit of user work written as a coroutine: ``async def run()``.

    Register it like a :class:`Task` (``registry.register(command, MyAsyncTask)``); it runs
    on its participant's event loop (see :mod:`helixpy.participant.aio`) and counts against
    its capacity like any attempt. ``run`` may return what a task function may (None, a
    :class:`TaskResult`, a JSON value). A cancel raises ``asyncio.CancelledError`` inside
    ``run`` at its current ``await``; letting it propagate ends the attempt CANCELED (its
    state then follows the cancel's reason), catching it and returning keeps what it returns.
    """

    @abc.abstractmethod
    async def run(self) -> TaskResult | Any: ...

    def cancel(self) -> None:  # noqa: B027 - optional hook; CancelledError is the default
        """Called (from another thread, after ``ctx.cancelled`` is set) as the coroutine is
        cancelled: for what ``CancelledError`` cannot reach. Must not block."""


class ContentStore(Protocol):
    """How a context reaches user content (fenced by the participant's incarnation) and
    the results of its workflow's jobs."""

    def put(self, ctx: TaskContext, key: str, value: str, scope: Scope) -> None: ...

    def get(self, ctx: TaskContext, key: str, scope: Scope) -> str | None: ...

    def results(self, ctx: TaskContext, job: str) -> dict[str, JsonValue]: ...


class TaskLocks(Protocol):
    """What ``ctx.locks`` offers a task: a :class:`~helixpy.store.locks.LockBox` in the
    participant's process, and in a process-isolated task's worker process its stand-in
    (:class:`~helixpy.participant.remote_locks.RemoteLockBox`), served by the participant
    on the attempt's own lock box. Same calls, same results, same errors."""

    @property
    def holder(self) -> Holder: ...

    @property
    def group(self) -> str: ...

    @property
    def priority(self) -> int: ...

    @property
    def timeout(self) -> float: ...

    def try_acquire(
        self,
        resource: str,
        interval: Interval | tuple[object, object],
        type: LockType = ...,
        *,
        group: str | None = ...,
        priority: int | None = ...,
    ) -> LockResult: ...

    def acquire(
        self,
        resource: str,
        interval: Interval | tuple[object, object],
        type: LockType = ...,
        *,
        timeout: float | None = ...,
        group: str | None = ...,
        priority: int | None = ...,
    ) -> LockResult: ...

    def release(self, resource: str, token: int | None = ...) -> None: ...

    def release_all(self) -> None: ...

    def close(self) -> None: ...

    def critical_section(
        self, resource: str, intervals: Sequence[Interval | tuple[object, object]]
    ) -> AbstractContextManager[None]: ...

    def commit(self, ops: Sequence[Op]) -> None: ...


@dataclass
class TaskContext:
    """What a running attempt knows about itself.

    ``task_config`` is the job's ``command_config`` overlaid with the task's own ``config``:
    the values as they were given (str, int, float, bool, None, lists, dicts).
    ``cancelled`` is set the moment the controller (or a timeout, or shutdown) asks the
    attempt to stop.
    """

    workflow: str
    job: str
    task_id: str
    partition: int
    attempt: int
    instance: str
    job_config: JobConfig
    task_config: Mapping[str, JsonValue]
    command: str
    cancelled: threading.Event = field(default_factory=CancelEvent)
    #: the participant incarnation the attempt runs under (-1 outside a participant)
    incarnation: int = -1
    _content: ContentStore | None = None
    _emit: Callable[[Callable[[], object]], None] | None = None
    _locks: Callable[[], TaskLocks] | None = None
    _lock_box: TaskLocks | None = None
    #: the event loop async tasks and coroutine follow-ups run on (None: one of their own)
    _aio: LoopRunner | None = None

    @property
    def locks(self) -> TaskLocks:
        """This attempt's task locks: the holder is this attempt, the group the job's
        ``lock_group`` (default: the job), the priority the job's. Every lock it takes is
        released when the attempt ends.

        In a process-isolated task (``JobConfig(isolation="process")``) the calls go to the
        participant, which runs them on the attempt's lock box: the same holder, fencing
        and errors as in a thread task. A critical section the task's process leaves open
        (it crashed, was killed, or returned inside one) is left when the attempt ends,
        before its locks are released."""
        if self._lock_box is None:
            if self._locks is None:
                raise RuntimeError("this context has no lock store")
            self._lock_box = self._locks()
        return self._lock_box

    def emit(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` as a follow-up of this attempt on this participant's workers.

        Never blocks (a full queue runs it inline on this thread); call it from the task's
        own thread. The attempt completes only once every emitted item has run; one that
        raises fails the attempt. :class:`~helixpy.errors.TooMuchWork` is raised here when
        the participant is overloaded past its inline limit.

        ``fn`` may be an ``async def`` function: the follow-up then awaits ``fn(*args)`` on
        the event loop, and a cancel raises ``CancelledError`` in it. From an async task
        (its coroutine, or a thread of its ``asyncio.to_thread``) the emit is handed to the
        attempt's worker thread; ``TooMuchWork`` then fails the attempt instead of being
        raised here.
        """
        emit = self._emit
        if emit is None:
            raise RuntimeError("this context cannot emit work")
        call: Callable[[], object] = functools.partial(fn, *args)
        if inspect.iscoroutinefunction(fn):
            make = functools.partial(fn, *args)

            def call() -> None:  # awaits it on the loop, from the item that took it
                run_follow_up(self._aio, make, self.cancelled)

        if not relay(lambda: emit(call)):
            emit(call)

    def put_user_content(self, key: str, value: str, scope: Scope = Scope.TASK) -> None:
        """Store ``key`` = ``value`` at ``scope``; durable in ZooKeeper when this returns."""
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidConfig("user_content", "keys and values must be strings")
        if self._content is None:
            raise RuntimeError("this context has no content store")
        self._content.put(self, key, value, Scope(scope))

    def get_user_content(self, key: str, scope: Scope = Scope.TASK) -> str | None:
        """The value stored under ``key`` at ``scope``, or None."""
        if self._content is None:
            raise RuntimeError("this context has no content store")
        return self._content.get(self, key, Scope(scope))

    def parent_results(self, job: str) -> dict[str, JsonValue]:
        """The results of job ``job`` of this workflow (typically a parent, which has
        completed before this job started): task id -> the value its COMPLETED attempt
        returned (None when it returned none). Tasks that have not completed are left out;
        :class:`~helixpy.errors.NotFound` when the workflow has no such job."""
        check_name("job", job)
        if self._content is None:
            raise RuntimeError("this context has no content store")
        return self._content.results(self, job)

    # The async variants run the blocking call on a thread (asyncio.to_thread): a ZooKeeper
    # round trip on the loop would stall every async task of the participant.

    async def aput_user_content(self, key: str, value: str, scope: Scope = Scope.TASK) -> None:
        """:meth:`put_user_content` for a coroutine (the loop goes on meanwhile)."""
        await asyncio.to_thread(self.put_user_content, key, value, scope)

    async def aget_user_content(self, key: str, scope: Scope = Scope.TASK) -> str | None:
        """:meth:`get_user_content` for a coroutine (the loop goes on meanwhile)."""
        return await asyncio.to_thread(self.get_user_content, key, scope)

    async def aparent_results(self, job: str) -> dict[str, JsonValue]:
        """:meth:`parent_results` for a coroutine (the loop goes on meanwhile)."""
        return await asyncio.to_thread(self.parent_results, job)


class StreamTask(abc.ABC):
    """A warm task instance serving one slot of a streaming job.

    Register a factory returning one (``registry.register(command, MyStream)``); the
    factory gets the slot's :class:`TaskContext` (``ctx.partition`` is the slot number).
    """

    def open(self, checkpoint: dict[str, Any] | None) -> None:  # noqa: B027 - optional hook
        """Expensive set-up, once per slot attempt; ``checkpoint`` is this slot's last
        contribution when it restarts, else None."""

    @abc.abstractmethod
    def process(self, split: Any) -> object | None:
        """Handle one split; the value (JSON-serialisable) is recorded as its result."""

    @abc.abstractmethod
    def on_barrier(self) -> dict[str, Any]:
        """Flush and reset; return this slot's contribution to the checkpoint."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """The stream ended (after its final barrier): release what ``open`` took."""


#: What the registry gives the participant: a factory of a Task (async tasks are wrapped
#: into one) or of a StreamTask.
TaskFactory = Callable[[TaskContext], "Task | StreamTask"]
#: What ``register`` takes: a factory of a Task, an AsyncTask or a StreamTask.
AnyTaskFactory = Callable[[TaskContext], "Task | AsyncTask | StreamTask"]
#: A task function: returns None (COMPLETED, no value), a :class:`TaskResult`, or any
#: other JSON value (COMPLETED with that value as its result); or an ``async def``
#: function whose coroutine returns one of those.
TaskFunction = Callable[[TaskContext], Any]


def function_result(result: object, ctx: TaskContext) -> TaskResult:
    """What a task function's return means: None is COMPLETED (CANCELED when it returned
    after ``ctx.cancelled`` was set), a TaskResult is itself, anything else is COMPLETED with
    that value (checked as JSON when it is stored)."""
    if isinstance(result, TaskResult):
        return result
    if result is None:
        status = TaskStatus.CANCELED if ctx.cancelled.is_set() else TaskStatus.COMPLETED
        return TaskResult(status)
    return TaskResult(TaskStatus.COMPLETED, value=result)


class _FunctionTask(Task):
    def __init__(self, fn: TaskFunction, ctx: TaskContext) -> None:
        self._fn = fn
        self._ctx = ctx

    def run(self) -> TaskResult:
        return function_result(self._fn(self._ctx), self._ctx)


class _AsyncAdapter(Task):
    """The :class:`Task` the participant sees for an async function or :class:`AsyncTask`:
    ``run`` awaits the coroutine on the context's event loop from the calling (worker)
    thread, which stays busy meanwhile: one running attempt, one slot."""

    def __init__(
        self,
        make: Callable[[], Awaitable[object]],
        ctx: TaskContext,
        on_cancel: Callable[[], None] | None = None,
    ) -> None:
        self._make = make
        self._ctx = ctx
        self._on_cancel = on_cancel
        self._lock = threading.Lock()
        self._cancel = False
        self._run: Any = None  # the AsyncRun, once started

    def run(self) -> TaskResult:
        ctx = self._ctx
        with loop_runner(ctx._aio) as runner:
            with self._lock:
                early = self._cancel  # cancel() came first: the coroutine never begins
            run = runner.start(self._coroutine, ctx.cancelled, cancel_now=early)
            with self._lock:
                self._run = run
                cancel = self._cancel and not early
            if cancel:  # cancel() came while the run was being made
                run.cancel()
            try:
                value = run.wait()
            except asyncio.CancelledError:
                # Asked (a stop, a timeout): the cancel's reason decides the state, as for
                # any CANCELED result. Unasked: TASK_ERROR, saying so.
                info = "" if ctx.cancelled.is_set() else "raised CancelledError unasked"
                return TaskResult(TaskStatus.CANCELED, info)
        return function_result(value, ctx)

    async def _coroutine(self) -> object:
        return await self._make()

    def cancel(self) -> None:
        with self._lock:
            self._cancel = True
            run = self._run
        if run is not None:
            run.cancel()  # for a context whose ``cancelled`` has no hooks (CancelEvent has)
        if self._on_cancel is not None:
            self._on_cancel()


def _adapted(factory: AnyTaskFactory) -> TaskFactory:
    """``factory``, with the async tasks it makes wrapped into :class:`Task` objects: an
    :class:`AsyncTask`, or any other non-stream object whose ``run`` is ``async def``."""

    def make(ctx: TaskContext) -> Task | StreamTask:
        task = factory(ctx)
        run = getattr(task, "run", None)
        if run is not None and (
            isinstance(task, AsyncTask)
            or (not isinstance(task, StreamTask) and inspect.iscoroutinefunction(run))
        ):
            return _AsyncAdapter(run, ctx, getattr(task, "cancel", None))
        return task  # type: ignore[return-value]  # not a Task: its caller says so

    return make


class TaskRegistry:
    """Maps commands to task factories (Helix's TaskFactory registry)."""

    def __init__(self) -> None:
        self._factories: dict[str, TaskFactory] = {}

    def register(self, command: str, factory: AnyTaskFactory) -> None:
        """Register ``factory(ctx) -> Task`` for ``command`` (or an :class:`AsyncTask`, or a
        :class:`StreamTask` for streaming jobs): a class taking the context will do."""
        if not isinstance(command, str) or not command:
            raise InvalidConfig("command", "must be a non-empty string")
        if command in self._factories:
            raise InvalidConfig("command", f"{command!r} is registered already")
        self._factories[command] = _adapted(factory)

    def task(self, command: str) -> Callable[[TaskFunction], TaskFunction]:
        """Decorator: register ``fn(ctx)``, returning None (COMPLETED), a ``TaskResult``, or
        a JSON value (COMPLETED with that value as its result). ``fn`` may be an
        ``async def`` function: its coroutine runs on the participant's event loop."""

        def decorate(fn: TaskFunction) -> TaskFunction:
            if inspect.iscoroutinefunction(fn):
                self.register(command, lambda ctx: _AsyncAdapter(lambda: fn(ctx), ctx))
            else:
                self.register(command, lambda ctx: _FunctionTask(fn, ctx))
            return fn

        return decorate

    def get(self, command: str) -> TaskFactory | None:
        return self._factories.get(command)

    def commands(self) -> list[str]:
        return sorted(self._factories)


def load_registry(spec: str) -> TaskRegistry:
    """The :class:`TaskRegistry` named by ``MODULE:ATTR`` (an attribute that is a registry,
    or a function returning one). ``InvalidConfig`` names ``tasks`` and the reason."""
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise InvalidConfig("tasks", f"must be MODULE:ATTR (got {spec!r})")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise InvalidConfig("tasks", f"cannot load {spec}: {exc}") from exc
    registry = obj() if callable(obj) and not hasattr(obj, "get") else obj
    if not isinstance(registry, TaskRegistry):
        raise InvalidConfig("tasks", f"{spec} is not a TaskRegistry")
    return registry
