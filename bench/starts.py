"""Submission rate: how fast a burst of workflow starts is accepted.

``--workflows`` one-job workflows (10 Noop tasks each) started from ``--threads`` client
threads at once on a LocalCluster; starts/s from the first call to the last answer, and
the p50/p99 of one ``driver.start`` call. Only the submission is timed (the tasks run,
but the scenario does not wait for them). Under the controller's burst path, reads and
multis of the starts taken in one pass travel together.

    python -m bench starts [--workflows 1000 --threads 32]
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import percentiles, save
from helixpy import JobConfig, Workflow
from helixpy.testing import LocalCluster, local_zookeeper


def run(workflows: int, threads: int, participants: int) -> dict[str, Any]:
    wfs = [
        Workflow.builder(f"s{i:05d}").add_job("j", JobConfig(command="Noop", num_tasks=10)).build()
        for i in range(workflows)
    ]
    calls: list[float] = []
    with local_zookeeper() as zk, LocalCluster(participants=participants, zk=zk) as cluster:
        driver = cluster.driver

        def start(wf: Workflow) -> None:
            t = time.perf_counter()
            driver.start(wf)
            calls.append(time.perf_counter() - t)

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(start, wfs))
        elapsed = time.perf_counter() - t0
    return {
        "workflows": workflows,
        "threads": threads,
        "seconds": round(elapsed, 3),
        "starts_per_s": round(workflows / elapsed, 1),
        "call": percentiles(calls),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--participants", type=int, default=2)
    args = parser.parse_args(argv)
    result = run(args.workflows, args.threads, args.participants)
    save("starts", result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
