"""The executor with real threads: exactly-once, hard bounds, no deadlock, watermarks."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helixpy.errors import HelixpyError, InvalidConfig, TooMuchWork
from helixpy.participant.executor import Executor, Item, WorkGroup

WAIT = 30.0  # bound of every wait in these tests (the per-test timeout is the backstop)


@contextmanager
def running(executor: Executor) -> Iterator[Executor]:
    executor.start()
    try:
        yield executor
    finally:
        assert executor.stop(WAIT), "workers did not exit"


class Tally:
    """Thread-safe run counts per key."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[object, int] = {}

    def hit(self, key: object) -> None:
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + 1


def test_many_sources_into_a_small_admission_queue_run_every_item_once() -> None:
    tally = Tally()
    with running(Executor(workers=2, admission_capacity=100)) as ex:
        # Given 8 sources each submitting 10,000 items into an admission queue of 100
        def source(s: int) -> None:
            for i in range(10_000):
                assert ex.submit(Item(lambda k=(s, i): tally.hit(k), job=f"j{s % 3}"), timeout=WAIT)

        threads = [threading.Thread(target=source, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(WAIT)
            assert not t.is_alive(), "a source is stuck"
    # Then every item ran exactly once, and the queue never held more than its capacity
    assert len(tally.counts) == 80_000 and set(tally.counts.values()) == {1}
    m = ex.metrics()
    assert m.admission_high_water <= 100 and m.processed == 80_000
    assert m.blocked_submit_seconds > 0  # backpressure reached the sources


def test_bursts_into_a_tiny_internal_queue_run_once_within_bounds() -> None:
    tally = Tally()
    groups = [WorkGroup() for _ in range(6)]
    with running(Executor(workers=2, internal_capacity=16)) as ex:
        # Given roots that each emit a burst of 3,000 items, each of which emits one more
        def leaf(key: object) -> Callable[[], None]:
            return lambda: tally.hit(key)

        def mid(g: int, i: int) -> Callable[[], None]:
            def run() -> None:
                tally.hit((g, i))
                ex.emit(Item(leaf((g, i, "leaf")), job="x"))

            return run

        def root(g: int) -> Callable[[], None]:
            def run() -> None:
                for i in range(3_000):
                    ex.emit(Item(mid(g, i), job="x"))

            return run

        for g, group in enumerate(groups):
            assert ex.submit(Item(root(g), job=f"job{g}", group=group), timeout=WAIT)
        for group in groups:
            assert group.done.wait(WAIT)
    # Then everything ran exactly once, no group failed, and no bound was exceeded
    assert len(tally.counts) == 6 * 3_000 * 2 and set(tally.counts.values()) == {1}
    assert all(g.error is None for g in groups)
    m = ex.metrics()
    assert m.internal_high_water <= 16
    assert m.inline_runs > 0 and m.inline_high_water <= ex.max_inline_depth


def test_an_emission_tree_deeper_than_the_inline_limit_fails_only_its_task() -> None:
    tally = Tally()
    deep, other = WorkGroup(), WorkGroup()
    # One worker and a queue of one: once it holds an item, every emit runs inline
    with running(Executor(workers=1, internal_capacity=1, max_inline_depth=8)) as ex:

        def node(depth: int) -> Callable[[], None]:
            def run() -> None:
                tally.hit(depth)
                if depth < 50:
                    ex.emit(Item(node(depth + 1), job="deep"))
                    ex.emit(Item(node(depth + 1), job="deep"))

            return run

        assert ex.submit(Item(node(0), job="deep", group=deep), timeout=WAIT)
        assert ex.submit(Item(lambda: tally.hit("other"), job="other", group=other), timeout=WAIT)
        assert deep.done.wait(WAIT) and other.done.wait(WAIT)
    # Then the deep task failed with TooMuchWork (no RecursionError), the other one did not
    assert isinstance(deep.error, TooMuchWork)
    assert "max_inline_depth=8" in str(deep.error)
    assert other.error is None and tally.counts["other"] == 1
    assert max(k for k in tally.counts if isinstance(k, int)) <= 10


def test_a_pending_stop_runs_after_exactly_the_items_ahead_of_it() -> None:
    before_gate, after_gate = threading.Event(), threading.Event()
    finished: list[str] = []
    lock = threading.Lock()
    seen: dict[str, list[str]] = {}

    def work(name: str, gate: threading.Event) -> Callable[[], None]:
        def run() -> None:
            assert gate.wait(WAIT)
            with lock:
                finished.append(name)

        return run

    def stop() -> None:
        with lock:
            seen["at_stop"] = list(finished)
        after_gate.set()  # later items may finish only once the stop has run

    # (enough workers for the 12 held items and two more: the stop must not need one early)
    with running(Executor(workers=14)) as ex:
        # Given ten items of job j held back, then a pending stop, then more items of j
        for i in range(10):
            assert ex.submit(Item(work(f"before{i}", before_gate), job="j"), timeout=WAIT)
        assert ex.submit(Item(stop, job="j", barrier=True), timeout=WAIT)
        for i in range(2):
            assert ex.submit(Item(work(f"after{i}", after_gate), job="j"), timeout=WAIT)
        # and another job's items keep flowing while the stop waits (it holds no worker)
        other = [WorkGroup() for _ in range(50)]
        for g in other:
            assert ex.submit(Item(lambda: None, job="other", group=g), timeout=WAIT)
        assert all(g.done.wait(WAIT) for g in other)
        assert "at_stop" not in seen and ex.metrics().parked == 1
        # When the items ahead of it finish
        before_gate.set()
        assert after_gate.wait(WAIT)
    # Then the stop ran after all ten of them and before (without waiting for) the later two
    assert sorted(seen["at_stop"]) == sorted(f"before{i}" for i in range(10))
    assert sorted(finished[10:]) == ["after0", "after1"]


def test_an_attempt_completes_only_after_its_emitted_items_ran() -> None:
    order: list[str] = []
    done_with: list[BaseException | None] = []
    gate = threading.Event()
    group = WorkGroup(on_done=lambda err: done_with.append(err))
    with running(Executor(workers=2)) as ex:

        def child() -> None:
            assert gate.wait(WAIT)
            order.append("child")

        def root() -> None:
            ex.emit(Item(child, job="j"))
            order.append("root")

        assert ex.submit(Item(root, job="j", group=group), timeout=WAIT)
        # The root returned, but its follow-up has not run: the group is not done
        assert not group.done.wait(0.2)  # a bounded check that nothing completed early
        gate.set()
        assert group.done.wait(WAIT)
    assert order == ["root", "child"] and done_with == [None]


def test_a_failed_or_cancelled_group_skips_its_remaining_items() -> None:
    ran: list[str] = []
    failing, cancelled = WorkGroup(), WorkGroup()
    gate = threading.Event()
    with running(Executor(workers=1, internal_capacity=100)) as ex:

        def root_fails() -> None:
            ex.emit(Item(lambda: ran.append("after failure"), job="a"))
            raise ValueError("boom")

        def root_cancelled() -> None:
            ex.emit(Item(lambda: ran.append("after cancel"), job="b"))
            cancelled.cancel()

        assert ex.submit(Item(lambda: gate.wait(WAIT), job="hold"), timeout=WAIT)
        assert ex.submit(Item(root_fails, job="a", group=failing), timeout=WAIT)
        assert ex.submit(Item(root_cancelled, job="b", group=cancelled), timeout=WAIT)
        gate.set()
        assert failing.done.wait(WAIT) and cancelled.done.wait(WAIT)
    assert isinstance(failing.error, ValueError) and ran == []
    assert ex.metrics().skipped == 2


def test_submit_gives_up_on_timeout_stop_event_or_stop_and_workers_may_not_submit() -> None:
    gate = threading.Event()
    ex = Executor(workers=1, admission_capacity=1)
    ex.start()
    try:
        assert ex.submit(Item(lambda: gate.wait(WAIT), job="j"), timeout=WAIT)  # runs
        assert ex.submit(Item(lambda: None, job="j"), timeout=WAIT)  # fills admission
        assert not ex.submit(Item(lambda: None, job="j"), timeout=0.05)
        stop = threading.Event()
        stop.set()
        assert not ex.submit(Item(lambda: None, job="j"), stop_event=stop)
        errors: list[BaseException] = []

        def from_worker() -> None:
            try:
                ex.submit(Item(lambda: None, job="j"))
            except HelixpyError as exc:
                errors.append(exc)

        gate.set()
        assert ex.submit(Item(from_worker, job="j"), timeout=WAIT)
    finally:
        assert ex.stop(WAIT)
    assert not ex.submit(Item(lambda: None, job="j"))
    assert len(errors) == 1 and "emit" in str(errors[0])
    with pytest.raises(HelixpyError, match="emit"):
        ex.emit(Item(lambda: None, job="j"))  # not on a worker


@pytest.mark.parametrize(
    "field", ["workers", "admission_capacity", "internal_capacity", "max_inline_depth"]
)
def test_sizes_must_be_positive(field: str) -> None:
    kwargs: dict[str, int] = {"workers": 1, field: 0}
    with pytest.raises(InvalidConfig, match=f"executor.{field}"):
        Executor(**kwargs)


# A random emit tree: each node is the list of its children.
Tree = list["Tree"]  # type: ignore[misc]
trees = st.recursive(st.just([]), lambda kids: st.lists(kids, max_size=4), max_leaves=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    forest=st.lists(trees, min_size=1, max_size=4),
    workers=st.integers(1, 3),
    internal=st.integers(1, 4),
    depth=st.integers(2, 6),
)
def test_random_emit_trees_run_each_node_at_most_once_and_all_unless_too_deep(
    forest: list[Tree], workers: int, internal: int, depth: int
) -> None:
    tally = Tally()
    groups = [WorkGroup() for _ in forest]
    with running(
        Executor(workers=workers, internal_capacity=internal, max_inline_depth=depth)
    ) as ex:

        def node(path: tuple[int, ...], kids: Tree) -> Callable[[], None]:
            def run() -> None:
                tally.hit(path)
                for i, kid in enumerate(kids):
                    ex.emit(Item(node((*path, i), kid), job="t"))

            return run

        for g, (tree, group) in enumerate(zip(forest, groups, strict=True)):
            assert ex.submit(Item(node((g,), tree), job=f"t{g}", group=group), timeout=WAIT)
        for group in groups:
            assert group.done.wait(WAIT)

    def paths(prefix: tuple[int, ...], tree: Tree) -> Iterator[tuple[int, ...]]:
        yield prefix
        for i, kid in enumerate(tree):
            yield from paths((*prefix, i), kid)

    assert set(tally.counts.values()) <= {1}
    for g, (tree, group) in enumerate(zip(forest, groups, strict=True)):
        expected = set(paths((g,), tree))
        ran = {k for k in tally.counts if isinstance(k, tuple) and k[0] == g}
        assert ran <= expected
        if group.error is None:
            assert ran == expected
        else:
            assert isinstance(group.error, TooMuchWork)
    m = ex.metrics()
    assert m.internal_high_water <= internal and m.inline_high_water <= depth
