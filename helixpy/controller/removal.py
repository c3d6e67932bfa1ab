"""Removing workflow trees from ZooKeeper: deletes, purges at expiry, half-written starts.

Order is what makes a removal safe to cut short: a workflow's CONFIG goes first (with the
request's stored reply, when a driver asked), then the rest of its tree leaves first; its
ACTIVE entry goes last. A directory without CONFIG is therefore a start or delete cut short,
which the next leader finds through the entry and finishes removing (controller/loader).
"""

from __future__ import annotations

import logging
from collections.abc import Container

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError, NotEmptyError

from helixpy.errors import CorruptNode
from helixpy.store.codec import decode
from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Create, Delete, Op
from helixpy.store.paths import Paths

log = logging.getLogger(__name__)

#: Expired workflows purged per batch of pipelined reads and multis.
PURGE_GROUP = 200


class Removal:
    """Fenced removal of workflow trees for one leadership term (the writer's epoch)."""

    def __init__(self, zk: KazooClient, paths: Paths, writer: FencedWriter) -> None:
        self.zk = zk
        self.paths = paths
        self.writer = writer

    def remove_workflow(self, name: str, request_op: Op | None = None) -> None:
        """Delete a workflow's CONFIG first (with ``request_op``), then the rest of its tree:
        a delete cut short leaves a directory without CONFIG, which a new leader removes."""
        paths = self.paths
        first: list[Op] = [] if request_op is None else [request_op]
        indexed = self.zk.exists(paths.active_entry(name)) is not None
        if self.zk.exists(paths.workflow_config(name)):
            first.insert(0, Delete(paths.workflow_config(name)))
            if not indexed:
                # A retired workflow: the entry lets the next leader finish a cut-short
                # delete, as it does for active ones.
                first.append(Create(paths.active_entry(name)))
                indexed = True
        if first:
            self.writer.commit(first)
        self.remove_tree(paths.workflow(name))
        if indexed:
            self.writer.commit([Delete(paths.active_entry(name))])

    def remove_tree(self, root: str) -> None:
        """Delete ``root`` and everything below it, leaves first, in fenced batches.

        A late participant write may add a node while we walk (task content): the delete
        of its parent then fails NotEmpty and the walk is repeated.
        """
        for _ in range(10):
            nodes = self._walk(root)
            if not nodes:
                return
            try:
                self.writer.commit([Delete(n) for n in reversed(nodes)])
                return
            except MultiFailed as exc:
                if not isinstance(exc.error, NotEmptyError | NoNodeError):
                    raise
                log.info("retrying removal of %s: %s", root, exc)
        raise RuntimeError(f"could not remove {root}: it keeps changing")

    def purge_workflows(self, items: list[tuple[str, str]], resident: Container[str]) -> None:
        """Purge expired workflows ``(name, uid)``: only where CONFIG still has that uid (a
        name reused by a later start is left alone) and the name is not ``resident`` (active
        again); a directory without CONFIG (a delete cut short) goes too. Reads and deletes
        are pipelined, many workflows per multi."""
        paths = self.paths
        for i in range(0, len(items), PURGE_GROUP):
            group = [(n, u) for n, u in items[i : i + PURGE_GROUP] if n not in resident]
            reads = [(n, u, self.zk.get_async(paths.workflow_config(n))) for n, u in group]
            first: list[Op] = []
            roots: list[str] = []
            for name, uid, read in reads:
                try:
                    data = read.get()[0]
                except NoNodeError:
                    roots.append(paths.workflow(name))
                    continue
                try:
                    stored = decode(data) or {}
                except CorruptNode:
                    stored = {}
                if stored.get("uid") != uid:
                    continue  # deleted and started again under the same name
                first.append(Delete(paths.workflow_config(name)))
                roots.append(paths.workflow(name))
            self.remove_trees(roots, first)

    def remove_trees(self, roots: list[str], first: list[Op] | None = None) -> None:
        """Delete ``roots`` and everything below them: ``first`` (their CONFIGs), then the
        rest leaves first, read level by level with pipelined reads, in fenced batches.
        A tree that changes while we walk falls back to :meth:`remove_tree`."""
        first = list(first or [])
        done = {op.path for op in first}
        nodes: list[str] = []
        level = list(roots)
        while level:
            reads = [(path, self.zk.get_children_async(path)) for path in level]
            level = []
            for path, read in reads:
                try:
                    children = read.get()
                except NoNodeError:
                    continue
                nodes.append(path)
                level += [f"{path}/{c}" for c in children]
        ops = first + [Delete(n) for n in reversed(nodes) if n not in done]
        if not ops:
            return
        try:
            self.writer.commit(ops)
        except MultiFailed as exc:
            if not isinstance(exc.error, NotEmptyError | NoNodeError):
                raise
            log.info("batched removal raced (%s); removing one tree at a time", exc)
            for root in roots:
                self.remove_tree(root)

    def _walk(self, root: str) -> list[str]:
        out: list[str] = []
        todo = [root]
        while todo:
            path = todo.pop()
            try:
                children = self.zk.get_children(path)
            except NoNodeError:
                continue
            out.append(path)
            todo.extend(f"{path}/{c}" for c in children)
        # parents before children; reversed() in the caller deletes leaves first
        out.sort(key=lambda s: s.count("/"))
        return out
