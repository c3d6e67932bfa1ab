"""Results: a value returned to the client, and values passed along a DAG, against Celery.

- **value round trip**: one-task workflows, one after the other, whose result the client
  waits for and reads (helixpy: start, wait COMPLETED, ``get_task_result``; Celery:
  ``delay(x).get()`` of a task returning its argument). End-to-end p50/p90.
- **async round trip**: the same through :class:`~helixpy.driver.aio.AsyncTaskDriver` (one
  event loop: ``await start``, ``await poll_for_workflow_state``, ``await
  get_task_result``), against the same Celery ``delay(x).get()``.
- **pipeline**: three jobs passing a ``--size``-byte value (100 KB by default): the first
  returns it, the second and third read their parent's results (``ctx.parent_results``)
  and return them; the client reads the last one's result. Celery: the chain
  ``blob.s(size) | value.s() | value.s()`` and ``get()``. End-to-end p50, and helixpy's
  ZooKeeper writes per pipeline (the server's counters).

One participant against one prefork Celery worker (concurrency 2, Redis as
broker and result backend), each on an idle cluster.

    python -m bench results [--runs 30] [--size 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from bench import celery_peer
from bench.common import percentiles, save, zk_counters
from helixpy import JobConfig, TaskState, Workflow
from helixpy.driver.aio import AsyncTaskDriver
from helixpy.testing import LocalCluster, local_zookeeper


def _pipeline(name: str, size: int) -> Workflow:
    wf = Workflow.builder(name)
    wf.add_job("make", JobConfig(command="Return", num_tasks=1, command_config={"size": size}))
    for job, parent in (("pass1", "make"), ("pass2", "pass1")):
        wf.add_job(job, JobConfig(command="Gather", num_tasks=1, command_config={"from": parent}))
        wf.add_parent_child_dependency(parent, job)
    return wf.build()


def helixpy_run(runs: int, size: int) -> dict[str, Any]:
    round_trip: list[float] = []
    pipeline: list[float] = []
    with local_zookeeper() as zk, LocalCluster(participants=1, zk=zk) as cluster:
        driver = cluster.driver
        for i in range(-3, runs):  # three unmeasured warm-up runs first
            wf = Workflow.builder(f"v{i + 3}").add_job(
                "j", JobConfig(command="Return", num_tasks=1, command_config={"value": i})
            )
            t0 = time.perf_counter()
            driver.start(wf.build())
            driver.poll_for_workflow_state(f"v{i + 3}", TaskState.COMPLETED, timeout=60)
            got = driver.get_task_result(f"v{i + 3}", "j", 0)
            elapsed = time.perf_counter() - t0
            if got != i:
                raise SystemExit(f"v{i + 3} returned {got!r}")
            if i >= 0:
                round_trip.append(elapsed)
        async_trip = asyncio.run(_async_round_trip(cluster, runs))
        before = zk_counters(cluster.zk_address, cluster.cluster)
        for i in range(-3, runs):
            name = f"p{i + 3}"
            t0 = time.perf_counter()
            driver.start(_pipeline(name, size))
            driver.poll_for_workflow_state(name, TaskState.COMPLETED, timeout=120)
            got = driver.get_task_result(name, "pass2", 0)
            elapsed = time.perf_counter() - t0
            if len(got["0"]["0"]) != size:
                raise SystemExit(f"{name} passed a value of the wrong size")
            if i >= 0:
                pipeline.append(elapsed)
        spent = zk_counters(cluster.zk_address, cluster.cluster) - before
    return {
        "round_trip": percentiles(round_trip),
        "async_round_trip": percentiles(async_trip),
        "pipeline": percentiles(pipeline),
        "pipeline_zk_txns": round(spent.txns / (runs + 3), 1),
        "pipeline_zk_write_ops": round(spent.write_ops / (runs + 3), 1),
    }


async def _async_round_trip(cluster: LocalCluster, runs: int) -> list[float]:
    samples: list[float] = []
    async with AsyncTaskDriver(cluster.zk_address, cluster.cluster) as driver:
        for i in range(-3, runs):
            name = f"a{i + 3}"
            wf = Workflow.builder(name).add_job(
                "j", JobConfig(command="Return", num_tasks=1, command_config={"value": i})
            )
            t0 = time.perf_counter()
            await driver.start(wf.build())
            await driver.poll_for_workflow_state(name, TaskState.COMPLETED, timeout=60)
            got = await driver.get_task_result(name, "j", 0)
            elapsed = time.perf_counter() - t0
            if got != i:
                raise SystemExit(f"{name} returned {got!r}")
            if i >= 0:
                samples.append(elapsed)
    return samples


def celery_run(runs: int, size: int) -> dict[str, Any]:
    try:
        from celery import chain  # type: ignore[import-untyped]

        with (
            celery_peer.redis_server() as url,
            celery_peer.celery_workers(url, 1, "prefork", 2) as app,
        ):
            value, blob = app.tasks["bench.value"], app.tasks["bench.blob"]
            round_trip: list[float] = []
            pipeline: list[float] = []
            for i in range(-3, runs):
                t0 = time.perf_counter()
                got = value.delay(i).get(timeout=60, interval=0.001)
                if i >= 0:
                    round_trip.append(time.perf_counter() - t0)
                if got != i:
                    raise SystemExit(f"celery returned {got!r}")
            for i in range(-3, runs):
                t0 = time.perf_counter()
                got = chain(blob.s(size), value.s(), value.s()).apply_async()
                out = got.get(timeout=120, interval=0.001)
                if i >= 0:
                    pipeline.append(time.perf_counter() - t0)
                if len(out) != size:
                    raise SystemExit("celery passed a value of the wrong size")
            return {"round_trip": percentiles(round_trip), "pipeline": percentiles(pipeline)}
    except (RuntimeError, ImportError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def run(runs: int, size: int, peers: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs, "size": size, "helixpy": helixpy_run(runs, size)}
    if peers:
        out["celery"] = theirs = celery_run(runs, size)
        if "pipeline" in theirs:
            ours = out["helixpy"]
            out["ratios"] = {
                f"{metric}_p50_helixpy_over_celery": round(
                    ours[metric]["p50_ms"] / theirs[metric]["p50_ms"], 3
                )
                for metric in ("round_trip", "pipeline")
            }
            out["ratios"]["async_round_trip_p50_helixpy_over_celery"] = round(
                ours["async_round_trip"]["p50_ms"] / theirs["round_trip"]["p50_ms"], 3
            )
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--size", type=int, default=100_000)
    parser.add_argument("--no-peers", action="store_true", help="helixpy only")
    args = parser.parse_args(argv)
    result = run(args.runs, args.size, peers=not args.no_peers)
    save("results", result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
