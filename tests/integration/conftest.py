"""Fixtures for tests on a real ZooKeeper: one server per session, one cluster per test.

Each test gets its own cluster name (its own ZooKeeper root), so tests share the server
without sharing state. When a test that used the server fails, the tail of the server's
log is printed with the failure.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from helixpy.testing.zookeeper import ZooKeeperServer


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def zk_server() -> Iterator[ZooKeeperServer]:
    with ZooKeeperServer(tick_time=0.5, name="tests") as server:
        yield server


@pytest.fixture
def zk_address(zk_server: ZooKeeperServer, request: pytest.FixtureRequest) -> Iterator[str]:
    yield zk_server.connection_string
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        sys.stderr.write(f"==== ZooKeeper server log (tail) ====\n{zk_server.log_tail()}\n")
