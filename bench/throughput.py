"""Throughput: N no-op tasks over P participants on a local cluster.

Prints one JSON line: tasks/s from submission to COMPLETED, and ZooKeeper write
transactions per task, counted from the server (the zxid advances by one per committed
write request, a multi counting once), not estimated.

    python bench/throughput.py --tasks 5000 --participants 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from helixpy import JobConfig, TaskState, Workflow
from helixpy.testing import LocalCluster, local_zookeeper
from helixpy.testing.zookeeper import four_letter_word


def zxid(address: str) -> int:
    """The server's last committed zxid (counter part: writes since the epoch began)."""
    for line in four_letter_word(address, "srvr").splitlines():
        if line.startswith("Zxid:"):
            return int(line.split(":", 1)[1].strip(), 16) & 0xFFFFFFFF
    raise RuntimeError("srvr did not report a Zxid")


def run(tasks: int, participants: int, capacity: int, timeout: float) -> dict[str, object]:
    with local_zookeeper() as zk, LocalCluster(participants=0, zk=zk) as cluster:
        for _ in range(participants):
            cluster.add_participant(capacity=capacity)
        wf = Workflow.builder("bench").add_job("noop", JobConfig(
            command="Noop", num_tasks=tasks, num_concurrent_tasks_per_instance=capacity,
            max_attempts_per_task=1)).build()
        before = zxid(zk)
        started = time.monotonic()
        cluster.driver.start(wf)
        state = cluster.driver.poll_for_workflow_state(
            "bench", TaskState.COMPLETED, TaskState.FAILED, timeout=timeout)
        elapsed = time.monotonic() - started
        writes = zxid(zk) - before
    if state is not TaskState.COMPLETED:
        raise SystemExit(f"workflow ended {state.value}")
    return {
        "bench": "throughput",
        "tasks": tasks,
        "participants": participants,
        "capacity": capacity,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(tasks / elapsed, 1),
        "zk_writes": writes,
        "zk_writes_per_task": round(writes / tasks, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--participants", type=int, default=3)
    parser.add_argument("--capacity", type=int, default=40)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    result = run(args.tasks, args.participants, args.capacity, args.timeout)
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
