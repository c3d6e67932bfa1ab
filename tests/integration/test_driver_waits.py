"""The driver's shared watcher: a wait is woken by its own nodes' events, not every poll's."""

from __future__ import annotations

import uuid

import pytest

from helixpy.driver.leader import Watcher
from helixpy.store.client import connect

pytestmark = pytest.mark.cluster


def test_a_wait_moves_with_its_own_paths_events_only(zk_address: str) -> None:
    # Given a watcher with two paths in use, both armed, and a third path not in use
    zk = connect(zk_address, session_timeout=6.0)
    root = f"/waits-{uuid.uuid4().hex[:8]}"
    a, b, other = f"{root}/a", f"{root}/b", f"{root}/other"
    try:
        for path in (a, b, other):
            zk.create(path, b"0", makepath=True)
        watcher = Watcher(zk)
        zk.add_listener(watcher.fire)
        with watcher.watching(a), watcher.watching(b):
            for path in (a, b, other):
                assert watcher.arm(path)
            on_a, on_b, on_any = (
                watcher.generation(a),
                watcher.generation(b),
                watcher.generation(other),
            )
            # When b changes (its watch fires on kazoo's event thread)
            zk.set(b, b"1")
            watcher.wait(on_b, 10.0, b)
            # Then a wait on b ends, a wait on a does not move, and a wait on a path
            # outside a watching block moves with any event (never missing its own)
            assert watcher.generation(b) != on_b
            assert watcher.generation(a) == on_a
            assert watcher.generation(other) != on_any
            # When a session-state change arrives, every wait moves (all re-read)
            watcher.fire("SUSPENDED")
            assert watcher.generation(a) != on_a
        # And once the last wait on a path ends, its watch is forgotten by the client
        assert a not in zk._data_watchers and b not in zk._data_watchers
    finally:
        zk.delete(root, recursive=True)
        zk.stop()
        zk.close()
