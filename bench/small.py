"""Many small independent units: N one-task workflows (or queue jobs) against Celery and Dramatiq.

This is the shape most users have: lots of unrelated no-op units, each submitted on its own.
In one run on one machine, ``--workers`` workers/participants of concurrency/capacity
``--concurrency`` each, ``--items`` no-op units per measurement:

1. helixpy ``driver.start`` of N one-task workflows from ``--threads`` client threads,
   first submit until every workflow is seen COMPLETED (one ``poll_for_workflows``);
2. helixpy from one producer thread: ``start_async`` for all N (the driver batches them
   in the background), and ``start_many`` in chunks of ``--chunk``;
3. helixpy: N one-task jobs into one queue with ``parallel_jobs=64``, enqueued from
   ``--threads`` threads, once with ``enqueue_job_async`` and once with sync ``enqueue_job``;
4. the latency of one sync ``driver.start`` call, one thread in a loop (``--starts``);
5. ZooKeeper's cost per one-task workflow, counted by the server: write transactions
   (zxid delta) and znodes created (``mntr``'s ``zk_znode_count`` delta), during the
   8-thread burst and during the one-thread loop;
6. the peers on a private Redis: Celery (one message per task, ``delay()`` from
   ``--threads`` threads, prefork and threads pools) and Dramatiq (``send()``, one process
   per worker with ``--concurrency`` threads, ``dramatiq_queue_prefetch`` = each of
   ``--prefetch``: 64, its best setting here, and its default),
   until every result is seen; and the per-call latency of ``delay()`` / ``send()``.

Every helixpy measurement runs on a fresh cluster (on one ZooKeeper server), so no
measurement sees another's finished workflows (``bench history`` measures that). First,
``--warmup`` one-task workflows run on a throwaway cluster: a fresh ZooKeeper JVM spends
its first tens of seconds compiling (measured: its JIT threads took half the server's
CPU over the first 8,000 workflows), which a server that has run for weeks has long done.

    python -m bench small [--items 2000 --workers 4 --concurrency 8 --threads 8]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bench import celery_peer, dramatiq_peer
from bench.common import ZkCounters, percentiles, save, zk_counters
from helixpy import JobConfig, JobQueue, TaskState, Workflow, WorkflowConfig
from helixpy.driver import TaskDriver
from helixpy.testing import LocalCluster, local_zookeeper
from helixpy.testing.zookeeper import four_letter_word

T = TypeVar("T")
R = TypeVar("R")

#: the one job of every helixpy unit
JOB = JobConfig(command="Noop", num_tasks=1, max_attempts_per_task=1)


def say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


def one_task(name: str) -> Workflow:
    return Workflow.builder(name).add_job("noop", JOB).build()


def znode_count(zk: str) -> int:
    """Every znode on the server (``mntr``'s ``zk_znode_count``)."""
    for line in four_letter_word(zk, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key == "zk_znode_count":
            return int(value)
    raise RuntimeError("mntr did not report zk_znode_count")


def threaded(fn: Callable[[T], R], items: Sequence[T], threads: int) -> tuple[list[R], list[float]]:
    """``fn`` over ``items`` from ``threads`` threads: the results in order and the duration
    of every call (seconds)."""
    calls: list[float] = []

    def timed(item: T) -> R:
        t = time.perf_counter()
        out = fn(item)
        calls.append(time.perf_counter() - t)  # list.append is atomic
        return out

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(timed, items)), calls


@contextlib.contextmanager
def cluster(
    zk: str, workers: int, capacity: int, controllers: int = 1, session_timeout: float = 6.0
) -> Iterator[LocalCluster]:
    """A fresh cluster on ``zk``: ``workers`` participants of capacity ``capacity`` (as the
    throughput scenario builds its cluster)."""
    with LocalCluster(
        participants=0, controllers=controllers, zk=zk, session_timeout=session_timeout
    ) as c:
        for _ in range(workers):
            c.add_participant(capacity=capacity)
        yield c


def wait_workflows(driver: TaskDriver, names: Sequence[str], timeout: float) -> None:
    """Every workflow of ``names`` COMPLETED: one ``poll_for_workflows`` call (the batch
    wait, as Celery's side waits with one ``ResultSet.get``)."""
    reached = driver.poll_for_workflows(
        names, TaskState.COMPLETED, TaskState.FAILED, timeout=timeout
    )
    for name, state in reached.items():
        if state is not TaskState.COMPLETED:
            raise SystemExit(f"workflow {name} ended {state.value}")


def start_many_checked(driver: TaskDriver, wfs: Sequence[Workflow], chunk: int) -> None:
    """``start_many`` in chunks of ``chunk``; every item must be started."""
    for i in range(0, len(wfs), chunk):
        for outcome in driver.start_many(list(wfs[i : i + chunk])):
            if not outcome.ok:
                raise SystemExit(
                    f"start_many refused {outcome.name}: {outcome.status} "
                    f"{outcome.field} {outcome.message}"
                )


def _proc_cpu(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(c: LocalCluster) -> dict[str, float]:
    """CPU seconds so far of the leader controller, of all participants together, and of
    this (the client's) process."""
    return {
        "client": time.process_time(),
        "controller": _proc_cpu(c.pid(c.leader())),
        "participants": sum(_proc_cpu(c.pid(i)) for i in c.instances),
    }


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after[k] - before[k], 2) for k in before}


