"""Task locks in ZooKeeper: survive controller failover and holder death, fenced writes.

Layout (under the cluster root):

- ``LOCKS/<escaped resource>``: the resource's posses, ``{"kind", "next_token", "posses"}``,
  updated only by compare-and-set on its version (every acquire, revoke, release);
- ``LOCKS/<escaped resource>/AUDIT/a-<seq>``: the trail, one node per grant, join, revoke,
  release and reclaim, written in the same multi as the change, which also prunes what
  retention no longer keeps (:mod:`helixpy.store.lock_audit`);
- ``LOCKHOLDERS/<holder id>``: an ephemeral node per live holder. A member whose node is gone
  (its session expired: the process died or was frozen too long) is reclaimed by the next
  acquirer of the resource, without waiting for any controller.

The decisions are :func:`helixpy.model.locks.decide`'s; this module reads, decides, and
writes with CAS, retrying when another writer got in between.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote, unquote

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    NodeExistsError,
    NoNodeError,
    SessionExpiredError,
)

from helixpy.errors import InvalidConfig, LockRevoked, PollTimeout
from helixpy.model.locks import (
    Decision,
    Holder,
    Interval,
    LockResult,
    LockType,
    Posse,
    Request,
    check_priority,
    decide,
    release,
)
from helixpy.store import plan
from helixpy.store.acl import AclProvider, OpenAclProvider
from helixpy.store.codec import decode, encode
from helixpy.store.fencing import MultiFailed, run_multi
from helixpy.store.lock_audit import Retention, audit_ops
from helixpy.store.ops import Check, Create, Op, SetData
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan, run_plan
from helixpy.store.records import read_cluster_config

log = logging.getLogger(__name__)

#: Bound of one wait in ``acquire`` (watches end it sooner; the bound guards a lost watch).
_WAIT_SLICE = 1.0


def escape_resource(resource: str) -> str:
    """A resource name as one path segment (reversible)."""
    if not isinstance(resource, str) or not resource:
        raise InvalidConfig("lock.resource", "must be a non-empty string")
    escaped = quote(resource, safe="")
    return escaped.replace(".", "%2E") if escaped in (".", "..") else escaped


def unescape_resource(segment: str) -> str:
    return unquote(segment)


def resource_path(paths: Paths, resource: str) -> str:
    return f"{paths.root}/LOCKS/{escape_resource(resource)}"


def holder_path(paths: Paths, holder_id: str) -> str:
    return f"{paths.root}/LOCKHOLDERS/{quote(holder_id, safe='')}"


def read_locks(zk: KazooClient, paths: Paths, resource: str | None = None) -> dict[str, Any]:
    """Every resource's posses (or one resource's): resource -> list of posse dicts."""
    return run_plan(zk, locks_plan(paths, resource))


def locks_plan(paths: Paths, resource: str | None = None) -> Plan[dict[str, Any]]:
    """:func:`read_locks` as a plan (see :mod:`helixpy.store.plan`)."""
    root = f"{paths.root}/LOCKS"
    if resource is not None:
        names = [escape_resource(resource)]
    else:
        names = sorted((yield from plan.children(root)) or ())
    out: dict[str, Any] = {}
    for name, data in zip(
        names, (yield from plan.get_many([f"{root}/{n}" for n in names])), strict=True
    ):
        if data is not None:
            body = decode(data) or {}
            out[unescape_resource(name)] = list(body.get("posses") or [])
    return out


def read_audit(zk: KazooClient, paths: Paths, resource: str) -> list[dict[str, Any]]:
    """The resource's audit trail, oldest first."""
    return run_plan(zk, audit_plan(paths, resource))


def audit_plan(paths: Paths, resource: str) -> Plan[list[dict[str, Any]]]:
    """:func:`read_audit` as a plan: the trail's nodes read together."""
    audit = f"{resource_path(paths, resource)}/AUDIT"
    names = sorted((yield from plan.children(audit)) or ())
    out = []
    for name, data in zip(
        names, (yield from plan.get_many([f"{audit}/{n}" for n in names])), strict=True
    ):
        if data is not None:
            out.append({"seq": int(name[2:]), **(decode(data) or {})})
    return out


