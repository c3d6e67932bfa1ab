"""Task locks in process-isolated tasks: ``ctx.locks`` in a worker process, through the parent.

A worker process has no ZooKeeper session: its ``ctx.locks`` is a :class:`RemoteLockBox`, whose
every call is a ``{"op": "lock", "id": <run>, "call": ..., "args": {...}}`` request that the
participant's :class:`LockServer` runs on the attempt's own lock box. The holder is the
attempt, so fencing, priorities, revocation and the release at its end are a thread task's.

All of it is JSON (never pickle), in the form :mod:`helixpy.participant.lock_wire` gives:
errors are raised again in the child as their own class.
A critical section is entered by one request and left by another; when the run ends, however
it ends, :meth:`LockServer.close` leaves those still open before the locks are released.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any

from helixpy.errors import HelixpyError, InvalidConfig, LockRevoked
from helixpy.model.locks import Holder, Interval, LockResult, LockType
from helixpy.participant.lock_wire import (
    error_from_dict,
    error_to_dict,
    lock_request,
    ops_from_list,
    ops_to_list,
    result_from_dict,
    result_to_dict,
)
from helixpy.participant.registry import TaskLocks
from helixpy.store.fencing import MultiFailed
from helixpy.store.ops import Op

log = logging.getLogger(__name__)

#: How long a child waits for the answer to a lock request beyond the request's own wait:
#: the parent always answers (or the pipe closes); this only bounds a stuck participant.
REPLY_MARGIN = 120.0
#: A parent-side ``acquire`` waits in slices this long, so the end of its run stops it soon.
ACQUIRE_SLICE = 1.0
#: The most lock requests of one run served at once (each on its own thread).
MAX_IN_FLIGHT = 16
#: How long the end of a run waits for its lock requests still being served.
CLOSE_WAIT = 10.0

# --- the child's side ----------------------------------------------------------------------

#: Sends one request to the parent and returns its reply, waiting at most the given seconds.
Call = Callable[[dict[str, Any], float], dict[str, Any]]


class RemoteLockBox:
    """``ctx.locks`` in a worker process: a :class:`~helixpy.store.locks.LockBox`'s task
    API, served by the participant on the attempt's own lock box."""

    def __init__(self, call: Call, run_id: int) -> None:
        self._call_parent = call
        self._run_id = run_id
        self._details: dict[str, Any] | None = None
        self._details_lock = threading.Lock()

    def _call(self, call: str, args: Any = None, wait: float = 0.0, ops: Sequence[Op] = ()) -> Any:
        message = {"op": "lock", "id": self._run_id, "call": call, "args": args or {}}
        reply = self._call_parent(message, wait + REPLY_MARGIN)
        error = reply.get("error")
        if error is None:
            return reply.get("value")
        if isinstance(error, dict):
            raise error_from_dict(error, ops)
        raise RuntimeError(str(error))  # (the participant went away, or no answer in time)

    def _info(self) -> dict[str, Any]:
        with self._details_lock:
            if self._details is None:
                self._details = dict(self._call("info"))
            return self._details

    @property
    def holder(self) -> Holder:
        return Holder.from_dict(self._info()["holder"])

    @property
    def group(self) -> str:
        return str(self._info()["group"])

    @property
    def priority(self) -> int:
        return int(self._info()["priority"])

    @property
    def timeout(self) -> float:
        return float(self._info()["timeout"])

    def try_acquire(
        self,
        resource: str,
        interval: Interval | tuple[object, object],
        type: LockType = LockType.EXCLUSIVE,
        *,
        group: str | None = None,
        priority: int | None = None,
    ) -> LockResult:
        """Ask once, never blocking (see :meth:`LockBox.try_acquire`)."""
        args = lock_request(resource, interval, type, group, priority)
        return result_from_dict(self._call("try_acquire", args))

    def acquire(
        self,
        resource: str,
        interval: Interval | tuple[object, object],
        type: LockType = LockType.EXCLUSIVE,
        *,
        timeout: float | None = None,
        group: str | None = None,
        priority: int | None = None,
    ) -> LockResult:
        """Ask until granted, revoked or ``timeout`` (default: the box's) passes."""
        args = lock_request(resource, interval, type, group, priority)
        args["timeout"] = None if timeout is None else float(timeout)
        wait = self.timeout if timeout is None else max(0.0, float(timeout))
        return result_from_dict(self._call("acquire", args, wait))

    def release(self, resource: str, token: int | None = None) -> None:
        self._call("release", {"resource": resource, "token": token})

    def release_all(self) -> None:
        self._call("release_all")

    def close(self) -> None:
        """Release every lock (the holder lives in the participant, until the attempt ends)."""
        self.release_all()

    @contextlib.contextmanager
    def critical_section(
        self, resource: str, intervals: Sequence[Interval | tuple[object, object]]
    ) -> Iterator[None]:
        """See :meth:`LockBox.critical_section`: ``LockRevoked`` on entry when a lock is not
        held, on exit when the participant's session was suspended inside."""
        wanted = [i if isinstance(i, Interval) else Interval.of(*i) for i in intervals]
        args = {"resource": resource, "intervals": [i.to_list() for i in wanted]}
        section = self._call("enter", args)
        try:
            yield
        except BaseException:
            # The body's error is the one that counts (as in LockBox); the section is left.
            try:
                self._call("leave", {"section": section})
            except Exception as exc:
                log.warning("leaving critical section %s of %s: %r", section, resource, exc)
            raise
        self._call("leave", {"section": section})

    def commit(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in one multi checking every lock of the attempt still holds."""
        ops = list(ops)
        self._call("commit", {"ops": ops_to_list(ops)}, ops=ops)


# --- the parent's side ---------------------------------------------------------------------


class LockServer:
    """Serves one run's lock requests on the attempt's lock box (``locks()``, made on first
    use), each on its own thread so a waiting ``acquire`` never stops the run's reader;
    ``send`` writes a reply to the child."""

    def __init__(
        self,
        locks: Callable[[], TaskLocks],
        send: Callable[[dict[str, Any]], None],
        run_id: int,
        name: str,
    ) -> None:
        self._locks = locks
        self._send = send
        self._run_id = run_id
        self._name = name
        self._lock = threading.Lock()
        self._box: TaskLocks | None = None
        self._box_lock = threading.Lock()  # one box per attempt, however many threads ask
        self._sections: dict[int, AbstractContextManager[None]] = {}
        self._section_ids = itertools.count(1)
        self._workers: set[threading.Thread] = set()
        self._closed = False
        self._stop = threading.Event()

    @property
    def open_sections(self) -> int:
        with self._lock:
            return len(self._sections)

    def handle(self, message: Mapping[str, Any]) -> None:
        """Serve one ``lock`` request from the child (never blocks on the lock itself)."""
        refusal: Exception | None = None
        with self._lock:
            if message.get("id") != self._run_id:
                # (a thread the task of an earlier run left behind: not this attempt's)
                refusal = LockRevoked("a lock request of a run that has ended")
            elif self._closed:
                refusal = LockRevoked("the attempt has ended")
            elif len(self._workers) >= MAX_IN_FLIGHT:
                refusal = RuntimeError(f"more than {MAX_IN_FLIGHT} lock requests at once")
            else:
                name = f"locks-{self._name}-{message.get('rid')}"
                worker = threading.Thread(target=self._serve, args=(message,), name=name)
                worker.daemon = True  # (bounded by its own wait; never holds up an exit)
                self._workers.add(worker)
                worker.start()
        if refusal is not None:
            log.warning("%s: lock request refused: %s", self._name, refusal)
            self._reply(message, error=error_to_dict(refusal))

    def close(self) -> None:
        """The run ended: refuse further requests, leave every critical section still open
        (its ``critical`` mark goes, so a higher-priority waiter can take over), and wait
        (bounded) for requests still being served. The attempt's locks are released after
        this, by the participant."""
        with self._lock:
            self._closed = True
            workers = list(self._workers)
        self._stop.set()
        self._leave_all()
        deadline = time.monotonic() + CLOSE_WAIT
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if stuck := [w.name for w in workers if w.is_alive()]:
            log.warning("%s: lock requests still served after its run: %s", self._name, stuck)
        self._leave_all()  # any a request still being served entered meanwhile

    # --- internals ------------------------------------------------------------------------

    def _reply(self, message: Mapping[str, Any], **body: Any) -> None:
        self._send({"op": "reply", "rid": message.get("rid"), **body})

    def _serve(self, message: Mapping[str, Any]) -> None:
        call = str(message.get("call"))
        args = message.get("args") or {}
        ops: list[Op] = []
        try:
            if call == "commit":
                ops = ops_from_list(args.get("ops"))
                self._the_box().commit(ops)
                value: Any = None
            else:
                value = self._dispatch(call, args)
        except Exception as exc:  # raised again in the child, as the same class
            level = logging.INFO if isinstance(exc, HelixpyError | MultiFailed) else logging.WARNING
            log.log(level, "%s: lock %s: %r", self._name, call, exc, exc_info=level > logging.INFO)
            self._reply(message, error=error_to_dict(exc, ops))
        else:
            self._reply(message, value=value)
        finally:
            with self._lock:
                self._workers.discard(threading.current_thread())

    def _the_box(self) -> TaskLocks:
        with self._box_lock:
            if self._box is None:
                self._box = self._locks()
            return self._box

    def _dispatch(self, call: str, args: Mapping[str, Any]) -> Any:
        box = self._the_box()
        if call == "info":
            details = {k: getattr(box, k) for k in ("group", "priority", "timeout")}
            return {"holder": box.holder.to_dict(), **details}
        if call in ("try_acquire", "acquire"):
            resource, interval = str(args["resource"]), Interval.from_list(args["interval"])
            request = (resource, interval, LockType(args["type"]))
            options: dict[str, Any] = {"group": args.get("group"), "priority": args.get("priority")}
            if call == "try_acquire":
                return result_to_dict(box.try_acquire(*request, **options))
            timeout = args.get("timeout")
            wait = box.timeout if timeout is None else float(timeout)
            return result_to_dict(self._acquire(box, request, options, wait))
        if call == "release":
            token = args.get("token")
            box.release(str(args["resource"]), None if token is None else int(token))
            return None
        if call == "release_all":
            box.release_all()
            return None
        if call == "enter":
            intervals = [Interval.from_list(i) for i in args["intervals"]]
            return self._enter(box, str(args["resource"]), intervals)
        if call == "leave":
            with self._lock:
                section = self._sections.pop(int(args["section"]), None)
            if section is None:
                raise LockRevoked(f"no open critical section {args['section']}")
            section.__exit__(None, None, None)  # LockRevoked when suspended inside
            return None
        raise InvalidConfig("lock.call", f"unknown lock call {call!r}")

    def _acquire(
        self,
        box: TaskLocks,
        request: tuple[str, Interval, LockType],
        options: dict[str, Any],
        wait: float,
    ) -> LockResult:
        """``box.acquire`` in slices (each one asks afresh, so nothing is missed between
        them), ending early when the run does: nobody would read the answer."""
        deadline = time.monotonic() + wait
        while True:
            left = max(0.0, deadline - time.monotonic())
            result = box.acquire(*request, timeout=min(left, ACQUIRE_SLICE), **options)
            if result.ok or result.revoked or self._stop.is_set() or left <= ACQUIRE_SLICE:
                return result

    def _enter(self, box: TaskLocks, resource: str, intervals: list[Interval]) -> int:
        section = box.critical_section(resource, intervals)
        section.__enter__()  # LockRevoked when a lock is not held
        with self._lock:
            if not self._closed:
                number = next(self._section_ids)
                self._sections[number] = section
                return number
        self._leave(section, "entered as its run ended")
        raise LockRevoked(f"{resource}: the attempt has ended")

    def _leave_all(self) -> None:
        with self._lock:
            sections = list(self._sections.values())
            self._sections.clear()
        for section in sections:
            self._leave(section, "left open by its task")

    def _leave(self, section: AbstractContextManager[None], why: str) -> None:
        log.info("%s: leaving a critical section %s", self._name, why)
        try:
            section.__exit__(None, None, None)
        except Exception as exc:  # (LockRevoked: suspended inside; nobody to tell now)
            log.info("%s: leaving a critical section: %r", self._name, exc)
