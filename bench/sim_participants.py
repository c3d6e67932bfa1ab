"""Many participants in one process: ``--count`` ``Participant`` objects run as threads,
each with its own ZooKeeper session (its own kazoo client), until SIGTERM or SIGINT.

Used by ``bench/scale.py`` (the ``many_participants`` scenario) to simulate hundreds of
participants with a few OS processes:

    python -m bench.sim_participants --zk 127.0.0.1:2181 --cluster c1 --count 50 --prefix p0-

Prints ``started N`` on stdout once every participant has registered (its live node
exists), then waits. On SIGTERM every participant is closed (live node deleted, session
closed) in parallel and the process exits 0.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

from helixpy.participant import Participant
from helixpy.participant.registry import load_registry


def start_all(
    zk: str,
    cluster: str,
    names: list[str],
    tasks: str,
    capacity: int,
    session_timeout: float,
    parallel: int,
) -> list[Participant]:
    """Start one ``Participant`` per name (``parallel`` at a time); all of them, or raise."""
    registry = load_registry(tasks)
    parts = [
        Participant(
            zk,
            cluster,
            name,
            registry,
            capacity=capacity,
            session_timeout=session_timeout,
            tasks_spec=tasks,
        )
        for name in names
    ]
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        errors = [f.exception() for f in [pool.submit(p.start) for p in parts]]
    failed = [f"{p.instance}: {e!r}" for p, e in zip(parts, errors, strict=True) if e]
    if failed:
        stop_all(parts)
        raise RuntimeError(f"{len(failed)} participants failed to start: {failed[:5]}")
    return parts


def stop_all(parts: list[Participant]) -> None:
    """Close every participant (deregister, end its session), in parallel."""
    with ThreadPoolExecutor(max_workers=16) as pool:
        for future in [pool.submit(p.close) for p in parts]:
            if future.exception() is not None:
                logging.warning("close failed: %r", future.exception())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zk", required=True)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--prefix", default="sim-")
    parser.add_argument("--tasks", default="helixpy.testing.tasks:registry")
    parser.add_argument("--capacity", type=int, default=5)
    parser.add_argument("--session-timeout", type=float, default=10.0)
    parser.add_argument("--start-parallel", type=int, default=8)
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(threadName)s %(levelname)s %(name)s: %(message)s",
    )

    stop = threading.Event()

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    names = [f"{args.prefix}{i}" for i in range(args.count)]
    started = time.monotonic()
    parts = start_all(
        args.zk,
        args.cluster,
        names,
        args.tasks,
        args.capacity,
        args.session_timeout,
        args.start_parallel,
    )
    print(f"started {len(parts)} in {time.monotonic() - started:.2f}s", flush=True)
    parent = os.getppid()
    try:
        while not stop.wait(1.0):
            if os.getppid() != parent:  # the bench died without stopping us
                break
    finally:
        stop_all(parts)


if __name__ == "__main__":
    main()
