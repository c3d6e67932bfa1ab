"""Task locks (Druid semantics) as values and one pure decision function. No I/O.

A lock is held by a *posse*: the members of one lock group holding one interval of one
resource with one type. :func:`decide` says what a request gets, given the posses on the
resource: join a posse (same group, same type, contained interval), a new posse, a new posse
after revoking lower-priority conflicting ones (all or nothing; never one in a critical
section), or nothing. :mod:`helixpy.store.locks` applies the decision with a CAS.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from helixpy.errors import InvalidConfig

#: Default priorities by job type (Druid's task lock priorities).
TYPE_PRIORITIES: Mapping[str, int] = {
    "realtime": 75,
    "batch": 50,
    "compaction": 25,
    "merge": 25,
    "append": 25,
}


def check_priority(name: str, value: object) -> int:
    """The one priority rule, for a job's ``priority`` and a lock request's: an integer
    >= 0; higher wins (a lock request may revoke lower-priority conflicting locks)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConfig(name, f"must be an integer (got {value!r})")
    if value < 0:
        raise InvalidConfig(name, f"must be >= 0 (got {value!r})")
    return value


class LockType(enum.Enum):
    SHARED = "SHARED"
    EXCLUSIVE = "EXCLUSIVE"


def _bound(name: str, value: object) -> tuple[float, str]:
    """A bound as (number, kind): numbers as they are, instants as UTC epoch seconds."""
    if isinstance(value, bool):
        raise InvalidConfig(f"interval.{name}", "must be a number or an aware ISO-8601 instant")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise InvalidConfig(f"interval.{name}", "must be finite")
        return float(value), "number"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidConfig(f"interval.{name}", f"not an ISO-8601 instant: {value!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise InvalidConfig(f"interval.{name}", "must be timezone-aware")
        return value.astimezone(UTC).timestamp(), "time"
    raise InvalidConfig(f"interval.{name}", "must be a number or an aware ISO-8601 instant")


@dataclass(frozen=True)
class Interval:
    """Half-open ``[start, end)`` of numbers or of instants (stored as UTC epoch seconds)."""

    start: float
    end: float
    kind: str = "number"  # or "time"

    @classmethod
    def of(cls, start: object, end: object) -> Interval:
        s, skind = _bound("start", start)
        e, ekind = _bound("end", end)
        if skind != ekind:
            raise InvalidConfig("interval", "start and end must both be numbers or instants")
        if not s < e:
            raise InvalidConfig("interval", f"start must be before end ([{start}, {end}))")
        return cls(s, e, skind)

    def overlaps(self, other: Interval) -> bool:
        return self.start < other.end and other.start < self.end  # abutting: no overlap

    def contains(self, other: Interval) -> bool:
        return self.start <= other.start and other.end <= self.end

    def to_list(self) -> list[Any]:
        return [self.start, self.end, self.kind]

    @classmethod
    def from_list(cls, raw: Sequence[Any]) -> Interval:
        return cls(float(raw[0]), float(raw[1]), str(raw[2]))

    def __str__(self) -> str:
        if self.kind == "time":
            start = datetime.fromtimestamp(self.start, UTC).isoformat()
            end = datetime.fromtimestamp(self.end, UTC).isoformat()
            return f"[{start}, {end})"
        return f"[{self.start:g}, {self.end:g})"


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: a unique ``id`` (also its liveness node's name), and for a task
    the instance, incarnation, task key and attempt."""

    id: str
    instance: str | None = None
    incarnation: int | None = None
    task: str | None = None
    attempt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Holder:
        return cls(
            id=str(raw["id"]),
            instance=raw.get("instance"),
            incarnation=raw.get("incarnation"),
            task=raw.get("task"),
            attempt=raw.get("attempt"),
        )


@dataclass(frozen=True)
class Lock:
    """A granted lock as its holder sees it. ``token`` fences writes made under it."""

    resource: str
    interval: Interval
    type: LockType
    group: str
    priority: int
    token: int
    holder: Holder
    revoked: bool = False


@dataclass(frozen=True)
class LockResult:
    """The answer to an acquire: ``ok`` (granted), ``revoked`` (the holder's lock was
    revoked: sticky until released), and the ``lock`` when there is one."""

    ok: bool
    revoked: bool = False
    lock: Lock | None = None
    reason: str = ""


@dataclass
class Posse:
    """The stored form of one lock: its members, and the members inside a critical section."""

    token: int
    interval: Interval
    type: LockType
    group: str
    priority: int
    members: dict[str, dict[str, Any]] = field(default_factory=dict)  # holder id -> holder
    critical: list[str] = field(default_factory=list)  # holder ids inside a critical section
    revoked: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "interval": self.interval.to_list(),
            "type": self.type.value,
            "group": self.group,
            "priority": self.priority,
            "members": {k: dict(v) for k, v in self.members.items()},
            "critical": list(self.critical),
            "revoked": self.revoked,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Posse:
        return cls(
            token=int(raw["token"]),
            interval=Interval.from_list(raw["interval"]),
            type=LockType(raw["type"]),
            group=str(raw["group"]),
            priority=int(raw["priority"]),
            members=dict(raw.get("members") or {}),
            critical=list(raw.get("critical") or []),
            revoked=bool(raw.get("revoked", False)),
        )

    def as_lock(self, resource: str, holder: Holder) -> Lock:
        return Lock(
            resource,
            self.interval,
            self.type,
            self.group,
            self.priority,
            self.token,
            holder,
            self.revoked,
        )


@dataclass(frozen=True)
class Request:
    interval: Interval
    type: LockType
    group: str
    priority: int
    holder: Holder


@dataclass
class Decision:
    """What :func:`decide` concluded; ``posses`` is the new list to store when ``changed``."""

    result: str  # "held" | "joined" | "granted" | "revoked" | "denied" | "wait"
    posses: list[Posse]
    posse: Posse | None = None
    revoked: list[Posse] = field(default_factory=list)
    reclaimed: list[tuple[Posse, str]] = field(default_factory=list)  # (posse, holder id)
    reason: str = ""

    @property
    def changed(self) -> bool:
        return self.result in ("joined", "granted") or bool(self.revoked or self.reclaimed)


def conflicts(p: Posse, r: Request) -> bool:
    """Whether a held posse stands in the way of a request (not counting joining it)."""
    if p.revoked or not p.interval.overlaps(r.interval):
        return False
    return not (p.type is LockType.SHARED and r.type is LockType.SHARED)


def _clashes(p: Posse, posses: Sequence[Posse]) -> bool:
    """Whether another held posse conflicts with ``p`` as a whole (possible only next to a
    holder's own upgraded or widened lock)."""
    return any(
        q is not p
        and not q.revoked
        and q.interval.overlaps(p.interval)
        and not (q.type is LockType.SHARED and p.type is LockType.SHARED)
        for q in posses
    )


def decide(
    posses: Sequence[Posse], r: Request, alive: Callable[[str], bool], next_token: int
) -> Decision:
    """The outcome of request ``r`` against the posses on its resource.

    ``alive(holder_id)`` says whether a member's holder still lives: dead members are
    reclaimed first (their posse goes with its last member). ``next_token`` is the token a
    new posse gets.
    """
    kept: list[Posse] = []
    reclaimed: list[tuple[Posse, str]] = []
    for p in posses:
        p = replace(p, members=dict(p.members), critical=list(p.critical))
        for hid in [h for h in p.members if h != r.holder.id and not alive(h)]:
            del p.members[hid]
            if hid in p.critical:
                p.critical.remove(hid)
            reclaimed.append((p, hid))
        if p.members:
            kept.append(p)
    # Idempotent: the holder's own lock covering the request answers (revoked is sticky).
    for p in kept:
        if r.holder.id in p.members and p.type is r.type and p.interval.contains(r.interval):
            outcome = "revoked" if p.revoked else "held"
            return Decision(outcome, kept, p, reclaimed=reclaimed)
    # The holder's own locks (held by it alone) never stand in its way: it may widen or
    # upgrade what it holds (the old lock stays until released).
    blocking = [p for p in kept if conflicts(p, r) and set(p.members) != {r.holder.id}]
    for p in kept:
        if (
            not p.revoked
            and p.group == r.group
            and p.type is r.type
            and p.interval.contains(r.interval)
            and not _clashes(p, kept)  # joining puts the holder under p's whole interval
        ):
            p.members[r.holder.id] = r.holder.to_dict()
            return Decision("joined", kept, p, reclaimed=reclaimed)
    if blocking and not all(p.priority < r.priority for p in blocking):
        worst = max(blocking, key=lambda p: p.priority)
        reason = (
            f"conflicts with {worst.type.value} lock {worst.interval} of group {worst.group} "
            f"(priority {worst.priority} >= {r.priority})"
        )
        return Decision("denied", kept, reclaimed=reclaimed, reason=reason)
    if any(p.critical for p in blocking):
        return Decision(
            "wait", kept, reclaimed=reclaimed, reason="a lock to revoke is in a critical section"
        )
    for p in blocking:
        p.revoked = True
    posse = Posse(
        token=next_token,
        interval=r.interval,
        type=r.type,
        group=r.group,
        priority=r.priority,
        members={r.holder.id: r.holder.to_dict()},
    )
    return Decision("granted", [*kept, posse], posse, revoked=blocking, reclaimed=reclaimed)


def release(posses: Sequence[Posse], holder_id: str, token: int | None = None) -> list[Posse]:
    """The posses after ``holder_id`` leaves (one posse by ``token``, else all of them);
    a posse goes with its last member."""
    out: list[Posse] = []
    for p in posses:
        if holder_id in p.members and (token is None or p.token == token):
            p = replace(p, members=dict(p.members), critical=list(p.critical))
            del p.members[holder_id]
            if holder_id in p.critical:
                p.critical.remove(holder_id)
        if p.members:
            out.append(p)
    return out
