"""The participant's deadline heap: fires in time order, forgets discarded deadlines."""

from __future__ import annotations

import threading
import time

from helixpy.participant.timeouts import Deadlines


def test_deadlines_fire_in_order_and_discarded_ones_never_fire() -> None:
    fired: list[object] = []
    done = threading.Event()

    def fire(item: object) -> None:
        fired.append(item)
        if item == "last":
            done.set()

    d = Deadlines(fire)
    d.start()
    try:
        now = time.monotonic()
        d.add(now + 0.02, "second")
        token = d.add(now + 0.01, "discarded")
        d.add(now, "first")
        d.add(now + 0.05, "last")
        d.discard(token)
        assert done.wait(5.0)
        assert fired == ["first", "second", "last"]
        assert len(d) == 0
    finally:
        d.close()


def test_discarding_keeps_the_heap_small() -> None:
    d = Deadlines(lambda _item: None)  # not started: only the bookkeeping is under test
    tokens = [d.add(time.monotonic() + 3600, i) for i in range(1000)]
    for t in tokens[:990]:
        d.discard(t)
    # Given 990 of 1000 discarded, Then the heap was compacted, not left at 1000 entries
    assert len(d) == 10
    assert len(d._heap) <= 64 or len(d._heap) <= 2 * len(d)
