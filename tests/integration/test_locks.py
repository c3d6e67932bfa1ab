"""Task locks on a real ZooKeeper: grants, waits, preemption, critical sections, fencing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from helixpy.errors import InvalidConfig, LockRevoked
from helixpy.model.locks import Interval, LockType
from helixpy.store.client import connect
from helixpy.store.codec import encode
from helixpy.store.locks import LockBox, read_audit, read_locks
from helixpy.store.ops import Create
from helixpy.store.paths import Paths

pytestmark = pytest.mark.cluster
SH, EX = LockType.SHARED, LockType.EXCLUSIVE
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def cluster(zk_address: str) -> str:
    return f"locks{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def zk(zk_address: str) -> Iterator[KazooClient]:
    client = connect(zk_address)
    yield client
    client.stop()
    client.close()


def box(zk: KazooClient, cluster: str, name: str, priority: int = 50, **kw: object) -> LockBox:
    return LockBox(zk, cluster, name, priority=priority, **kw)  # type: ignore[arg-type]


def test_exclusive_denied_to_another_group_until_released(zk: KazooClient, cluster: str) -> None:
    a, b = box(zk, cluster, "a"), box(zk, cluster, "b")
    first = a.try_acquire("seg/2026", (0, 10), EX)
    assert first.ok and first.lock is not None and first.lock.token >= 1
    assert not b.try_acquire("seg/2026", (5, 15), EX).ok
    assert b.try_acquire("seg/2026", (10, 20), EX).ok  # abutting
    a.release("seg/2026")
    assert b.try_acquire("seg/2026", (0, 9), EX).ok
    # the resource name was escaped into one path segment
    assert list(read_locks(zk, Paths(cluster))) == ["seg/2026"]
    with pytest.raises(InvalidConfig, match="number intervals"):
        b.try_acquire("seg/2026", ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"), EX)


def test_acquire_with_a_timeout_on_a_held_lock_gives_up_after_it(
    zk: KazooClient, cluster: str
) -> None:
    box(zk, cluster, "holder").try_acquire("r", (0, 10), EX)
    t0 = time.monotonic()
    result = box(zk, cluster, "waiter").acquire("r", (0, 10), EX, timeout=1.0)
    assert not result.ok and not result.revoked
    assert time.monotonic() - t0 >= 0.95  # it waited (on watches), then gave up


def test_acquire_waits_and_is_granted_when_the_holder_releases(
    zk: KazooClient, cluster: str
) -> None:
    holder = box(zk, cluster, "holder")
    holder.try_acquire("r", (0, 10), EX)
    waiter = box(zk, cluster, "waiter")
    got: list[bool] = []
    t = threading.Thread(target=lambda: got.append(waiter.acquire("r", (0, 10), EX, timeout=30).ok))
    t.start()
    holder.close()  # its liveness node goes with it
    t.join(30)
    assert got == [True]


def test_preemption_revokes_lower_priorities_and_revocation_is_sticky(
    zk: KazooClient, cluster: str
) -> None:
    low = box(zk, cluster, "low", priority=25)
    assert low.try_acquire("r", (0, 10), SH).ok
    mid = box(zk, cluster, "mid", priority=50)
    assert mid.try_acquire("r", (0, 10), EX).ok  # revokes the lower shared lock
    top = box(zk, cluster, "top", priority=75)
    assert top.try_acquire("r", (5, 6), SH).ok  # and a still-higher shared revokes that
    mid.release("r")
    top.release("r")
    again = low.try_acquire("r", (0, 10), SH)
    assert not again.ok and again.revoked  # learned on its next acquire
    with pytest.raises(LockRevoked), low.critical_section("r", [(0, 10)]):
        pass
    events = [(e["event"], e["holder"]) for e in read_audit(zk, Paths(cluster), "r")]
    assert events == [
        ("grant", "low"),
        ("revoke", "low"),
        ("grant", "mid"),
        ("revoke", "mid"),
        ("grant", "top"),
        ("release", "mid"),
        ("release", "top"),
    ]


def test_a_preemptor_waits_while_the_victim_is_in_a_critical_section(
    zk: KazooClient, cluster: str
) -> None:
    victim, preemptor = box(zk, cluster, "victim", 25), box(zk, cluster, "preemptor", 75)
    assert victim.try_acquire("r", (0, 10), EX).ok
    inside, leave = threading.Event(), threading.Event()

    def work() -> None:
        with victim.critical_section("r", [(0, 10)]):
            victim.commit([Create(f"/{cluster}-victim-wrote")])  # holds: written
            inside.set()
            assert leave.wait(30)

    t = threading.Thread(target=work)
    t.start()
    assert inside.wait(30)
    assert preemptor.try_acquire("r", (0, 10), EX).ok is False  # cannot revoke now
    got: list[bool] = []
    waiter = threading.Thread(
        target=lambda: got.append(preemptor.acquire("r", (0, 10), EX, timeout=30).ok)
    )
    waiter.start()
    leave.set()
    t.join(30)
    waiter.join(30)
    assert got == [True]
    assert zk.exists(f"/{cluster}-victim-wrote") is not None
    with pytest.raises(LockRevoked):
        victim.commit([Create(f"/{cluster}-victim-late")])
    assert zk.exists(f"/{cluster}-victim-late") is None


def test_a_group_shares_a_posse_and_one_release_keeps_it_for_the_other(
    zk: KazooClient, cluster: str
) -> None:
    m1 = box(zk, cluster, "m1", group="ingest")
    m2 = box(zk, cluster, "m2", group="ingest")
    first, second = m1.try_acquire("r", (0, 10), EX), m2.try_acquire("r", (2, 8), EX)
    assert first.ok and second.ok and first.lock and second.lock
    assert first.lock.token == second.lock.token
    assert not m2.try_acquire("r", (5, 15), EX).ok  # overlapping but not contained
    m1.release("r")
    assert not box(zk, cluster, "x").try_acquire("r", (0, 10), EX).ok


def _holder(zk_address: str, cluster: str, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.lock_holder",
            zk_address,
            cluster,
            name,
            "r",
            "0",
            "10",
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_killed_holders_lock_is_reclaimed_by_the_next_acquirer(
    zk: KazooClient, zk_address: str, cluster: str
) -> None:
    proc = _holder(zk_address, cluster, "doomed")
    proc.kill()
    proc.wait(10)
    # The next acquirer waits for the holder's session to expire (2 s), then reclaims
    result = box(zk, cluster, "next").acquire("r", (0, 10), EX, timeout=30)
    assert result.ok
    events = [(e["event"], e["holder"]) for e in read_audit(zk, Paths(cluster), "r")]
    assert ("reclaim", "doomed") in events


def test_a_frozen_holder_that_wakes_after_its_session_expired_cannot_commit(
    zk: KazooClient, zk_address: str, cluster: str
) -> None:
    proc = _holder(zk_address, cluster, "sleeper")
    proc.send_signal(signal.SIGSTOP)
    try:
        # While it is frozen past its session, another holder takes the lock over
        taken = box(zk, cluster, "taker").acquire("r", (0, 10), EX, timeout=30)
        assert taken.ok
    finally:
        proc.send_signal(signal.SIGCONT)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("revoked")
    proc.wait(30)
    assert zk.exists(f"/{cluster}-written-by-sleeper") is None


def test_instants_normalise_and_abut(zk: KazooClient, cluster: str) -> None:
    a, b = box(zk, cluster, "a"), box(zk, cluster, "b")
    day1 = Interval.of("2026-01-01T00:00:00+01:00", "2026-01-02T00:00:00Z")
    assert a.try_acquire("ds", day1, EX).ok
    assert b.try_acquire("ds", ("2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"), EX).ok
    assert not b.try_acquire("ds", ("2026-01-01T12:00:00Z", "2026-01-01T13:00:00Z"), SH).ok


def test_tasks_lock_through_ctx_locks_and_release_when_their_attempt_ends(zk_address: str) -> None:
    from helixpy import JobConfig, Workflow
    from helixpy.testing import LocalCluster
    from tests.integration.helpers import wait_final

    with LocalCluster(participants=2, zk=zk_address) as cluster:
        driver = cluster.driver
        # Given two independent jobs whose tasks want the same exclusive lock
        job = JobConfig(
            command="Locker",
            num_tasks=1,
            lock_timeout=60,
            command_config={"resource": "tbl", "hold": "1.5"},
        )
        driver.start(Workflow.builder("lk").add_job("a", job).add_job("b", job).build())
        assert wait_final(driver, "lk").value == "COMPLETED"
        recs = {j: driver.get_task_user_content_map("lk", j, "0") for j in ("a", "b")}
        assert all(r["ok"] == "True" and r["committed"] == "True" for r in recs.values())
        # Then one waited for the other: its grant came after the first one's task ended
        first, second = sorted(recs.values(), key=lambda r: float(r["granted"]))
        assert float(second["granted"]) >= float(first["done"])
        audit = [(e["event"], e["group"]) for e in driver.get_lock_audit("tbl")]
        assert [e for e, _ in audit] == ["grant", "release", "grant", "release"]
        assert {g for _, g in audit} == {"lk/a", "lk/b"}
        assert driver.get_locks("tbl") == {"tbl": []}


def _replay(audit: list[dict[str, object]]) -> int:
    """Replay an audit trail; assert no two conflicting unrevoked locks ever coexisted.
    Returns how many grants it saw."""
    live: dict[int, dict[str, object]] = {}  # token -> {interval, type, members, revoked}
    grants = 0
    for e in audit:
        token, kind = int(str(e["token"])), e["event"]
        if kind == "grant":
            grants += 1
            live[token] = {
                "interval": Interval.from_list(e["interval"]),  # type: ignore[arg-type]
                "type": e["type"],
                "members": {e["holder"]},
                "revoked": False,
            }
        elif kind == "join":
            live[token]["members"].add(e["holder"])  # type: ignore[attr-defined]
        elif kind == "revoke":
            live[token]["revoked"] = True
        elif kind in ("release", "reclaim") and token in live:
            live[token]["members"].discard(e["holder"])  # type: ignore[attr-defined]
            if not live[token]["members"]:
                del live[token]
        held = [p for p in live.values() if not p["revoked"]]
        for i, p in enumerate(held):
            for q in held[i + 1 :]:
                if p["interval"].overlaps(q["interval"]):  # type: ignore[attr-defined]
                    assert p["type"] == q["type"] == "SHARED", (e, p, q)
    return grants


def test_twenty_contending_tasks_never_hold_conflicting_locks(zk_address: str) -> None:
    import random

    from helixpy import JobConfig, Workflow
    from helixpy.testing import LocalCluster
    from tests.integration.helpers import wait_final

    rng = random.Random(7)
    with LocalCluster(participants=3, zk=zk_address) as cluster:
        b = Workflow.builder("contend")
        for i in range(20):
            b.add_job(
                f"t{i:02d}",
                JobConfig(
                    command="Contend",
                    num_tasks=1,
                    priority=rng.choice([0, 25, 50, 75]),
                    command_config={"resource": "hot", "rounds": "4", "seed": "7"},
                ),
            )
        cluster.driver.start(b.build())
        # Then every task ends, and the audit trail shows no conflicting pair at any time
        assert wait_final(cluster.driver, "contend", timeout=180).value == "COMPLETED"
        audit = cluster.driver.get_lock_audit("hot")
        assert _replay(audit) >= 20
        assert cluster.driver.get_locks("hot") == {"hot": []}


def test_locks_survive_a_controller_failover(zk_address: str) -> None:
    from helixpy.testing import LocalCluster

    with LocalCluster(participants=0, controllers=2, zk=zk_address) as cluster:
        zk = connect(cluster.zk_address)
        try:
            held = LockBox(zk, cluster.cluster, "keeper").try_acquire("r", (0, 10), EX)
            assert held.ok
            cluster.wait_for_leader(exclude=cluster.kill_controller())
            assert not LockBox(zk, cluster.cluster, "other").try_acquire("r", (0, 5), EX).ok
            assert [p.members for p in cluster.driver.get_locks("r")["r"]] == [
                {"keeper": {"id": "keeper"}}
            ]
        finally:
            zk.stop()
            zk.close()


def test_a_critical_section_ends_with_lock_revoked_when_the_session_is_suspended() -> None:
    from helixpy.testing.zookeeper import ZooKeeperServer

    with ZooKeeperServer(tick_time=0.5) as server:
        zk = connect(server.connection_string, session_timeout=3.0)
        suspended = threading.Event()
        zk.add_listener(lambda state: suspended.set() if state == "SUSPENDED" else None)
        try:
            holder = LockBox(zk, "c", "holder")
            assert holder.try_acquire("r", (0, 10), EX).ok
            assert server.pid is not None
            section = holder.critical_section("r", [(0, 10)])
            with pytest.raises(LockRevoked, match="suspended"), section:
                os.kill(server.pid, signal.SIGSTOP)
                try:
                    assert suspended.wait(30)
                    with pytest.raises(LockRevoked):
                        holder.commit([Create("/never")])
                finally:
                    os.kill(server.pid, signal.SIGCONT)
            assert zk.exists("/never") is None
        finally:
            zk.stop()
            zk.close()


def test_the_audit_trail_keeps_the_newest_entries_and_prunes_by_age(
    zk: KazooClient, cluster: str
) -> None:
    # Given a cluster keeping 5 audit entries per resource, and a trail left by an old
    # version (sequential names), which is continued
    paths = Paths(cluster)
    zk.create(paths.config, encode({"lock_audit_keep": 5}), makepath=True)
    zk.create(
        f"/{cluster}/LOCKS/r",
        encode({"kind": "number", "next_token": 1, "posses": []}),
        makepath=True,
    )
    zk.create(f"/{cluster}/LOCKS/r/AUDIT")
    for _ in range(3):
        zk.create(f"/{cluster}/LOCKS/r/AUDIT/a-", encode({"t": 0.0, "event": "old"}), sequence=True)
    a = box(zk, cluster, "a")
    # When 40 grants and releases go by
    for _ in range(20):
        assert a.acquire("r", (0, 1), LockType.EXCLUSIVE, timeout=5).ok
        a.release("r")
    # Then only the newest 5 entries stay, numbered on from the old trail
    trail = read_audit(zk, paths, "r")
    assert [e["seq"] for e in trail] == list(range(38, 43))
    assert [e["event"] for e in trail] == ["release", "grant", "release", "grant", "release"]
    # When entries are older than lock_audit_max_age, Then the next write prunes them too
    zk.set(paths.config, encode({"lock_audit_keep": 5, "lock_audit_max_age": 0}))
    b = box(zk, cluster, "b")  # a box reads the retention when it first writes
    assert b.acquire("r", (0, 1), LockType.EXCLUSIVE, timeout=5).ok
    assert [e["event"] for e in read_audit(zk, paths, "r")] == ["grant"]
