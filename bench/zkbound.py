"""The raw ZooKeeper bound: pipelined ``create`` throughput of one kazoo client.

``creates`` small znodes (100 bytes, the size of a task report) are created with at most
``in_flight`` requests outstanding, on the same server the helixpy run used. This is what
one client can write when it does nothing else: a framework that wrote one znode per task
could not run tasks faster than this, so helixpy / bound above 1.0 is what batching buys.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from helixpy.store.client import connect


def run(address: str, creates: int = 20_000, in_flight: int = 1_000) -> dict[str, Any]:
    zk = connect(address)
    root = f"/zkbound-{uuid.uuid4().hex[:8]}"
    try:
        zk.create(root)
        payload = b"x" * 100
        window = threading.BoundedSemaphore(in_flight)
        done = threading.Event()
        errors: list[BaseException] = []
        left = [creates]
        lock = threading.Lock()

        def finished(result: Any) -> None:
            window.release()
            try:
                result.get_nowait()
            except BaseException as exc:  # counted, and reported below
                errors.append(exc)
            with lock:
                left[0] -= 1
                if left[0] == 0:
                    done.set()

        t0 = time.perf_counter()
        for i in range(creates):
            window.acquire()
            zk.create_async(f"{root}/n{i:07d}", payload).rawlink(finished)
        if not done.wait(300):
            raise SystemExit("the ZooKeeper bound did not finish within 300 s")
        elapsed = time.perf_counter() - t0
        if errors:
            raise SystemExit(f"{len(errors)} creates failed, first: {errors[0]!r}")
        return {
            "creates": creates,
            "seconds": round(elapsed, 3),
            "creates_per_s": round(creates / elapsed, 1),
            "in_flight": in_flight,
        }
    finally:
        zk.delete(root, recursive=True)
        zk.stop()
        zk.close()