def _zk_cost(cost: ZkCounters, znodes: int, n: int) -> dict[str, Any]:
    return {
        "txns": cost.txns,
        "write_ops": cost.write_ops,
        "read_ops": cost.read_ops,
        "znodes_created": znodes,
        "txns_per_workflow": round(cost.txns / n, 3),
        "write_ops_per_workflow": round(cost.write_ops / n, 3),
        "reads_per_workflow": round(cost.read_ops / n, 3),
        "znodes_per_workflow": round(znodes / n, 3),
    }


def _rate(n: int, seconds: float) -> float:
    return round(n / seconds, 1) if seconds > 0 else float("nan")


# --- helixpy ------------------------------------------------------------------------------


def helixpy_threads(zk: str, n: int, a: argparse.Namespace) -> dict[str, Any]:
    """(1) and (5): sync ``driver.start`` from ``a.threads`` threads, ZooKeeper's cost."""
    with cluster(zk, a.workers, a.concurrency) as c:
        driver = c.driver
        wfs = [one_task(f"t{i:06d}") for i in range(n)]
        before, nodes = zk_counters(zk, c.cluster), znode_count(zk)
        cpu0 = cpu_seconds(c)
        t0 = time.perf_counter()
        _, calls = threaded(driver.start, wfs, a.threads)
        submitted = time.perf_counter() - t0
        wait_workflows(driver, [w.name for w in wfs], a.timeout)
        elapsed = time.perf_counter() - t0
        cpu = cpu_used(cpu0, cpu_seconds(c))
        cost = zk_counters(zk, c.cluster) - before
        created = znode_count(zk) - nodes
    return {
        "api": f"driver.start from {a.threads} threads",
        "seconds": round(elapsed, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": _rate(n, elapsed),
        "cpu_seconds": cpu,
        "call": percentiles(calls),
        "zk": _zk_cost(cost, created, n),
    }


def helixpy_async(zk: str, n: int, a: argparse.Namespace) -> dict[str, Any]:
    """(2): one producer thread, ``start_async`` for every workflow."""
    with cluster(zk, a.workers, a.concurrency) as c:
        driver = c.driver
        wfs = [one_task(f"a{i:06d}") for i in range(n)]
        cpu0 = cpu_seconds(c)
        t0 = time.perf_counter()
        futures = [driver.start_async(w) for w in wfs]
        queued = time.perf_counter() - t0
        for f in futures:
            f.result(timeout=a.timeout)
        durable = time.perf_counter() - t0
        wait_workflows(driver, [w.name for w in wfs], a.timeout)
        elapsed = time.perf_counter() - t0
        cpu = cpu_used(cpu0, cpu_seconds(c))
    return {
        "api": "start_async from one thread",
        "seconds": round(elapsed, 3),
        "calls_returned_seconds": round(queued, 3),
        "submit_seconds": round(durable, 3),
        "tasks_per_s": _rate(n, elapsed),
        "cpu_seconds": cpu,
    }


def helixpy_start_many(zk: str, n: int, a: argparse.Namespace, prefix: str = "m") -> dict[str, Any]:
    """(2): one thread, ``start_many`` in chunks of ``a.chunk``."""
    with cluster(zk, a.workers, a.concurrency) as c:
        driver = c.driver
        wfs = [one_task(f"{prefix}{i:06d}") for i in range(n)]
        cpu0 = cpu_seconds(c)
        t0 = time.perf_counter()
        start_many_checked(driver, wfs, a.chunk)
        submitted = time.perf_counter() - t0
        wait_workflows(driver, [w.name for w in wfs], a.timeout)
        elapsed = time.perf_counter() - t0
        cpu = cpu_used(cpu0, cpu_seconds(c))
    return {
        "api": f"start_many in chunks of {a.chunk} from one thread",
        "seconds": round(elapsed, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": _rate(n, elapsed),
        "cpu_seconds": cpu,
    }


def helixpy_queue(zk: str, n: int, a: argparse.Namespace, mode: str) -> dict[str, Any]:
    """(3): N one-task jobs into one queue (``parallel_jobs=a.parallel_jobs``) from
    ``a.threads`` threads; ``mode`` is ``async`` (``enqueue_job_async``, then every future)
    or ``sync`` (``enqueue_job``)."""
    with cluster(zk, a.workers, a.concurrency) as c:
        driver = c.driver
        queue = "q"
        driver.create_queue(
            JobQueue.builder(queue)
            # (jobs of one queue share workers: Helix's default keeps them apart)
            .set_config(
                WorkflowConfig(parallel_jobs=a.parallel_jobs, allow_overlap_job_assignment=True)
            )
            .build()
        )
        jobs = [f"j{i:06d}" for i in range(n)]
        cpu0 = cpu_seconds(c)
        t0 = time.perf_counter()
        if mode == "async":
            futures, calls = threaded(
                lambda j: driver.enqueue_job_async(queue, j, JOB), jobs, a.threads
            )
            for f in futures:
                f.result(timeout=a.timeout)
        else:
            _, calls = threaded(lambda j: driver.enqueue_job(queue, j, JOB), jobs, a.threads)
        submitted = time.perf_counter() - t0

        def done(job: str) -> None:
            state = driver.poll_for_job_state(
                queue, job, TaskState.COMPLETED, TaskState.FAILED, timeout=a.timeout
            )
            if state is not TaskState.COMPLETED:
                raise SystemExit(f"queue job {job} ended {state.value}")

        # Every job seen finished, as Celery's side waits with one ResultSet.get: the last
        # parallel_jobs jobs (the queue starts them last), then one read of the queue's
        # context for the others, and a wait for any not finished yet. (Polling each of
        # 20,000 jobs cost the client 47 s of CPU: more than the queue itself.)
        threaded(done, jobs[-a.parallel_jobs :], a.threads)
        states = driver.get_workflow_context(queue).job_states
        threaded(done, [j for j in jobs if states.get(j) is not TaskState.COMPLETED], a.threads)
        elapsed = time.perf_counter() - t0
        cpu = cpu_used(cpu0, cpu_seconds(c))
    api = "enqueue_job_async" if mode == "async" else "enqueue_job (sync)"
    return {
        "api": f"{api} from {a.threads} threads, parallel_jobs={a.parallel_jobs}",
        "items": n,
        "seconds": round(elapsed, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": _rate(n, elapsed),
        "cpu_seconds": cpu,
        "call": percentiles(calls),
    }


def helixpy_latency(zk: str, a: argparse.Namespace) -> dict[str, Any]:
    """(4) and (5): sync ``driver.start`` in a loop from one thread; ZooKeeper's cost per
    workflow when nothing is batched."""
    with cluster(zk, a.workers, a.concurrency) as c:
        driver = c.driver
        for i in range(5):  # unmeasured warm-up
            driver.start(one_task(f"warm{i}"))
        wait_workflows(driver, [f"warm{i}" for i in range(5)], a.timeout)
        wfs = [one_task(f"l{i:06d}") for i in range(a.starts)]
        before, nodes = zk_counters(zk, c.cluster), znode_count(zk)
        calls: list[float] = []
        for w in wfs:
            t = time.perf_counter()
            driver.start(w)
            calls.append(time.perf_counter() - t)
        wait_workflows(driver, [w.name for w in wfs], a.timeout)
        cost = zk_counters(zk, c.cluster) - before
        created = znode_count(zk) - nodes
    return {
        "starts": a.starts,
        "call": percentiles(calls),
        "zk": _zk_cost(cost, created, a.starts),
    }


# --- peers --------------------------------------------------------------------------------


def _one_thread_calls(fn: Callable[[], Any], runs: int) -> tuple[list[Any], list[float]]:
    out, calls = [], []
    for _ in range(runs):
        t = time.perf_counter()
        out.append(fn())
        calls.append(time.perf_counter() - t)
    return out, calls


def celery_run(n: int, a: argparse.Namespace, pool: str) -> dict[str, Any]:
    """Celery: one ``delay()`` per task from ``a.threads`` threads, every result seen."""
    try:
        from celery.result import ResultSet  # type: ignore[import-untyped]

        with (
            celery_peer.redis_server() as url,
            celery_peer.celery_workers(url, a.workers, pool, a.concurrency) as app,
        ):
            noop = app.tasks["bench.noop"]
            ResultSet([noop.delay() for _ in range(8)]).get(timeout=60, interval=0.01)
            t0 = time.perf_counter()
            # Only the ids leave the submitting threads: Celery's Redis result consumer is
            # not thread-safe, a ResultSet of AsyncResults made in other threads never ends.
            ids, calls = threaded(lambda _: noop.delay().id, range(n), a.threads)
            submitted = time.perf_counter() - t0
            ResultSet([app.AsyncResult(i) for i in ids]).get(timeout=a.timeout, interval=0.01)
            elapsed = time.perf_counter() - t0
            # one thread, on a cluster that is idle apart from these
            single, one_calls = _one_thread_calls(noop.delay, a.starts)
            ResultSet(single).get(timeout=a.timeout, interval=0.01)
    except (RuntimeError, ImportError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "api": f"delay() from {a.threads} threads, {pool} pool",
        "seconds": round(elapsed, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": _rate(n, elapsed),
        "call": percentiles(calls),
        "call_one_thread": percentiles(one_calls),
    }


def dramatiq_run(n: int, a: argparse.Namespace, prefetch: int) -> dict[str, Any]:
    """Dramatiq: one ``send()`` per task from ``a.threads`` threads, every result seen
    (``prefetch`` 0: Dramatiq's default, twice the worker threads)."""
    try:
        with (
            celery_peer.redis_server() as url,
            dramatiq_peer.dramatiq_workers(url, a.workers, a.concurrency, prefetch) as peer,
        ):
            dramatiq_peer.wait_results(peer, [peer.actor.send() for _ in range(8)], 60)
            t0 = time.perf_counter()
            messages, calls = threaded(lambda _: peer.actor.send(), range(n), a.threads)
            submitted = time.perf_counter() - t0
            dramatiq_peer.wait_results(peer, messages, a.timeout)
            elapsed = time.perf_counter() - t0
            single, one_calls = _one_thread_calls(peer.actor.send, a.starts)
            dramatiq_peer.wait_results(peer, single, a.timeout)
    except (RuntimeError, ImportError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "api": f"send() from {a.threads} threads, prefetch "
        + (str(prefetch) if prefetch else f"default ({2 * a.concurrency})"),
        "seconds": round(elapsed, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": _rate(n, elapsed),
        "call": percentiles(calls),
        "call_one_thread": percentiles(one_calls),
    }


# --- the run ------------------------------------------------------------------------------


def _show(label: str, r: dict[str, Any]) -> None:
    if "error" in r:
        say(f"{label}: {r['error']}")
        return
    call = r.get("call") or {}
    extra = f", call p50 {call['p50_ms']} ms" if "p50_ms" in call else ""
    cpu = r.get("cpu_seconds")
    if cpu:
        extra += (
            f"; CPU s controller {cpu['controller']}, participants "
            f"{cpu['participants']}, client {cpu['client']}"
        )
    say(
        f"{label}: {r['tasks_per_s']} tasks/s ({r['seconds']} s, submit "
        f"{r.get('submit_seconds', '?')} s{extra})"
    )


def run(a: argparse.Namespace) -> dict[str, Any]:
    n = a.items
    helix: dict[str, Any] = {}
    with local_zookeeper() as zk:
        if a.warmup:
            warm = helixpy_start_many(zk, a.warmup, a, prefix="warm")
            say(f"warm-up: {a.warmup} workflows at {warm['tasks_per_s']}/s (not reported)")
        helix["start_threads"] = helixpy_threads(zk, n, a)
        _show("helixpy start x threads", helix["start_threads"])
        z = helix["start_threads"]["zk"]
        say(
            f"  ZooKeeper per workflow (burst): {z['txns_per_workflow']} txns, "
            f"{z['znodes_per_workflow']} znodes"
        )
        helix["start_async"] = helixpy_async(zk, n, a)
        _show("helixpy start_async", helix["start_async"])
        helix["start_many"] = helixpy_start_many(zk, n, a)
        _show("helixpy start_many", helix["start_many"])
        nq = a.queue_items or n
        helix["queue_async"] = helixpy_queue(zk, nq, a, "async")
        _show("helixpy queue enqueue_job_async", helix["queue_async"])
        helix["queue_sync"] = helixpy_queue(zk, nq, a, "sync")
        _show("helixpy queue enqueue_job", helix["queue_sync"])
        helix["latency"] = helixpy_latency(zk, a)
        lat = helix["latency"]
        say(
            f"helixpy sync start, one thread: p50 {lat['call']['p50_ms']} ms, p90 "
            f"{lat['call']['p90_ms']} ms, p99 {lat['call']['p99_ms']} ms; ZooKeeper per "
            f"workflow {lat['zk']['txns_per_workflow']} txns, "
            f"{lat['zk']['znodes_per_workflow']} znodes"
        )
    out: dict[str, Any] = {
        "items": n,
        "warmup": a.warmup,
        "workers": a.workers,
        "concurrency_per_worker": a.concurrency,
        "threads": a.threads,
        "helixpy": helix,
    }
    ratios: dict[str, Any] = {}
    modes = [k for k in helix if "tasks_per_s" in helix[k]]
    best_mode = max(modes, key=lambda k: helix[k]["tasks_per_s"])
    ratios["helixpy_best_mode"] = best_mode
    if not a.no_peers:
        for pool in a.celery_pools.split(","):
            out[f"celery_{pool}"] = celery_run(n, a, pool)
            _show(f"celery ({pool})", out[f"celery_{pool}"])
        for i, prefetch in enumerate(int(p) for p in str(a.prefetch).split(",")):
            key = "dramatiq" if i == 0 else f"dramatiq_prefetch_{prefetch or 'default'}"
            out[key] = dramatiq_run(n, a, prefetch)
            _show(key, out[key])
        peers: dict[str, float] = {}
        rated = [
            (out[k]["tasks_per_s"], k.removeprefix("celery_"))
            for k in out
            if k.startswith("celery_") and "tasks_per_s" in out[k]
        ]
        if rated:
            best, pool = max(rated)
            peers["celery"] = best
            ratios["celery_best_pool"] = pool
        if "tasks_per_s" in out["dramatiq"]:
            peers["dramatiq"] = out["dramatiq"]["tasks_per_s"]
        for peer, rate in peers.items():
            for mode in modes:
                ratios[f"{mode}_over_{peer}"] = round(helix[mode]["tasks_per_s"] / rate, 3)
            ratios[f"helixpy_best_over_{peer}"] = ratios[f"{best_mode}_over_{peer}"]
    out["ratios"] = ratios
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--items", type=int, default=2000, help="units per measurement")
    parser.add_argument(
        "--warmup", type=int, default=8000, help="workflows run first, unmeasured (JIT)"
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="client threads")
    parser.add_argument("--chunk", type=int, default=500, help="start_many chunk size")
    parser.add_argument(
        "--queue-items", type=int, default=0, help="queue jobs per queue row (0: --items)"
    )
    parser.add_argument("--parallel-jobs", type=int, default=64)
    parser.add_argument("--starts", type=int, default=200, help="one-thread latency loop")
    parser.add_argument(
        "--prefetch",
        default="64,0",
        help="dramatiq_queue_prefetch values, the tuned one first (0: Dramatiq's default)",
    )
    parser.add_argument("--celery-pools", default="prefork,threads")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-peers", action="store_true", help="helixpy only")
    args = parser.parse_args(argv)
    result = run(args)
    path = save("small", result)
    print(json.dumps(result["ratios"]))
    say(f"wrote {path}")


if __name__ == "__main__":
    main()
