"""``ctx.locks`` of process-isolated tasks: what crosses the pipe, and the parent's serving.

The (de)serialisation is pure; the round trips run a child's ``RemoteLockBox`` against a
``LockServer`` through JSON text (as the pipe carries it), on an in-memory lock box.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kazoo.exceptions import ConnectionLoss, NoNodeError

from helixpy.errors import Fenced, InvalidConfig, LockRevoked, NotFound, PollTimeout
from helixpy.model import JobConfig, Scope
from helixpy.model.locks import Holder, Interval, Lock, LockResult, LockType
from helixpy.participant import remote_locks
from helixpy.participant.isolation import _serve_content
from helixpy.participant.lock_wire import (
    error_from_dict,
    error_to_dict,
    op_from_dict,
    op_to_dict,
    ops_from_list,
    ops_to_list,
    result_from_dict,
    result_to_dict,
)
from helixpy.participant.registry import TaskContext
from helixpy.participant.remote_locks import LockServer, RemoteLockBox
from helixpy.store.fencing import MultiFailed
from helixpy.store.ops import Check, Create, Delete, Op, SetData
from tests.unit.strategies import PROPERTY, expect_invalid

HOLDER = Holder(id="p-0.3.wf/j/0.1", instance="p-0", incarnation=3, task="wf/j/0", attempt=1)


def wire(value: Any) -> Any:
    """``value`` as the pipe carries it: JSON text and back (fails on anything else)."""
    return json.loads(json.dumps(value))


# --- pure (de)serialisation ----------------------------------------------------------------


@PROPERTY
@given(
    path=st.text(min_size=1, max_size=20).map(lambda s: "/" + s),
    data=st.binary(max_size=64),
    version=st.integers(min_value=-1, max_value=2**31 - 1),
    flags=st.tuples(st.booleans(), st.booleans()),
)
def test_every_write_op_survives_json_with_its_bytes(
    path: str, data: bytes, version: int, flags: tuple[bool, bool]
) -> None:
    ops: list[Op] = [
        Create(path, data, ephemeral=flags[0], sequence=flags[1]),
        SetData(path, data, version),
        Delete(path, version),
        Check(path, version),
    ]
    assert ops_from_list(wire(ops_to_list(ops))) == ops


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ("set", "commit.ops"),
        ({"kind": "rename", "path": "/a"}, "commit.ops.kind"),
        ({"kind": "set", "data": "eA=="}, "commit.ops.path"),
        ({"kind": "set", "path": "/a", "data": "not base64!"}, "commit.ops.data"),
        ({"kind": "set", "path": "/a", "data": 7}, "commit.ops.data"),
        ({"kind": "delete", "path": "/a", "version": True}, "commit.ops.version"),
        ({"kind": "check", "path": "/a"}, "commit.ops.version"),
        ({"kind": "create", "path": "/a", "ephemeral": "yes"}, "commit.ops.ephemeral"),
    ],
)
def test_a_malformed_op_is_refused_naming_its_field(raw: object, field: str) -> None:
    with expect_invalid(field):
        op_from_dict(raw)


def test_only_write_ops_are_sent() -> None:
    with expect_invalid("commit.ops", "not a write op"):
        op_to_dict("/a")  # type: ignore[arg-type]
    with expect_invalid("commit.ops", "list"):
        ops_from_list({"kind": "check"})


@pytest.mark.parametrize(
    "result",
    [
        LockResult(True, False, Lock("r", Interval(0, 10), LockType.EXCLUSIVE, "g", 50, 7, HOLDER)),
        LockResult(
            False,
            True,
            Lock(
                "seg/2026",
                Interval.of("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
                LockType.SHARED,
                "wf/j",
                0,
                1,
                Holder(id="x"),
                revoked=True,
            ),
            "revoked",
        ),
        LockResult(False, False, None, "a lock to revoke is in a critical section"),
    ],
)
def test_lock_results_survive_json(result: LockResult) -> None:
    assert result_from_dict(wire(result_to_dict(result))) == result


@pytest.mark.parametrize(
    "exc",
    [
        LockRevoked("r [0, 10): not held (revoked or released)"),
        InvalidConfig("interval", "start must be before end"),
        PollTimeout("lock r: too much contention", "WAIT"),
        NotFound("no such workflow"),
        Fenced("deposed"),
        NoNodeError(),
        ConnectionLoss("connection lost"),
    ],
)
def test_known_errors_come_back_as_their_class_message_and_fields(exc: Exception) -> None:
    again = error_from_dict(wire(error_to_dict(exc)))
    assert type(again) is type(exc)
    assert str(again) == str(exc)
    for name in ("field", "rule", "last_state"):
        assert getattr(again, name, None) == getattr(exc, name, None)


def test_a_failed_op_names_the_childs_own_op() -> None:
    ops: list[Op] = [Check("/lock", 3), SetData("/out", b"x")]
    parent_ops = ops_from_list(wire(ops_to_list(ops)))  # the parent's copies
    raw = wire(error_to_dict(MultiFailed(parent_ops[1], NoNodeError()), parent_ops))
    again = error_from_dict(raw, ops)
    assert isinstance(again, MultiFailed)
    assert again.op is ops[1] and isinstance(again.error, NoNodeError)
    assert str(again) == "NoNodeError on SetData /out"
    # without the ops it cannot name one: a RuntimeError saying what it was
    assert repr(error_from_dict(raw)) == repr(
        RuntimeError("MultiFailed: NoNodeError on SetData /out")
    )


@pytest.mark.parametrize("exc", [ValueError("bad"), KeyError("k"), OSError(5, "io")])
def test_other_errors_come_back_as_runtime_errors_naming_them(exc: Exception) -> None:
    again = error_from_dict(wire(error_to_dict(exc)))
    assert type(again) is RuntimeError
    assert str(again) == f"{type(exc).__name__}: {exc}"


# --- a child's RemoteLockBox against a LockServer, through JSON -----------------------------


class MemoryBox:
    """A lock box in memory: the calls a server makes, and what it answers."""

    holder = HOLDER
    group = "wf/j"
    priority = 50
    timeout = 30.0

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.held: set[str] = set()
        self.waiting = threading.Event()  # an acquire is waiting
        self.free = threading.Event()  # what it waits for

    def _lock(self, resource: str, interval: Interval, type: LockType) -> Lock:
        return Lock(resource, interval, type, self.group, self.priority, 1, self.holder)

    def try_acquire(
        self,
        resource: str,
        interval: Interval | tuple[object, object],
        type: LockType = LockType.EXCLUSIVE,
        *,
        group: str | None = None,
        priority: int | None = None,
    ) -> LockResult:
        assert isinstance(interval, Interval)
        self.calls.append(("try_acquire", resource, interval, type, group, priority))
        if resource == "numbers":
            raise InvalidConfig(
                "interval", f"resource {resource!r} is locked with number intervals"
            )
        self.held.add(resource)
        return LockResult(True, False, self._lock(resource, interval, type))

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
        assert isinstance(interval, Interval) and timeout is not None
        self.calls.append(("acquire", resource, timeout))
        self.waiting.set()
        if self.free.wait(timeout):
            self.held.add(resource)
            return LockResult(True, False, self._lock(resource, interval, type))
        return LockResult(False, False, None, "conflicts")

    def release(self, resource: str, token: int | None = None) -> None:
        self.calls.append(("release", resource, token))
        self.held.discard(resource)

    def release_all(self) -> None:
        self.calls.append(("release_all",))
        self.held.clear()

    def close(self) -> None:
        self.release_all()

    @contextlib.contextmanager
    def critical_section(
        self, resource: str, intervals: Sequence[Interval | tuple[object, object]]
    ) -> Iterator[None]:
        if resource not in self.held:
            raise LockRevoked(f"{resource} {intervals[0]}: not held (revoked or released)")
        self.calls.append(("enter", resource, list(intervals)))
        try:
            yield
        finally:
            self.calls.append(("leave", resource))

    def commit(self, ops: Sequence[Op]) -> None:
        self.calls.append(("commit", list(ops)))
        for op in ops:
            if isinstance(op, Delete):
                raise MultiFailed(op, NoNodeError())


class Pipe:
    """The child's requests and the parent's replies, as JSON text."""

    def __init__(self, box: MemoryBox, run_id: int = 7) -> None:
        self.server = LockServer(lambda: box, self.reply, run_id, name="test")
        self.sent: list[dict[str, Any]] = []
        self._rids = itertools.count(1)
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}

    def call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        rid = next(self._rids)
        self._waiting[rid] = queue.Queue()
        request = wire({**message, "rid": rid})
        self.sent.append(request)
        self.server.handle(request)
        return self._waiting[rid].get(timeout=min(timeout, 30))

    def reply(self, message: dict[str, Any]) -> None:
        message = wire(message)
        self._waiting[message["rid"]].put(message)


@pytest.fixture
def box() -> MemoryBox:
    return MemoryBox()


@pytest.fixture
def pipe(box: MemoryBox) -> Iterator[Pipe]:
    p = Pipe(box)
    yield p
    p.server.close()


def test_calls_reach_the_attempts_box_and_results_come_back(box: MemoryBox, pipe: Pipe) -> None:
    remote = RemoteLockBox(pipe.call, 7)
    # Given the box's holder, group, priority and default wait, read through the parent
    assert (remote.holder, remote.group, remote.priority, remote.timeout) == (
        HOLDER,
        "wf/j",
        50,
        30.0,
    )
    # When the child locks, commits in a section and releases
    got = remote.try_acquire("r", (0, 10), LockType.SHARED, group="g", priority=60)
    ops: list[Op] = [Create("/a", b"\x00\xff"), SetData("/b", b"\x01", 4), Check("/c", 2)]
    with remote.critical_section("r", [(0, 10)]):
        remote.commit(ops)
    remote.release("r", 1)
    remote.release_all()
    # Then the parent's box saw the same calls, and the child the box's answer
    assert got == LockResult(True, False, box._lock("r", Interval(0, 10), LockType.SHARED))
    assert box.calls == [
        ("try_acquire", "r", Interval(0, 10), LockType.SHARED, "g", 60),
        ("enter", "r", [Interval(0, 10)]),
        ("commit", ops),
        ("leave", "r"),
        ("release", "r", 1),
        ("release_all",),
    ]
    assert pipe.server.open_sections == 0


def test_errors_raised_by_the_parents_box_are_raised_in_the_child_as_theirs(
    box: MemoryBox, pipe: Pipe
) -> None:
    remote = RemoteLockBox(pipe.call, 7)
    with expect_invalid("interval", "number intervals"):
        remote.try_acquire("numbers", ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"))
    with pytest.raises(LockRevoked, match="not held"), remote.critical_section("r", [(0, 1)]):
        pytest.fail("entered a section of a lock it does not hold")
    missing = Delete("/gone")
    with pytest.raises(MultiFailed) as failed:
        remote.commit([Check("/c", 1), missing])
    assert failed.value.op is missing and isinstance(failed.value.error, NoNodeError)


def test_bad_arguments_fail_in_the_child_as_in_a_lock_box(pipe: Pipe) -> None:
    remote = RemoteLockBox(pipe.call, 7)
    with expect_invalid("lock.resource"):
        remote.try_acquire("", (0, 1))
    with expect_invalid("interval", "before end"):
        remote.acquire("r", (5, 1))
    with expect_invalid("priority", ">= 0"):
        remote.try_acquire("r", (0, 1), priority=-1)
    with pytest.raises(ValueError, match="BOTH"):
        remote.try_acquire("r", (0, 1), "BOTH")  # type: ignore[arg-type]
    with expect_invalid("commit.ops", "not a write op"):
        remote.commit(["/x"])  # type: ignore[list-item]
    assert pipe.sent == []  # refused before anything was sent


def test_the_body_error_wins_and_the_section_is_left(box: MemoryBox, pipe: Pipe) -> None:
    remote = RemoteLockBox(pipe.call, 7)
    remote.try_acquire("r", (0, 10))
    with pytest.raises(ZeroDivisionError), remote.critical_section("r", [(0, 10)]):
        _ = 1 / 0
    assert box.calls[-1] == ("leave", "r")
    assert pipe.server.open_sections == 0


def test_the_end_of_the_run_leaves_open_sections_and_refuses_later_requests(
    box: MemoryBox, pipe: Pipe
) -> None:
    remote = RemoteLockBox(pipe.call, 7)
    remote.try_acquire("r", (0, 10))
    # Given a section the child entered and never left (it died inside)
    section = remote.critical_section("r", [(0, 10)])
    section.__enter__()
    assert pipe.server.open_sections == 1
    # When the run ends
    pipe.server.close()
    # Then the parent left it, and refuses what comes after
    assert box.calls[-1] == ("leave", "r")
    assert pipe.server.open_sections == 0
    with pytest.raises(LockRevoked, match="attempt has ended"):
        remote.release_all()
    del section  # (its leave, when it is collected, is refused too: the run is over)


def test_a_request_of_an_earlier_run_is_refused(box: MemoryBox, pipe: Pipe) -> None:
    # (a thread an earlier task left behind in the reused worker process)
    stale = RemoteLockBox(pipe.call, 6)
    with pytest.raises(LockRevoked, match="run that has ended"):
        stale.try_acquire("r", (0, 10))
    assert box.calls == []


def test_a_waiting_acquire_blocks_nothing_else_and_stops_with_the_run(
    box: MemoryBox, pipe: Pipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(remote_locks, "ACQUIRE_SLICE", 0.05)
    remote = RemoteLockBox(pipe.call, 7)
    # Given an acquire waiting in the parent (up to 30 s)
    results: list[LockResult] = []
    waiter = threading.Thread(
        target=lambda: results.append(remote.acquire("a", (0, 1), timeout=30))
    )
    waiter.start()
    assert box.waiting.wait(10)
    # When the child asks for something else meanwhile, Then it is answered
    assert remote.try_acquire("b", (0, 1)).ok
    # When the run ends, Then the acquire stops at its next slice, not after 30 s
    pipe.server.close()
    waiter.join(10)
    assert not waiter.is_alive()
    assert [r.ok for r in results] == [False]
    assert all(c[2] <= 0.05 for c in box.calls if c[0] == "acquire")  # asked in slices


def test_an_acquire_granted_in_a_later_slice_is_granted(box: MemoryBox, pipe: Pipe) -> None:
    remote = RemoteLockBox(pipe.call, 7)
    box.free.set()
    got = remote.acquire("a", (0, 1))  # the box's default wait (30 s)
    assert got.ok and got.lock is not None and got.lock.holder == HOLDER
    assert box.calls == [("acquire", "a", remote_locks.ACQUIRE_SLICE)]


class _Content:
    """An in-memory content store (pure logic under test: the run-id check)."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def put(self, ctx: TaskContext, key: str, value: str, scope: Scope) -> None:
        self.values[key] = value

    def get(self, ctx: TaskContext, key: str, scope: Scope) -> str | None:
        return self.values.get(key)


def test_a_content_request_of_an_earlier_run_is_refused() -> None:
    # Given the attempt of run 7, whose worker also runs a thread left by run 6's task
    store = _Content()
    ctx = TaskContext(
        workflow="wf",
        job="j",
        task_id="0",
        partition=0,
        attempt=1,
        instance="i",
        job_config=JobConfig(command="Noop", num_tasks=1),
        task_config={},
        command="Noop",
        _content=store,
    )
    put = {"op": "content_put", "rid": 1, "key": "k", "value": "v", "scope": "TASK"}
    # When the left-over thread writes, Then it is refused and nothing is stored
    reply = _serve_content(ctx, {**put, "id": 6}, 7)
    assert "run that has ended" in reply["error"] and store.values == {}
    # and the current run's request is served
    assert "error" not in _serve_content(ctx, {**put, "id": 7}, 7)
    assert store.values == {"k": "v"}
