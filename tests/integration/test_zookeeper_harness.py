"""The ZooKeeper test harness runs real servers, cleans up after itself and fails over.

Every other cluster test trusts ``helixpy.testing.zookeeper``; these tests check it against
real ``java`` ZooKeeper processes with a real client (kazoo).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from helixpy.testing.zookeeper import (
    CLASSPATH_ENV,
    HOME_ENV,
    ZooKeeperNotFound,
    ZooKeeperServer,
    find_zookeeper_classpath,
    four_letter_word,
    local_ensemble,
    local_zookeeper,
)

pytestmark = pytest.mark.cluster

EXPECTED_NOT_FOUND = (
    "ZooKeeper jars not found: install Debian's `zookeeper` package (apt-get install zookeeper)"
    " or set ZOOKEEPER_HOME / HELIXPY_ZOOKEEPER_CLASSPATH"
)


@contextmanager
def kazoo(hosts: str) -> Iterator[KazooClient]:
    """A connected kazoo client that is always stopped and closed."""
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=15.0)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def accepts_connections(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=2.0):
            return True
    except ConnectionRefusedError:
        return False


def server_data_dir(address: str) -> Path:
    # `conf` reports the running server's configuration, so the test finds the temp dir
    # through the server itself rather than through harness internals.
    for line in four_letter_word(address, "conf").splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "dataDir":
            return Path(value.strip())
    raise AssertionError(f"no dataDir in conf output of {address}")


def test_local_zookeeper_serves_and_cleans_up(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a standalone server from local_zookeeper
    with local_zookeeper() as hosts:
        assert hosts.startswith("127.0.0.1:")
        data_dir = server_data_dir(hosts)
        work_dir = data_dir.parent
        assert work_dir.is_dir()

        # When a client creates a znode and reads it back
        with kazoo(hosts) as client:
            client.create("/harness/hello", b"world", makepath=True)
            value, stat = client.get("/harness/hello")

        # Then the write is visible
        assert value == b"world"
        assert stat.version == 0

    # Then, after the block, the server is gone, its files are gone and nothing was dumped
    assert not accepts_connections(hosts)
    assert not work_dir.exists()
    assert "log, last" not in capsys.readouterr().err


def test_server_log_is_printed_when_the_body_raises(capsys: pytest.CaptureFixture[str]) -> None:
    # Given a running standalone server
    with pytest.raises(RuntimeError, match="boom"), local_zookeeper() as hosts:
        # When the body fails
        raise RuntimeError("boom")

    # Then the exception propagated and the server's own log was printed to stderr
    err = capsys.readouterr().err
    port = hosts.rpartition(":")[2]
    assert f"zookeeper ({hosts}) log, last" in err
    assert "ZooKeeperServerMain" in err
    assert f":{port}" in err
    # And the server was still stopped
    assert not accepts_connections(hosts)


def test_server_reports_mode_and_stats() -> None:
    # Given a standalone server managed directly
    with ZooKeeperServer(tick_time=0.5) as server:
        pid = server.pid
        assert pid is not None

        # When it has served a write
        with kazoo(server.connection_string) as client:
            client.create("/counted", b"1")

        # Then srvr and mntr describe it
        assert server.mode() == "standalone"
        stats = server.stats()
        assert stats["zk_server_state"] == "standalone"
        assert int(stats["zk_znode_count"]) >= 2
        assert "binding to port" in server.log_text()

        # When it is stopped
        server.stop()

        # Then the process is gone and the port is closed
        assert server.pid is None
        assert not accepts_connections(server.connection_string)


def test_ensemble_replicates_fails_over_and_catches_up() -> None:
    # Given a three-server ensemble
    with local_ensemble(3) as ensemble:
        servers = ensemble.servers
        assert len(servers) == 3
        assert ensemble.connection_string == ",".join(s.connection_string for s in servers)
        assert sorted(s.mode() for s in servers) == ["follower", "follower", "leader"]

        # When a znode is written through server 0
        with kazoo(servers[0].connection_string) as writer:
            writer.create("/replicated", b"v1")

        # Then every other server serves it
        for other in servers[1:]:
            with kazoo(other.connection_string) as reader:
                reader.sync("/replicated")
                assert reader.get("/replicated")[0] == b"v1"

        # When the leader is killed
        old_leader = ensemble.leader()
        assert servers[old_leader].stats()["zk_server_state"] == "leader"
        ensemble.kill(old_leader)
        assert servers[old_leader].pid is None

        # Then the other two elect a new leader and still accept writes
        new_leader = ensemble.leader()
        assert new_leader != old_leader
        survivor = next(i for i in range(3) if i != old_leader)
        with kazoo(servers[survivor].connection_string) as writer:
            writer.create("/during-outage", b"v2")

        # When the old leader is started again
        ensemble.start(old_leader)

        # Then it rejoins as a follower and serves what was written while it was down
        assert servers[old_leader].mode() == "follower"
        with kazoo(servers[old_leader].connection_string) as reader:
            reader.sync("/during-outage")
            assert reader.get("/during-outage")[0] == b"v2"
            assert reader.get("/replicated")[0] == b"v1"

    # And everything is stopped afterwards
    for server in servers:
        assert server.pid is None
        assert not accepts_connections(server.connection_string)


def test_classpath_env_var_is_used_verbatim(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given an explicit classpath (and a ZOOKEEPER_HOME that must lose to it)
    explicit = "/opt/zk/zookeeper.jar:/opt/zk/lib/*"
    monkeypatch.setenv(CLASSPATH_ENV, explicit)
    monkeypatch.setenv(HOME_ENV, "/nonexistent")

    # When / Then it is returned unchanged
    assert find_zookeeper_classpath() == explicit


def test_zookeeper_home_jars_are_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given an upstream-style ZOOKEEPER_HOME
    (tmp_path / "lib").mkdir()
    for jar in ("lib/zookeeper-jute.jar", "lib/slf4j-api.jar", "zookeeper.jar"):
        (tmp_path / jar).write_bytes(b"")
    monkeypatch.delenv(CLASSPATH_ENV, raising=False)
    monkeypatch.setenv(HOME_ENV, str(tmp_path))

    # When the classpath is looked up
    entries = find_zookeeper_classpath().split(":")

    # Then it lists exactly its jars
    assert sorted(entries) == sorted(
        str(tmp_path / jar)
        for jar in ("lib/zookeeper-jute.jar", "lib/slf4j-api.jar", "zookeeper.jar")
    )


def test_empty_zookeeper_home_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given ZOOKEEPER_HOME pointing at a directory without jars (Debian's jars still exist)
    monkeypatch.delenv(CLASSPATH_ENV, raising=False)
    monkeypatch.setenv(HOME_ENV, str(tmp_path))

    # When / Then the lookup fails instead of silently falling back to Debian's jars
    with pytest.raises(ZooKeeperNotFound) as excinfo:
        find_zookeeper_classpath()
    assert EXPECTED_NOT_FOUND in str(excinfo.value)
    assert str(tmp_path) in str(excinfo.value)
    assert isinstance(excinfo.value, RuntimeError)


@pytest.mark.cluster
def test_a_local_cluster_removes_its_logs_after_a_clean_exit_and_keeps_them_after_an_error(
    zk_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from helixpy.testing import LocalCluster

    # Given a cluster that ends well: its log directory is gone afterwards
    with LocalCluster(participants=1, zk=zk_address) as clean:
        logs = clean.log_dir
        assert (logs / "controller-0.log").exists()
    assert not logs.exists()
    # Given one whose body raises: its logs stay for whoever debugs it (and are printed)
    bad = LocalCluster(participants=0, zk=zk_address)
    kept = bad.log_dir
    with pytest.raises(RuntimeError, match="boom"), bad:
        raise RuntimeError("boom")
    assert (kept / "controller-0.log").exists()
    assert "controller-0" in capsys.readouterr().err
