"""Fenced multi-writes: every write of a controller or participant proves it is current.

A controller's writes carry ``check(EPOCH, its version)``; a participant's carry
``check(INCARNATION, its version)`` and ``check(its live node, any version)``: the live node
is ephemeral, so a participant whose session expired is fenced at once, before anyone
registers a newer incarnation (a frozen participant that wakes on a new session must not
write in between). A deposed writer's multi fails on the check and the
writer learns it through :class:`~helixpy.errors.Fenced`. Large writes are split into several
multis, each carrying the check, so no single request exceeds ZooKeeper's limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError, RolledBackError
from kazoo.protocol.paths import _norm_root
from kazoo.protocol.serialization import CheckVersion as _ZkCheck
from kazoo.protocol.serialization import Create as _ZkCreate
from kazoo.protocol.serialization import Delete as _ZkDelete
from kazoo.protocol.serialization import SetData as _ZkSetData
from kazoo.protocol.serialization import Transaction as _ZkTransaction
from kazoo.security import OPEN_ACL_UNSAFE

from helixpy.errors import Fenced
from helixpy.store.acl import AclProvider, OpenAclProvider
from helixpy.store.ops import Check, Create, Delete, Op, SetData, split_batches

log = logging.getLogger(__name__)


class MultiFailed(Exception):
    """A fenced multi failed on an operation other than the fence; ``op`` and ``error`` say which.

    Internal control flow for callers that retry a CAS; not part of the public error tree.
    """

    def __init__(self, op: Op, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__} on {type(op).__name__} {op.path}")
        self.op = op
        self.error = error


def run_multi(zk: KazooClient, ops: Sequence[Op], acl: AclProvider) -> list[Any]:
    """Run ``ops`` as one ZooKeeper multi; raise :class:`MultiFailed` naming the failing op."""
    return check_multi(ops, send_multi(zk, ops, acl).get())


def send_multi(zk: KazooClient, ops: Sequence[Op], acl: AclProvider) -> Any:
    """Send ``ops`` as one multi without waiting; kazoo's async result of its op results.

    Built straight into kazoo's request records, not through ``zk.transaction()``: that
    re-normalises every path component by component (for the root, then the path) and logs
    each op, which was ~8% of a busy leader's CPU. Our paths come normalised from
    :class:`~helixpy.store.paths.Paths`; only the client's chroot is put in front, as kazoo
    does. Results are kazoo's, unchanged (a transaction's created paths keep the chroot).
    """
    root = _norm_root(zk.chroot or "")
    prefix = "" if root == "/" else root
    records: list[Any] = []
    for op in ops:
        path = prefix + op.path
        if isinstance(op, Create):
            flags = (1 if op.ephemeral else 0) | (2 if op.sequence else 0)
            node_acl = acl.acl_for(op.path) or zk.default_acl or OPEN_ACL_UNSAFE
            records.append(_ZkCreate(path, op.data, node_acl, flags))
        elif isinstance(op, SetData):
            records.append(_ZkSetData(path, op.data, op.version))
        elif isinstance(op, Delete):
            records.append(_ZkDelete(path, op.version))
        else:
            records.append(_ZkCheck(path, op.version))
    result = zk.handler.async_result()
    zk._call(_ZkTransaction(records), result)
    return result


def check_multi(ops: Sequence[Op], results: list[Any]) -> list[Any]:
    """Raise :class:`MultiFailed` for the op whose result is the error (not a rollback)."""
    for op, result in zip(ops, results, strict=False):
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            raise MultiFailed(op, result)
    return results


def is_fence(exc: MultiFailed, checks: Sequence[Op]) -> bool:
    """Whether a multi failed on one of its fence ``checks`` (the writer is stale)."""
    return any(exc.op is c for c in checks) and isinstance(exc.error, BadVersionError | NoNodeError)


def fenced_message(check: Op) -> str:
    if isinstance(check, Check) and check.version == -1:
        return f"{check.path} is gone (the session that made it ended)"
    return f"{check.path} moved past version {getattr(check, 'version', '?')}"


class FencedWriter:
    """Writes batches of ops, each multi guarded by ``check(fence_path, fence_version)``
    and the checks in ``also``."""

    def __init__(
        self,
        zk: KazooClient,
        fence_path: str,
        fence_version: int,
        acl: AclProvider | None = None,
        also: Sequence[Check] = (),
    ) -> None:
        self.zk = zk
        self.fence = Check(fence_path, fence_version)
        #: every check each multi carries (the fence first)
        self.checks: tuple[Check, ...] = (self.fence, *also)
        self.acl = acl or OpenAclProvider()
        #: multis committed (for tests and metrics)
        self.multis = 0

    def commit(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in order in as few fenced multis as fit the size limit.

        Raises :class:`Fenced` when the fence check fails (the writer is stale) and
        :class:`MultiFailed` when another op fails; earlier batches stay applied.
        """
        for batch in split_batches(ops, self.checks):
            self._checked(batch, run_multi, self.zk, batch, self.acl)

    def commit_async(self, ops: Sequence[Op]) -> Callable[[], None] | None:
        """Send ``ops`` as one fenced multi without waiting; None if they need more than one.

        Returns the wait: it raises as :meth:`commit` would. ZooKeeper applies one
        session's requests in order, so multis sent back to back land in that order.
        """
        batches = split_batches(ops, self.checks)
        if len(batches) != 1:
            return None
        batch = batches[0]
        sent = send_multi(self.zk, batch, self.acl)

        def wait() -> None:
            self._checked(batch, lambda: check_multi(batch, sent.get()))

        return wait

    def _checked(self, batch: Sequence[Op], run: Callable[..., object], *args: Any) -> None:
        """Run one multi; a failed fence check is :class:`Fenced`, other failures as they are."""
        try:
            run(*args)
        except MultiFailed as exc:
            if is_fence(exc, self.checks):
                raise Fenced(fenced_message(exc.op)) from None
            raise
        self.multis += 1
