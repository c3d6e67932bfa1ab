"""Fenced multi-writes: every write of a controller or participant proves it is current.

A controller's writes carry ``check(EPOCH, its version)``; a participant's carry
``check(INCARNATION, its version)``. A deposed writer's multi fails on the check and the
writer learns it through :class:`~helixpy.errors.Fenced`. Large writes are split into several
multis, each carrying the check, so no single request exceeds ZooKeeper's limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import BadVersionError, NoNodeError, RolledBackError

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
    return check_multi(ops, _transaction(zk, ops, acl).commit())


def _transaction(zk: KazooClient, ops: Sequence[Op], acl: AclProvider) -> Any:
    txn = zk.transaction()
    for op in ops:
        if isinstance(op, Create):
            txn.create(
                op.path,
                op.data,
                acl=acl.acl_for(op.path),
                ephemeral=op.ephemeral,
                sequence=op.sequence,
            )
        elif isinstance(op, SetData):
            txn.set_data(op.path, op.data, version=op.version)
        elif isinstance(op, Delete):
            txn.delete(op.path, version=op.version)
        else:
            txn.check(op.path, op.version)
    return txn


def check_multi(ops: Sequence[Op], results: list[Any]) -> list[Any]:
    """Raise :class:`MultiFailed` for the op whose result is the error (not a rollback)."""
    for op, result in zip(ops, results, strict=False):
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            raise MultiFailed(op, result)
    return results


class FencedWriter:
    """Writes batches of ops, each multi guarded by ``check(fence_path, fence_version)``."""

    def __init__(
        self,
        zk: KazooClient,
        fence_path: str,
        fence_version: int,
        acl: AclProvider | None = None,
    ) -> None:
        self.zk = zk
        self.fence = Check(fence_path, fence_version)
        self.acl = acl or OpenAclProvider()
        #: multis committed (for tests and metrics)
        self.multis = 0

    def commit(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in order in as few fenced multis as fit the size limit.

        Raises :class:`Fenced` when the fence check fails (the writer is stale) and
        :class:`MultiFailed` when another op fails; earlier batches stay applied.
        """
        for batch in split_batches(ops, self.fence):
            self._checked(batch, run_multi, self.zk, batch, self.acl)

    def commit_async(self, ops: Sequence[Op]) -> Callable[[], None] | None:
        """Send ``ops`` as one fenced multi without waiting; None if they need more than one.

        Returns the wait: it raises as :meth:`commit` would. ZooKeeper applies one
        session's requests in order, so multis sent back to back land in that order.
        """
        batches = split_batches(ops, self.fence)
        if len(batches) != 1:
            return None
        batch = batches[0]
        sent = _transaction(self.zk, batch, self.acl).commit_async()

        def wait() -> None:
            self._checked(batch, lambda: check_multi(batch, sent.get()))

        return wait

    def _checked(self, batch: Sequence[Op], run: Callable[..., object], *args: Any) -> None:
        """Run one multi; a failed fence check is :class:`Fenced`, other failures as they are."""
        try:
            run(*args)
        except MultiFailed as exc:
            if exc.op is self.fence and isinstance(exc.error, BadVersionError | NoNodeError):
                raise Fenced(f"{self.fence.path} moved past version {self.fence.version}") from None
            raise
        self.multis += 1
