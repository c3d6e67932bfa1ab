"""Celery with a Redis broker: the peer helixpy's throughput and latency are compared with.

Debian's ``redis-server`` is started on a free loopback port (no persistence) for the run
and stopped by PID afterwards; Celery workers are ``celery worker`` processes with the
pool and concurrency asked for. The task is ``bench.celery_app.noop``; results go to the
same Redis (Celery's Redis result backend), because the submitter must see every task
finish, as helixpy's driver does.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.common import latency_summary, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """TERM the process group (a prefork worker's children too), KILL what remains."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A private redis-server on a loopback port; yields its ``redis://`` URL."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise RuntimeError("redis-server not found: apt-get install redis-server")
    import redis

    workdir = Path(tempfile.mkdtemp(prefix="helixpy-bench-redis-"))
    port = _free_port()
    log = open(workdir / "redis.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            exe,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
            "--daemonize",
            "no",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError as exc:
                if proc.poll() is not None:
                    log_text = (workdir / "redis.log").read_text(errors="replace")[-500:]
                    raise RuntimeError(f"redis-server exited: {log_text}") from exc
                return False

        wait_until(up, 20, "redis-server")
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        _stop(proc)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def celery_workers(
    url: str, workers: int, pool: str, concurrency: int, queue: str = "celery"
) -> Iterator[Any]:
    """``workers`` Celery worker processes; yields the app once every one answers a ping.

    They consume ``queue`` (Celery's default queue unless told otherwise: see ``drain``).
    """
    from bench.celery_app import make_app

    env = dict(os.environ, HELIXPY_BENCH_REDIS=url, PYTHONPATH=str(ROOT))
    app = make_app(url)
    logdir = Path(tempfile.mkdtemp(prefix="helixpy-bench-celery-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i in range(workers):
            log = open(logdir / f"w{i}.log", "wb")  # noqa: SIM115 - the child owns it
            procs.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "bench.celery_app",
                        "worker",
                        "-P",
                        pool,
                        "-c",
                        str(concurrency),
                        "-n",
                        f"w{i}@bench",
                        "-l",
                        "WARNING",
                        "-Q",
                        queue,
                        "--without-gossip",
                        "--without-mingle",
                        "--without-heartbeat",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=ROOT,
                    start_new_session=True,
                )
            )
            log.close()

        def ready() -> bool:
            for p in procs:
                if p.poll() is not None:
                    raise RuntimeError(f"a celery worker exited; see {logdir}")
            return len(app.control.ping(timeout=0.5) or []) >= workers

        wait_until(ready, 120, f"{workers} celery workers")
        yield app
    finally:
        for p in procs:
            _stop(p)
        app.close()
        shutil.rmtree(logdir, ignore_errors=True)


def throughput(app: Any, tasks: int, batches: int, timeout: float) -> dict[str, float]:
    """``tasks`` no-ops in ``batches`` groups; first submit -> every result seen."""
    return _run_groups(app, tasks, batches, timeout, drain=False)


def drain(app: Any, tasks: int, batches: int, timeout: float) -> dict[str, float]:
    """Worker-side throughput, submission excluded: the tasks are queued first, then every
    worker (started on an idle queue) is told to consume Celery's default queue."""
    return _run_groups(app, tasks, batches, timeout, drain=True)


def _run_groups(
    app: Any, tasks: int, batches: int, timeout: float, drain: bool
) -> dict[str, float]:
    from celery import group  # type: ignore[import-untyped]

    noop = app.tasks["bench.noop"]
    per = tasks // batches
    t0 = time.perf_counter()
    results = [group(noop.s() for _ in range(per)).apply_async() for _ in range(batches)]
    if drain:
        t0 = time.perf_counter()
        app.control.add_consumer("celery", reply=True, timeout=5.0)
    for r in results:
        r.get(timeout=timeout, interval=0.01)
    elapsed = time.perf_counter() - t0
    for r in results:
        r.forget()
    return {"seconds": round(elapsed, 3), "tasks_per_s": round(per * batches / elapsed, 1)}


def latency(app: Any, runs: int) -> dict[str, Any]:
    """One task at a time on an idle worker: submit -> started, submit -> result seen."""
    noop = app.tasks["bench.noop"]
    to_running: list[float] = []
    end_to_end: list[float] = []
    for i in range(-5, runs):  # five unmeasured warm-up runs first
        submitted_wall = time.time()
        t0 = time.perf_counter()
        started = float(noop.delay().get(timeout=60, interval=0.001))
        elapsed = time.perf_counter() - t0
        if i >= 0:
            end_to_end.append(elapsed)
            to_running.append(started - submitted_wall)
    return latency_summary(to_running, end_to_end)
