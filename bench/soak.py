"""Soak: does a lock resource that is granted for weeks grow ZooKeeper without bound?

One lock resource on a fresh ZooKeeper is acquired and released ``--grants`` times by one
``LockBox`` (two audit events per grant). Every ``--sample`` grants, the znodes and bytes
under the resource (its node, ``AUDIT`` and the entries) are counted. With the cluster's
``lock_audit_keep`` set to ``--keep`` (default: the cluster default, 10,000), the trail
must stop growing once it holds ``--keep`` entries: flat after warm-up, not one znode per
event forever.

Not measured yet (issue 13 asks for it too): a stream through 10,000 barriers (acks and
checkpoints are not pruned yet).

    python -m bench soak [--grants 10000 --keep 1000 --sample 1000]
"""

from __future__ import annotations

import argparse
import time
import uuid
from typing import Any

from kazoo.client import KazooClient

from bench.common import save
from helixpy import LockBox, LockType, connect
from helixpy.store.codec import encode
from helixpy.store.lock_audit import AUDIT_KEEP
from helixpy.store.locks import resource_path
from helixpy.store.paths import Paths
from helixpy.testing import local_zookeeper


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


def run(grants: int, keep: int, sample: int) -> dict[str, Any]:
    with local_zookeeper() as address:
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
    warm = [s for s in samples if s["grants"] * 2 >= keep + 2 * sample]
    flat = bool(warm) and max(s["znodes"] for s in warm) - min(s["znodes"] for s in warm) <= 2
    return {
        "grants": grants,
        "keep": keep,
        "seconds": round(seconds, 1),
        "grants_per_s": round(grants / seconds, 1),
        "samples": samples,
        "flat_after_warmup": flat,
    }


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__)
    parser.add_argument("--grants", type=int, default=10_000)
    parser.add_argument("--keep", type=int, default=AUDIT_KEEP)
    parser.add_argument("--sample", type=int, default=1_000)
    a = parser.parse_args(argv)
    result = run(a.grants, a.keep, a.sample)
    print(f"flat after warm-up: {result['flat_after_warmup']}; {result['grants_per_s']} grants/s")
    print(save("soak", result))
