"""Fixtures for tests on a real ZooKeeper: one server per session, one cluster per test.

Each test gets its own cluster name (its own ZooKeeper root), so tests share the server
without sharing state.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helixpy.testing.zookeeper import local_zookeeper


@pytest.fixture(scope="session")
def zk_address() -> Iterator[str]:
    with local_zookeeper() as address:
        yield address