class LockBox:
    """The locks of one holder (a task attempt, or any process), on one cluster.

    ``group`` and ``priority`` are the holder's defaults (a task: its job's lock group and
    priority). Locks cannot be trusted while the session is SUSPENDED: a critical section
    in progress then ends with :class:`~helixpy.errors.LockRevoked`, and ``commit`` refuses.
    """

    def __init__(
        self,
        zk: KazooClient,
        cluster: str,
        holder: Holder | str,
        *,
        group: str | None = None,
        priority: int = 0,
        timeout: float = 300.0,
        acl: AclProvider | None = None,
    ) -> None:
        self.zk = zk
        self.paths = Paths(cluster)
        self.holder = holder if isinstance(holder, Holder) else Holder(id=str(holder))
        self.group = group or self.holder.id
        self.priority = check_priority("priority", priority)
        self.timeout = timeout
        self.acl = acl or OpenAclProvider()
        self._held: dict[str, set[int]] = {}  # resource -> tokens held
        #: bumped at every session state other than CONNECTED; a critical section compares
        #: it with its value at entry (sections of one box can nest or run concurrently)
        self._suspensions = 0
        self._audit_retention: Retention | None = None
        self._sections: list[int] = []  # the suspension count at each open section's entry
        self._lock = threading.Lock()
        zk.add_listener(self._on_session)
        self._register()

    # --- liveness -------------------------------------------------------------------------

    def _register(self) -> None:
        path = holder_path(self.paths, self.holder.id)
        self.zk.ensure_path(f"{self.paths.root}/LOCKHOLDERS")
        try:
            self.zk.create(path, encode(self.holder.to_dict()), ephemeral=True)
        except NodeExistsError:
            _, stat = self.zk.get(path)
            if stat.ephemeralOwner != self.zk.client_id[0]:
                raise InvalidConfig("lock.holder", f"{self.holder.id} is in use") from None

    def _on_session(self, state: str) -> None:
        if state != KazooState.CONNECTED:
            self._suspensions += 1  # (kazoo's thread: only a counter moves here)

    def _alive(self, holder_id: str) -> bool:
        """A member lives while its liveness node does and, for a task, while its
        participant is still in the incarnation it acquired under (a participant that
        fenced itself and re-registered keeps its session but not its old attempts)."""
        try:
            data, _ = self.zk.get(holder_path(self.paths, holder_id))
        except NoNodeError:
            return False
        holder = decode(data) or {}
        instance, incarnation = holder.get("instance"), holder.get("incarnation")
        if instance is None or incarnation is None:
            return True
        stat = self.zk.exists(self.paths.incarnation(str(instance)))
        return stat is None or stat.version == int(incarnation)

    # --- acquire / release ----------------------------------------------------------------

    def try_acquire(
        self,
        resource: str,
        interval: Interval | tuple[object, object],
        type: LockType = LockType.EXCLUSIVE,
        *,
        group: str | None = None,
        priority: int | None = None,
    ) -> LockResult:
        """Ask once, never blocking."""
        request = self._request(interval, type, group, priority)
        return self._result(resource, self._update_for(resource, request))

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
        """Ask until granted, revoked or ``timeout`` (default: the box's) passes, waiting
        on watches of the resource and of the holders in the way."""
        request = self._request(interval, type, group, priority)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        wake = threading.Event()

        def on_change(_event: object) -> None:
            wake.set()  # (kazoo's thread: never block here)

        while True:
            wake.clear()
            decision = self._update_for(resource, request, watch=on_change)
            if decision.result not in ("denied", "wait"):
                return self._result(resource, decision)
            for p in decision.posses:  # a holder in the way that dies wakes us too
                for hid in p.members:
                    self.zk.exists(holder_path(self.paths, hid), watch=on_change)
            left = deadline - time.monotonic()
            if left <= 0:
                return self._result(resource, decision)
            wake.wait(min(left, _WAIT_SLICE))

    def release(self, resource: str, token: int | None = None) -> None:
        """Leave the lock ``token`` on ``resource`` (all of this holder's there when None)."""

        def change(posses: list[Posse]) -> tuple[list[Posse], list[dict[str, Any]]]:
            mine = [p for p in posses if self.holder.id in p.members]
            events = [self._event("release", p) for p in mine if token is None or p.token == token]
            return release(posses, self.holder.id, token), events

        self._cas(resource, None, change)
        with self._lock:
            if token is None:
                self._held.pop(resource, None)
            else:
                self._held.get(resource, set()).discard(token)

    def release_all(self) -> None:
        """Leave every lock this box took (an attempt's end)."""
        with self._lock:
            resources = list(self._held)
        for resource in resources:
            self.release(resource)

    def close(self) -> None:
        """Release everything and drop the holder's liveness node."""
        self.release_all()
        self.zk.remove_listener(self._on_session)
        with contextlib.suppress(NoNodeError):
            self.zk.delete(holder_path(self.paths, self.holder.id))

    # --- critical sections and fenced writes ----------------------------------------------

    @contextlib.contextmanager
    def critical_section(
        self, resource: str, intervals: Sequence[Interval | tuple[object, object]]
    ) -> Iterator[None]:
        """While inside, this holder's locks covering ``intervals`` cannot be revoked (a
        higher-priority acquire waits). Raises :class:`LockRevoked` on entry if one was
        revoked (or is not held), and on exit if the session was SUSPENDED meanwhile."""
        wanted = [i if isinstance(i, Interval) else Interval.of(*i) for i in intervals]

        def enter(posses: list[Posse]) -> tuple[list[Posse], list[dict[str, Any]]]:
            for interval in wanted:
                own = [
                    p
                    for p in posses
                    if self.holder.id in p.members and p.interval.contains(interval)
                ]
                if not own or all(p.revoked for p in own):
                    raise LockRevoked(f"{resource} {interval}: not held (revoked or released)")
                for p in own:
                    if not p.revoked:
                        # one entry per open section: nested and concurrent sections of
                        # one holder each keep the lock protected until they end
                        p.critical.append(self.holder.id)
                        entered.append(p.token)
            return posses, []

        def leave(posses: list[Posse]) -> tuple[list[Posse], list[dict[str, Any]]]:
            for p in posses:
                for _ in range(entered.count(p.token)):
                    if self.holder.id in p.critical:
                        p.critical.remove(self.holder.id)
            return posses, []

        entered: list[int] = []
        at_entry = self._suspensions
        self._cas(resource, None, enter)
        self._sections.append(at_entry)
        try:
            yield
        finally:
            self._sections.remove(at_entry)
            suspended = self._suspensions != at_entry
            with contextlib.suppress(Exception):  # a lost session cleans up by itself
                self._cas(resource, None, leave)
        if suspended:
            raise LockRevoked(f"{resource}: the session was suspended during the section")

    def commit(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in one multi that checks every lock this box holds still holds.

        :class:`LockRevoked` when one does not, and when the session cannot vouch for them
        (SUSPENDED during a critical section, or lost: nothing is written then).
        """
        try:
            self._commit(ops)
        except (ConnectionLoss, SessionExpiredError, ConnectionClosedError) as exc:
            raise LockRevoked(f"the session cannot vouch for the locks: {exc!r}") from exc

    def _commit(self, ops: Sequence[Op]) -> None:
        for _ in range(20):
            if any(at_entry != self._suspensions for at_entry in self._sections):
                raise LockRevoked("the session was suspended: locks cannot be trusted")
            checks: list[Op] = []
            with self._lock:
                held = {r: set(t) for r, t in self._held.items() if t}
            for resource, tokens in held.items():
                path = resource_path(self.paths, resource)
                try:
                    data, stat = self.zk.get(path)
                except NoNodeError:
                    raise LockRevoked(f"{resource}: no longer locked") from None
                posses = [Posse.from_dict(p) for p in (decode(data) or {}).get("posses", [])]
                mine = {p.token: p for p in posses if self.holder.id in p.members}
                for token in tokens:
                    if token not in mine or mine[token].revoked:
                        raise LockRevoked(f"{resource}: lock {token} no longer holds")
                checks.append(Check(path, stat.version))
            try:
                run_multi(self.zk, [*checks, *ops], self.acl)
                return
            except MultiFailed as exc:
                if any(exc.op is c for c in checks) and isinstance(exc.error, BadVersionError):
                    continue  # one of our resources changed meanwhile: check again
                raise  # (one of the caller's ops failed: theirs to handle)
        raise LockRevoked("the locks kept changing; nothing was written")

    # --- internals ------------------------------------------------------------------------

    def _request(
        self,
        interval: Interval | tuple[object, object],
        type: LockType,
        group: str | None,
        priority: int | None,
    ) -> Request:
        if not isinstance(interval, Interval):
            interval = Interval.of(*interval)
        return Request(
            interval,
            LockType(type),
            group or self.group,
            self.priority if priority is None else check_priority("priority", priority),
            self.holder,
        )

    def _result(self, resource: str, d: Decision) -> LockResult:
        if d.result in ("held", "joined", "granted"):
            assert d.posse is not None
            with self._lock:
                self._held.setdefault(resource, set()).add(d.posse.token)
            return LockResult(True, False, d.posse.as_lock(resource, self.holder))
        if d.result == "revoked":
            assert d.posse is not None
            return LockResult(False, True, d.posse.as_lock(resource, self.holder), "revoked")
        return LockResult(False, False, None, d.reason)

    def _event(self, kind: str, p: Posse, holder: str | None = None) -> dict[str, Any]:
        return {
            "t": time.time(),
            "event": kind,
            "token": p.token,
            "holder": holder or self.holder.id,
            "interval": p.interval.to_list(),
            "type": p.type.value,
            "group": p.group,
            "priority": p.priority,
        }

    def _update_for(self, resource: str, r: Request, watch: Any = None) -> Decision:
        result: list[Decision] = []

        def change(
            posses: list[Posse], next_token: int
        ) -> tuple[list[Posse], list[dict[str, Any]]]:
            d = decide(posses, r, self._alive, next_token)
            result[:] = [d]
            events = [self._event("reclaim", p, hid) for p, hid in d.reclaimed]
            events += [self._event("revoke", p, ",".join(sorted(p.members))) for p in d.revoked]
            if d.result in ("granted", "joined"):
                assert d.posse is not None
                events.append(self._event("grant" if d.result == "granted" else "join", d.posse))
            return (d.posses if d.changed else posses), events

        self._cas(resource, r.interval.kind, change, watch=watch, with_token=True)
        return result[0]

    def _cas(
        self,
        resource: str,
        kind: str | None,
        change: Any,
        *,
        watch: Any = None,
        with_token: bool = False,
    ) -> None:
        """Read the resource, apply ``change`` and write it back with its audit events, in
        one multi conditioned on the version read; retried when someone got in between."""
        path = resource_path(self.paths, resource)
        rescan = False
        for _ in range(50):
            try:
                data, stat = self.zk.get(path, watch=watch)
            except NoNodeError:
                if kind is None:
                    return  # nothing locked there: nothing to change
                self._create(path, kind)
                continue
            body = dict(decode(data, path=path) or {})
            if kind is not None and body.get("kind") not in (None, kind):
                raise InvalidConfig(
                    "interval", f"resource {resource!r} is locked with {body['kind']} intervals"
                )
            posses = [Posse.from_dict(p) for p in body.get("posses") or []]
            before = [p.to_dict() for p in posses]  # (``change`` may edit posses in place)
            token = int(body.get("next_token", 1))
            new, events = change(posses, token) if with_token else change(posses)
            if not events and [p.to_dict() for p in new] == before:
                return  # nothing changed: no write
            body["posses"] = [p.to_dict() for p in new]
            body["next_token"] = token + 1
            audit = audit_ops(
                self.zk, path, body, events, self._retention(), time.time(), rescan=rescan
            )
            ops: list[Op] = [SetData(path, encode(body, path=path), stat.version), *audit]
            try:
                run_multi(self.zk, ops, self.acl)
                return
            except MultiFailed as exc:
                if isinstance(exc.error, BadVersionError):
                    continue
                if isinstance(exc.error, NoNodeError | NodeExistsError) and exc.op in audit:
                    rescan = True  # the trail is not where the body says (changed by hand)
                    continue
                raise
        raise PollTimeout(f"lock {resource}: too much contention to update it", None)

    def _retention(self) -> Retention:
        """The cluster's audit retention, read once per box (a box is short-lived: one
        attempt's, or a process's)."""
        if self._audit_retention is None:
            self._audit_retention = Retention.of(read_cluster_config(self.zk, self.paths))
        return self._audit_retention

    def _create(self, path: str, kind: str) -> None:
        self.zk.ensure_path(f"{self.paths.root}/LOCKS")
        try:
            run_multi(
                self.zk,
                [
                    Create(path, encode({"kind": kind, "next_token": 1, "posses": []})),
                    Create(f"{path}/AUDIT"),
                ],
                self.acl,
            )
        except MultiFailed as exc:
            if not isinstance(exc.error, NodeExistsError):
                raise
