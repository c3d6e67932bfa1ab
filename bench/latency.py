"""Latency of one-task workflows on an idle cluster (issue 7's targets).

For each of ``--runs`` workflows of one ``Noop`` task, submitted one after the other:

- submit -> RUNNING: the attempt's start time in the job context (the participant's own
  report of when ``run`` began) minus the wall-clock time just before ``driver.start``;
- end to end: ``driver.start`` until the driver sees the workflow COMPLETED.

Prints one JSON object with p50/p90/p99 of both, in milliseconds.

    python bench/latency.py --runs 200
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from helixpy import JobConfig, TaskState, Workflow
from helixpy.testing import LocalCluster, local_zookeeper


def _percentiles(samples: list[float]) -> dict[str, float]:
    q = statistics.quantiles(samples, n=100)
    return {"p50_ms": round(q[49] * 1e3, 2), "p90_ms": round(q[89] * 1e3, 2),
            "p99_ms": round(q[98] * 1e3, 2)}


def run(runs: int, participants: int) -> dict[str, object]:
    to_running: list[float] = []
    end_to_end: list[float] = []
    with local_zookeeper() as zk, LocalCluster(participants=participants, zk=zk) as cluster:
        driver = cluster.driver
        for i in range(-5, runs):  # five unmeasured warm-up runs first
            wf = Workflow.builder(f"lat{i + 5}").add_job(
                "j", JobConfig(command="Noop", num_tasks=1)).build()
            submitted_wall = time.time()
            t0 = time.perf_counter()
            driver.start(wf)
            state = driver.poll_for_workflow_state(wf.name, TaskState.COMPLETED, timeout=60)
            elapsed = time.perf_counter() - t0
            if state is not TaskState.COMPLETED:
                raise SystemExit(f"{wf.name} ended {state.value}")
            start = driver.get_job_context(wf.name, "j").tasks[0].start_time
            if i >= 0 and start is not None:
                end_to_end.append(elapsed)
                to_running.append(start.timestamp() - submitted_wall)
    return {
        "bench": "latency",
        "runs": runs,
        "participants": participants,
        "submit_to_running": _percentiles(to_running),
        "end_to_end": _percentiles(end_to_end),
        "targets": {"submit_to_running_p50_ms": 20, "end_to_end_p50_ms": 50},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--participants", type=int, default=1)
    args = parser.parse_args()
    json.dump(run(args.runs, args.participants), sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
