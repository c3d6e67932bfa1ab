"""A separate process holding a lock, for tests that kill or freeze the holder.

    python -m tests.integration.lock_holder ZK CLUSTER HOLDER RESOURCE START END

Acquires an EXCLUSIVE lock on [START, END), enters a critical section, prints ``held`` and
waits for a line on stdin; then tries ``commit`` of one write and prints ``committed`` or
``revoked: <why>``.
"""

from __future__ import annotations

import sys

from helixpy.errors import LockRevoked
from helixpy.model.locks import LockType
from helixpy.store.client import connect
from helixpy.store.locks import LockBox
from helixpy.store.ops import Create


def main(argv: list[str]) -> int:
    zk_hosts, cluster, holder, resource, start, end = argv
    zk = connect(zk_hosts, session_timeout=2.0)
    box = LockBox(zk, cluster, holder)
    result = box.acquire(resource, (float(start), float(end)), LockType.EXCLUSIVE, timeout=10)
    if not result.ok:
        print(f"denied: {result.reason}", flush=True)
        return 1
    with box.critical_section(resource, [(float(start), float(end))]):
        print("held", flush=True)
        sys.stdin.readline()
        try:
            box.commit([Create(f"/{cluster}-written-by-{holder}")])
            print("committed", flush=True)
        except LockRevoked as exc:
            print(f"revoked: {exc}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
