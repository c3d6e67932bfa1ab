"""Task reuse: warm streaming slots with barriers against a fresh one-shot job per request.

The task's set-up (``open``) costs ``--open-cost`` seconds (default 0.2). Each of
``--requests`` requests carries ``--splits`` splits:

- warm: one streaming job (``Sum``, one slot, opened once); a request is ``add_splits``
  plus ``request_barrier().wait()``;
- cold: a new workflow per request whose one task (``SumOnce``) pays the set-up, adds the
  same splits, and completes; a request is ``start`` to COMPLETED seen by the driver.

Prints one JSON object: per-request time of both (mean, p50, p99), the per-request
overhead (time minus the set-up the request had to pay: 0 warm, ``open_cost`` cold) and
the ratio cold/warm of per-request time.

    python -m bench reuse --requests 100 --splits 10
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.common import save
from helixpy import JobConfig, TaskState, Workflow
from helixpy.testing import LocalCluster, local_zookeeper


def _stats(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100)
    return {
        "mean_ms": round(statistics.fmean(samples) * 1e3, 2),
        "p50_ms": round(q[49] * 1e3, 2),
        "p99_ms": round(q[98] * 1e3, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--open-cost", type=float, default=0.2)
    args = parser.parse_args(argv)
    cost = str(args.open_cost)
    with local_zookeeper() as zk, LocalCluster(participants=1, zk=zk) as cluster:
        driver = cluster.driver
        driver.start(
            Workflow.builder("warm")
            .add_job(
                "s",
                JobConfig(
                    command="Sum", num_tasks=1, stream=True, command_config={"open_cost": cost}
                ),
            )
            .build()
        )
        driver.poll_for_job_state("warm", "s", TaskState.IN_PROGRESS, timeout=60)
        driver.request_barrier("warm", "s").wait(60)  # the slot is open: exclude set-up
        warm: list[float] = []
        for r in range(args.requests):
            splits = [{"v": r * args.splits + i} for i in range(args.splits)]
            t0 = time.perf_counter()
            driver.add_splits("warm", "s", splits)
            checkpoint = driver.request_barrier("warm", "s").wait(60)
            warm.append(time.perf_counter() - t0)
            assert sum(int(c["total"]) for c in checkpoint.values()) == sum(s["v"] for s in splits)
        cold: list[float] = []
        for r in range(args.requests):
            splits = [{"v": r * args.splits + i} for i in range(args.splits)]
            wf = (
                Workflow.builder(f"cold{r}")
                .add_job(
                    "j",
                    JobConfig(
                        command="SumOnce",
                        num_tasks=1,
                        command_config={"open_cost": cost, "splits": json.dumps(splits)},
                    ),
                )
                .build()
            )
            t0 = time.perf_counter()
            driver.start(wf)
            state = driver.poll_for_workflow_state(
                f"cold{r}", TaskState.COMPLETED, TaskState.FAILED, timeout=60
            )
            cold.append(time.perf_counter() - t0)
            assert state is TaskState.COMPLETED
    warm_mean, cold_mean = statistics.fmean(warm), statistics.fmean(cold)
    out = {
        "requests": args.requests,
        "splits": args.splits,
        "open_cost_s": args.open_cost,
        "warm": _stats(warm),
        "cold": _stats(cold),
        "warm_overhead_ms": round(warm_mean * 1e3, 2),
        "cold_overhead_ms": round((cold_mean - args.open_cost) * 1e3, 2),
        "cold_over_warm_per_request": round(cold_mean / warm_mean, 1),
    }
    save("reuse", out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
