"""Dramatiq with a Redis broker: a second peer for the many-small-tasks scenario.

The Redis server is the Celery peer's (``bench.celery_peer.redis_server``: a private
``redis-server`` on a loopback port, stopped by PID). The workers are one ``dramatiq``
command with ``--processes`` worker processes of ``--threads`` threads each, and
``dramatiq_queue_prefetch`` set in their environment (Dramatiq's own knob: how many
messages each worker process holds unacknowledged). The actor is
``bench.dramatiq_app.noop``; its results go to the same Redis (Dramatiq's Results
middleware), because the submitter must see every task finish, as helixpy's driver does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.celery_peer import ROOT, _stop
from bench.common import wait_until


@dataclass(frozen=True)
class DramatiqPeer:
    """What a submitter needs: the broker, the ``noop`` actor, the results backend."""

    broker: Any
    actor: Any
    backend: Any


@contextlib.contextmanager
def dramatiq_workers(
    url: str, processes: int, threads: int, prefetch: int
) -> Iterator[DramatiqPeer]:
    """``processes`` Dramatiq worker processes of ``threads`` threads on the Redis at
    ``url``; yields once every process has booted (each counts itself in Redis)."""
    from bench.dramatiq_app import READY_KEY, make_broker

    broker, actor = make_broker(url)
    broker.client.delete(READY_KEY)
    env = dict(
        os.environ,
        HELIXPY_BENCH_REDIS=url,
        PYTHONPATH=str(ROOT),
        dramatiq_queue_prefetch=str(prefetch),
    )
    logdir = Path(tempfile.mkdtemp(prefix="helixpy-bench-dramatiq-"))
    log = open(logdir / "dramatiq.log", "wb")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "bench.dramatiq_app:broker",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            "5000",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=ROOT,
        start_new_session=True,
    )
    log.close()
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                tail = (logdir / "dramatiq.log").read_text(errors="replace")[-800:]
                raise RuntimeError(f"dramatiq exited {proc.returncode}: {tail}")
            return int(broker.client.get(READY_KEY) or 0) >= processes

        wait_until(ready, 120, f"{processes} dramatiq worker processes")
        yield DramatiqPeer(broker, actor, broker.get_results_backend())
    finally:
        _stop(proc)
        broker.close()
        shutil.rmtree(logdir, ignore_errors=True)


def wait_results(peer: DramatiqPeer, messages: list[Any], timeout: float) -> None:
    """Block until every message's result is stored (one BRPOPLPUSH each)."""
    ms = max(int(timeout * 1000), 1000)
    for message in messages:
        peer.backend.get_result(message, block=True, timeout=ms)
