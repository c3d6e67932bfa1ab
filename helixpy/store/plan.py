"""Readers written once for blocking and asyncio clients: a *plan* yields requests.

A plan is a generator. Each ``yield`` hands its runner a batch of requests, which the
runner sends together (pipelined: one round trip for the batch, not one per znode) and
answers with their replies, in order:

========== =====================================================================
request    reply
========== =====================================================================
``Get``    the node's data, ``None`` when the node does not exist
``Children`` the child names, ``None`` when the node does not exist
``Exists`` whether the node exists
``Sync``   ``None`` (a missing node is no error)
``Multi``  kazoo's per-op results (a failed op's is its exception)
========== =====================================================================

Any other failure (``ConnectionLoss``, ``NoAuthError``, ...) is thrown into the plan at
its ``yield``, so a plan handles it, or lets it out, as a blocking reader would. The plan's
``return`` value is the reader's result.

:func:`run_plan` runs a plan on a blocking kazoo client (the TaskDriver, the controller);
``helixpy.driver.aio.session.Session.run`` runs the same plan from an event loop. ``watch``
requests arm the runner's watch (a blocking callable, or the async driver's waker).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.store.acl import OpenAclProvider
from helixpy.store.fencing import send_multi
from helixpy.store.ops import Op

_T = TypeVar("_T")


@dataclass(frozen=True)
class Get:
    """The data at ``path``; ``watch`` arms the runner's watch as a data watch."""

    path: str
    watch: bool = False


@dataclass(frozen=True)
class Children:
    """The names of ``path``'s children."""

    path: str


@dataclass(frozen=True)
class Exists:
    """Whether ``path`` exists; ``watch`` fires on its creation, change or deletion."""

    path: str
    watch: bool = False


@dataclass(frozen=True)
class Sync:
    """Bring the client's ZooKeeper server up to date for ``path`` before later reads."""

    path: str


@dataclass(frozen=True)
class Multi:
    """``ops`` as one ZooKeeper multi (unfenced: a client's own writes)."""

    ops: tuple[Op, ...]


Request = Get | Children | Exists | Sync | Multi
#: A reader: yields batches of requests, receives their replies, returns its result.
Plan = Generator[Sequence[Request], list[Any], _T]
Watch = Callable[[Any], object]

_OPEN_ACL = OpenAclProvider()


def send(zk: KazooClient, request: Request, watch: Watch | None = None) -> Any:
    """Send ``request`` without waiting; kazoo's async result."""
    armed = watch if getattr(request, "watch", False) else None
    if isinstance(request, Get):
        return zk.get_async(request.path, watch=armed)
    if isinstance(request, Children):
        return zk.get_children_async(request.path)
    if isinstance(request, Exists):
        return zk.exists_async(request.path, watch=armed)
    if isinstance(request, Sync):
        return zk.sync_async(request.path)
    return send_multi(zk, request.ops, _OPEN_ACL)


def reply(request: Request, value: Any) -> Any:
    """The plan's reply from kazoo's result ``value`` of ``request`` (its exception, if
    it failed): a missing node becomes ``None`` (``Get``, ``Children``, ``Sync``); any
    other exception is raised, for the runner to throw into the plan."""
    if isinstance(value, BaseException):
        if isinstance(value, NoNodeError) and isinstance(request, Get | Children | Sync):
            return None
        raise value
    if isinstance(request, Get):
        return bytes(value[0] or b"")
    if isinstance(request, Children):
        return list(value)
    if isinstance(request, Exists):
        return value is not None
    if isinstance(request, Sync):
        return None
    return list(value)


def replies(batch: Sequence[Request], values: Sequence[Any]) -> list[Any]:
    """Every reply of ``batch``; the first failure (in order) is raised."""
    return [reply(r, v) for r, v in zip(batch, values, strict=True)]


def advance(plan: Plan[Any], batch: Sequence[Request], values: Sequence[Any]) -> Sequence[Request]:
    """Hand kazoo's results ``values`` of ``batch`` to ``plan`` (the replies, or the first
    failure thrown in); the plan's next batch. ``StopIteration`` carries its result. The one
    step every runner shares."""
    try:
        answer = replies(batch, values)
    except Exception as exc:
        return plan.throw(exc)
    return plan.send(answer)


def run_plan(zk: KazooClient, plan: Plan[_T], *, watch: Watch | None = None) -> _T:
    """Run ``plan`` on the blocking client ``zk``; its result."""
    try:
        batch = next(plan)
        while True:
            sent = [send(zk, r, watch) for r in batch]
            values: list[Any] = []
            for result in sent:  # wait for every reply before throwing the first failure
                try:
                    values.append(result.get())
                except Exception as exc:
                    values.append(exc)
            batch = advance(plan, batch, values)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


def get(path: str) -> Plan[bytes | None]:
    """A plan step (``yield from``): the data at ``path``, None when missing."""
    (data,) = yield [Get(path)]
    return data  # type: ignore[no-any-return]


def children(path: str) -> Plan[list[str] | None]:
    """A plan step (``yield from``): ``path``'s children, None when it is missing."""
    (names,) = yield [Children(path)]
    return names  # type: ignore[no-any-return]


#: Requests one batch of :func:`get_many` keeps in flight (a list of 100,000 workflows is
#: read 1,000 at a time, not 100,000 requests queued at once).
BATCH = 1000


def get_many(paths: Sequence[str]) -> Plan[list[bytes | None]]:
    """A plan step (``yield from``): the data at each of ``paths``, requested together,
    :data:`BATCH` at a time."""
    out: list[bytes | None] = []
    for i in range(0, len(paths), BATCH):
        out += yield [Get(p) for p in paths[i : i + BATCH]]
    return out
