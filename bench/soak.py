"""Soak: do a lock resource granted for weeks and a stream that runs for weeks grow
ZooKeeper without bound?

Locks: one lock resource on a fresh ZooKeeper is acquired and released ``--grants`` times
by one ``LockBox`` (two audit events per grant). Every ``--sample`` grants, the znodes and
bytes under the resource (its node, ``AUDIT`` and the entries) are counted. With the
cluster's ``lock_audit_keep`` set to ``--keep`` (default 1,000, a tenth of the cluster default, so
that 10,000 grants run well past warm-up), the trail must stop growing once it holds
``--keep`` entries.

Stream: a local cluster (one controller, one participant) runs one streaming job of
``--slots`` slots through ``--barriers`` cycles of (two splits, a barrier, its checkpoint
awaited). Every ``--sample`` barriers, the znodes and bytes under the job's ``STREAM``
tree are counted. With ``stream_checkpoints_keep`` at ``--checkpoints-keep`` (default: the
cluster default, 100), the tree must stop growing once it holds that many checkpoints.

Both must be flat after warm-up, not one znode per event forever.

    python -m bench soak [--grants 10000 --keep 1000 --barriers 10000 --sample 1000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from kazoo.client import KazooClient

from bench.common import save
from helixpy import JobConfig, LockBox, LockType, Workflow, connect
from helixpy.store.codec import encode
from helixpy.store.lock_audit import AUDIT_KEEP
from helixpy.store.locks import resource_path
from helixpy.store.paths import Paths
from helixpy.store.streams import CHECKPOINTS_KEEP
from helixpy.testing import LocalCluster, local_zookeeper


def footprint(zk: KazooClient, path: str) -> tuple[int, int]:
    """(znodes, data bytes) of ``path`` and everything below it (pipelined reads)."""
    nodes, size, level = 0, 0, [path]
    while level:
        stats = [(p, zk.exists_async(p), zk.get_children_async(p)) for p in level]
        level = []
        for p, stat, children in stats:
            st = stat.get()
            if st is None:
                continue
            nodes += 1
            size += st.dataLength
            level += [f"{p}/{c}" for c in children.get()]
    return nodes, size


def _flat(samples: list[dict[str, float]], key: str, warm_from: float) -> bool:
    """Whether the znode count stays within two of itself once ``key`` passed
    ``warm_from`` (the retention bound is reached)."""
    warm = [s for s in samples if s[key] >= warm_from]
    return bool(warm) and max(s["znodes"] for s in warm) - min(s["znodes"] for s in warm) <= 2


def run_locks(address: str, grants: int, keep: int, sample: int) -> dict[str, Any]:
    zk = connect(address)
    cluster = f"soak{uuid.uuid4().hex[:6]}"
    paths = Paths(cluster)
    zk.create(paths.config, encode({"lock_audit_keep": keep}), makepath=True)
    box = LockBox(zk, cluster, "soaker")
    path = resource_path(paths, "hot")
    samples: list[dict[str, float]] = []
    began = time.monotonic()
    for i in range(1, grants + 1):
        if not box.acquire("hot", (0, 1), LockType.EXCLUSIVE, timeout=10).ok:
            raise RuntimeError(f"grant {i} was refused")
        box.release("hot")
        if i % sample == 0:
            nodes, size = footprint(zk, path)
            samples.append({"grants": i, "znodes": nodes, "bytes": size})
            print(f"grants {i:>6}: {nodes:>6} znodes, {size:>9} bytes", flush=True)
    seconds = time.monotonic() - began
    box.close()
    zk.stop()
    zk.close()
    return {
        "grants": grants,
        "keep": keep,
        "seconds": round(seconds, 1),
        "grants_per_s": round(grants / seconds, 1),
        "samples": samples,
        "flat_after_warmup": _flat(samples, "grants", (keep + 2 * sample) / 2),
    }


def run_stream(address: str, barriers: int, slots: int, keep: int, sample: int) -> dict[str, Any]:
    with LocalCluster(participants=1, zk=address) as cluster:
        driver = cluster.driver
        driver.set_cluster_config(stream_checkpoints_keep=keep)
        job = JobConfig(
            command="Sum", num_tasks=slots, stream=True, num_concurrent_tasks_per_instance=slots
        )
        driver.start(Workflow.builder("soak").add_job("s", job).build())
        zk = connect(address)
        path = cluster.paths.stream("soak", "s")
        samples: list[dict[str, float]] = []
        began = time.monotonic()
        for i in range(1, barriers + 1):
            driver.add_splits("soak", "s", [{"v": i}, {"v": -i}])
            checkpoint = driver.request_barrier("soak", "s").wait(60)
            if sum(int(str(c["count"])) for c in checkpoint.values()) != 2:
                raise RuntimeError(f"barrier {i}: checkpoint {checkpoint} missed its splits")
            if i % sample == 0:
                nodes, size = footprint(zk, path)
                samples.append({"barriers": i, "znodes": nodes, "bytes": size})
                print(f"barriers {i:>6}: {nodes:>6} znodes, {size:>9} bytes", flush=True)
        seconds = time.monotonic() - began
        driver.end_stream("soak", "s").wait(60)
        zk.stop()
        zk.close()
    return {
        "barriers": barriers,
        "slots": slots,
        "checkpoints_keep": keep,
        "seconds": round(seconds, 1),
        "barriers_per_s": round(barriers / seconds, 1),
        "samples": samples,
        "flat_after_warmup": _flat(samples, "barriers", keep + sample),
    }


def run(a: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    with local_zookeeper() as address:
        if a.only in (None, "locks"):
            out["locks"] = run_locks(address, a.grants, a.keep, a.sample)
        if a.only in (None, "stream"):
            out["stream"] = run_stream(address, a.barriers, a.slots, a.checkpoints_keep, a.sample)
    return out


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--keep", type=int, default=AUDIT_KEEP // 10)
    parser.add_argument("--barriers", type=int, default=10_000)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--checkpoints-keep", type=int, default=CHECKPOINTS_KEEP)
    parser.add_argument("--sample", type=int, default=1_000)
    parser.add_argument("--only", choices=("locks", "stream"), default=None)
    a = parser.parse_args(argv)
    result = run(a)
    for part, rate in (("locks", "grants_per_s"), ("stream", "barriers_per_s")):
        if part in result:
            r = result[part]
            print(f"{part}: flat after warm-up: {r['flat_after_warmup']}; {r[rate]} {rate}")
    print(save("soak", result))
