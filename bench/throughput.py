"""Throughput: no-op tasks on 4 workers, helixpy against Celery and the ZooKeeper bound.

In one run on one machine:

- helixpy: ``--workflows`` workflows of one job of ``--tasks / --workflows`` Noop tasks on
  ``--workers`` participant processes of capacity ``--concurrency``; tasks/s from the first
  ``driver.start`` to the last workflow seen COMPLETED. ZooKeeper's cost per task is
  counted by the server: read requests and write operations from its per-namespace metrics
  (the cluster's root), write transactions from the zxid (a multi counts once);
- Celery with a Redis broker: the same number of no-ops in as many groups, on ``--workers``
  worker processes of concurrency ``--concurrency``, once with the prefork pool and once
  with threads; first submit to every result seen;
- the raw ZooKeeper bound: pipelined creates of one client on the same server
  (``bench/zkbound.py``).

Both systems are also measured with submission excluded ("drain"): helixpy's jobs are
submitted while every participant is disabled, then all are enabled; Celery's tasks are
queued while its workers listen on another queue, then all are told to consume them.
This shows what the workers do once the work is queued, apart from what the submit path
costs (Celery publishes one broker message per task; helixpy one request per workflow).

    python -m bench throughput [--tasks 20000 --workflows 20 --workers 4 --concurrency 8]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import celery_peer, zkbound
from bench.common import save, zk_counters
from helixpy import JobConfig, TaskState, Workflow
from helixpy.driver import TaskDriver
from helixpy.testing import LocalCluster, local_zookeeper


def _submit(driver: TaskDriver, names: list[str], per: int, concurrency: int) -> None:
    for name in names:
        driver.start(
            Workflow.builder(name)
            .add_job(
                "noop",
                JobConfig(
                    command="Noop",
                    num_tasks=per,
                    num_concurrent_tasks_per_instance=concurrency,
                    max_attempts_per_task=1,
                ),
            )
            .build()
        )


def _wait_all(driver: TaskDriver, names: list[str], timeout: float) -> None:
    for name in names:
        state = driver.poll_for_workflow_state(
            name, TaskState.COMPLETED, TaskState.FAILED, timeout=timeout
        )
        if state is not TaskState.COMPLETED:
            raise SystemExit(f"workflow {name} ended {state.value}")


def helixpy_run(
    zk: str, tasks: int, workflows: int, workers: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    per = tasks // workflows
    n = per * workflows
    with LocalCluster(participants=0, zk=zk) as cluster:
        for _ in range(workers):
            cluster.add_participant(capacity=concurrency)
        driver = cluster.driver
        names = [f"bench{i}" for i in range(workflows)]
        before = zk_counters(zk, cluster.cluster)
        t0 = time.perf_counter()
        _submit(driver, names, per, concurrency)
        submitted = time.perf_counter() - t0
        _wait_all(driver, names, timeout)
        elapsed = time.perf_counter() - t0
        cost = zk_counters(zk, cluster.cluster) - before
        # The drain: the same work queued while no participant may take it.
        for inst in cluster.instances:
            driver.set_instance_enabled(inst, False)
        drained = [f"drain{i}" for i in range(workflows)]
        _submit(driver, drained, per, concurrency)
        t1 = time.perf_counter()
        for inst in cluster.instances:
            driver.set_instance_enabled(inst, True)
        _wait_all(driver, drained, timeout)
        drain_elapsed = time.perf_counter() - t1
    return {
        "seconds": round(elapsed, 3),
        "submit_seconds": round(submitted, 3),
        "tasks_per_s": round(n / elapsed, 1),
        "drain": {"seconds": round(drain_elapsed, 3), "tasks_per_s": round(n / drain_elapsed, 1)},
        "zk": {
            "read_ops": cost.read_ops,
            "write_ops": cost.write_ops,
            "txns": cost.txns,
            "reads_per_task": round(cost.read_ops / n, 4),
            "write_ops_per_task": round(cost.write_ops / n, 4),
            "txns_per_task": round(cost.txns / n, 4),
        },
    }


def celery_run(
    pool: str, tasks: int, batches: int, workers: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    """Celery's figures, or the reason it could not run (the report shows it)."""
    try:
        with (
            celery_peer.redis_server() as url,
            celery_peer.celery_workers(url, workers, pool, concurrency, queue="bench-idle") as app,
        ):
            drained = celery_peer.drain(app, tasks, batches, timeout)
            # Every worker now consumes the default queue: the submit-inclusive run.
            return {**celery_peer.throughput(app, tasks, batches, timeout), "drain": drained}
    except (RuntimeError, ImportError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def run(
    tasks: int, workflows: int, workers: int, concurrency: int, timeout: float, peers: bool
) -> dict[str, Any]:
    with local_zookeeper() as zk:
        ours = helixpy_run(zk, tasks, workflows, workers, concurrency, timeout)
        bound = zkbound.run(zk, creates=tasks)
    out: dict[str, Any] = {
        "tasks": tasks,
        "workflows": workflows,
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "helixpy": ours,
        "zk_bound": bound,
    }
    ratios: dict[str, Any] = {
        "helixpy_over_zk_bound": round(ours["tasks_per_s"] / bound["creates_per_s"], 3)
    }
    if peers:
        for pool in ("prefork", "threads"):
            out[f"celery_{pool}"] = celery_run(
                pool, tasks, workflows, workers, concurrency, timeout
            )
        rated = [
            (out[f"celery_{p}"]["tasks_per_s"], p)
            for p in ("prefork", "threads")
            if "tasks_per_s" in out[f"celery_{p}"]
        ]
        if rated:
            best, pool = max(rated)
            ratios["helixpy_over_celery_best"] = round(ours["tasks_per_s"] / best, 3)
            ratios["celery_best_pool"] = pool
            best_drain = max(out[f"celery_{p}"]["drain"]["tasks_per_s"] for _, p in rated)
            ratios["drain_helixpy_over_celery_best"] = round(
                ours["drain"]["tasks_per_s"] / best_drain, 3
            )
    out["ratios"] = ratios
    out["targets"] = {"celery_ratio_min": 1.0, "zk_writes_per_task_max": 0.5}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-peers", action="store_true", help="helixpy and ZooKeeper only")
    args = parser.parse_args(argv)
    result = run(
        args.tasks,
        args.workflows,
        args.workers,
        args.concurrency,
        args.timeout,
        peers=not args.no_peers,
    )
    save("throughput", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
