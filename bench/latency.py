"""Latency of one-task workflows on an idle cluster, helixpy against Celery.

For each of ``--runs`` one-task submissions, one after the other (five unmeasured warm-up
runs first):

- submit -> RUNNING: helixpy: the attempt's start time in the job context (the
  participant's own report of when ``run`` began); Celery: the wall clock the task returns
  from its first line; both minus the wall clock just before the submit call;
- end to end: the submit call until the submitter sees the result (helixpy: the workflow
  COMPLETED; Celery: ``AsyncResult.get``).

helixpy runs one participant; Celery one prefork worker (its default pool) with Redis as
broker and result backend.

    python -m bench latency [--runs 200]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bench import celery_peer
from bench.common import latency_summary, save
from helixpy import JobConfig, TaskState, Workflow
from helixpy.testing import LocalCluster, local_zookeeper


def helixpy_run(runs: int) -> dict[str, Any]:
    to_running: list[float] = []
    end_to_end: list[float] = []
    with local_zookeeper() as zk, LocalCluster(participants=1, zk=zk) as cluster:
        driver = cluster.driver
        for i in range(-5, runs):
            wf = (
                Workflow.builder(f"lat{i + 5}")
                .add_job("j", JobConfig(command="Noop", num_tasks=1))
                .build()
            )
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
    return latency_summary(to_running, end_to_end)


def celery_run(runs: int) -> dict[str, Any]:
    try:
        with (
            celery_peer.redis_server() as url,
            celery_peer.celery_workers(url, 1, "prefork", 2) as app,
        ):
            return celery_peer.latency(app, runs)
    except (RuntimeError, ImportError, OSError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def run(runs: int, peers: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"runs": runs, "helixpy": helixpy_run(runs)}
    if peers:
        out["celery"] = celery_run(runs)
        theirs = out["celery"]
        if "end_to_end" in theirs:
            ours = out["helixpy"]
            out["ratios"] = {
                f"{metric}_p50_helixpy_over_celery": round(
                    ours[metric]["p50_ms"] / theirs[metric]["p50_ms"], 3
                )
                for metric in ("end_to_end", "submit_to_running")
            }
    out["targets"] = {"submit_to_running_p50_ms": 20, "end_to_end_p50_ms": 50}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--no-peers", action="store_true", help="helixpy only")
    args = parser.parse_args(argv)
    result = run(args.runs, peers=not args.no_peers)
    save("latency", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("helixpy", "celery")}))


if __name__ == "__main__":
    main()
