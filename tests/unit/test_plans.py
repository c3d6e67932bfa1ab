"""Read plans (helixpy.store.plan) driven by a dictionary standing in for ZooKeeper: the
reply rules, and the throw-in of failures that lets a plan recover as a blocking reader."""

from __future__ import annotations

from typing import Any

import pytest
from kazoo.exceptions import ConnectionLoss, NoAuthError, NoNodeError

from helixpy.driver.streams import add_splits
from helixpy.store.codec import decode
from helixpy.store.ops import Check, Create
from helixpy.store.paths import Paths
from helixpy.store.plan import (
    Children,
    Exists,
    Get,
    Multi,
    Plan,
    Request,
    Sync,
    advance,
    get_many,
    replies,
)


class FakeTree:
    """Znodes in a dict; ``lose_reply`` applies the next multi, then loses its reply."""

    def __init__(self) -> None:
        self.nodes: dict[str, bytes] = {}
        self.seq = 0
        self.lose_reply = False
        self.syncs: list[str] = []
        self.batches: list[int] = []

    def answer(self, request: Any) -> Any:
        if isinstance(request, Get):
            return (self.nodes[request.path], None) if request.path in self.nodes else NoNodeError()
        if isinstance(request, Children):
            if request.path not in self.nodes:
                return NoNodeError()
            prefix = request.path + "/"
            return [
                p[len(prefix) :]
                for p in self.nodes
                if p.startswith(prefix) and "/" not in p[len(prefix) :]
            ]
        if isinstance(request, Exists):
            return object() if request.path in self.nodes else None
        if isinstance(request, Sync):
            self.syncs.append(request.path)
            return request.path
        assert isinstance(request, Multi)
        out: list[Any] = []
        for op in request.ops:
            if isinstance(op, Check):
                out.append(True)
            elif isinstance(op, Create):
                path = f"{op.path}{self.seq:010d}" if op.sequence else op.path
                self.seq += 1
                self.nodes[path] = op.data
                out.append(path)
        if self.lose_reply:
            self.lose_reply = False
            return ConnectionLoss()
        return out

    def run(self, plan: Plan[Any]) -> Any:
        try:
            batch = next(plan)
            while True:
                self.batches.append(len(batch))
                batch = advance(plan, batch, [self.answer(r) for r in batch])
        except StopIteration as stop:
            return stop.value


def test_a_missing_node_is_none_and_other_failures_are_raised() -> None:
    # Given replies of each kind, Then a missing node reads as None (Exists as False)
    batch: list[Request] = [Get("/a"), Children("/a"), Exists("/a"), Sync("/a")]
    assert replies(batch, [NoNodeError(), NoNodeError(), None, NoNodeError()]) == [
        None,
        None,
        False,
        None,
    ]
    assert replies([Get("/a"), Children("/a")], [(b"x", None), ("b", "c")]) == [b"x", ["b", "c"]]
    # and any other failure is raised, for the runner to throw into the plan
    with pytest.raises(NoAuthError):
        replies([Get("/a")], [NoAuthError()])


def test_an_append_whose_reply_was_lost_finds_its_first_try_instead_of_adding_twice() -> None:
    # Given an open stream whose next append lands but loses its reply
    paths = Paths("c")
    tree = FakeTree()
    log = paths.stream_log("wf", "s")
    tree.nodes.update({paths.stream_state("wf", "s"): b"", log: b""})
    tree.lose_reply = True
    # When splits are added
    seq = tree.run(add_splits(paths, "wf", "s", [1, 2, 3], None))
    # Then the plan synced, found its entry by its id, and returned its sequence number
    assert tree.syncs == [log]
    entries = [p for p in tree.nodes if p.startswith(log + "/")]
    assert len(entries) == 1 and entries[0].endswith(f"{seq:010d}")
    assert decode(tree.nodes[entries[0]])["splits"] == [1, 2, 3]


def test_get_many_keeps_at_most_a_batch_in_flight_and_keeps_the_order() -> None:
    # Given 2,500 nodes, one of them missing
    tree = FakeTree()
    paths = [f"/n/{i}" for i in range(2500)]
    tree.nodes.update({p: p.encode() for p in paths if p != "/n/7"})
    # When they are read with get_many
    found = tree.run(get_many(paths))
    # Then they come back in order, the missing one as None, 1,000 requests at a time
    assert found == [None if p == "/n/7" else p.encode() for p in paths]
    assert tree.batches == [1000, 1000, 500]
