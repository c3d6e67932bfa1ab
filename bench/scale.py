"""Scale: a 100,000-task job, 1,000 concurrent workflows, 200 participants.

Three sub-scenarios, each on a fresh local ZooKeeper and a fresh ``LocalCluster`` (one
controller process, no-op ``Noop`` tasks from ``helixpy.testing.tasks:registry``), so the
controller's peak RSS (``VmHWM`` of its process, read before the cluster exits) is per
scenario:

- ``big_job``: one job of ``--big-tasks`` tasks over ``--big-participants`` participant
  processes. Time from ``driver.start`` to COMPLETED, controller peak RSS, then a walk of
  the cluster's subtree in ZooKeeper (batched async ``exists``): the bytes stored under the
  job's context (header and chunks), the largest znode anywhere and the znode count.
- ``many_workflows``: ``--workflows`` workflows of one ``--tasks-per-workflow``-task job,
  submitted at once from ``--submitters`` threads; time from the first submit until every
  one is COMPLETED, controller peak RSS.
- ``many_participants``: ``--participants`` participants as threads in ``--processes``
  processes (``bench/sim_participants.py``; each participant its own ZooKeeper session).
  Time from spawning the processes until every live node exists (registration), then one
  job of ``--participant-tasks`` tasks: its time, controller peak RSS, and how many distinct
  instances ran a task (from the job context).

Targets (the performance issue): controller RSS < 500 MB, no znode above 512 KB.

    cd /work/main && .venv/bin/python -m bench.scale                  # everything
    .venv/bin/python -m bench.scale --big-tasks 10000 --workflows 100 --participants 20
    .venv/bin/python -m bench.scale --only big                        # one sub-scenario

Writes ``bench/results/scale.json`` (``--only`` merges into an existing file, replacing
only its sub-scenario) and prints the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO, Any

from kazoo.client import KazooClient

from bench.common import load, rss_mb, save, wait_until
from helixpy import JobConfig, TaskState, Workflow
from helixpy.store.client import connect
from helixpy.testing import LocalCluster, local_zookeeper

TASKS = "helixpy.testing.tasks:registry"
TARGETS = {"controller_rss_mb_max": 500, "znode_bytes_max": 512 * 1024}
REPO = Path(__file__).resolve().parent.parent
#: Outstanding async requests per batch when walking the ZooKeeper tree.
WALK_BATCH = 2000
#: The driver's per-call bound (a start of a 100,000-task job writes hundreds of chunks).
DRIVER_TIMEOUT = 120.0


def note(message: str) -> None:
    """Progress on stderr (stdout carries only the JSON)."""
    sys.stderr.write(f"[scale {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# --- ZooKeeper tree walk --------------------------------------------------------------------


def znode_sizes(zk: KazooClient, root: str) -> dict[str, int]:
    """Every znode under ``root`` (included) with its data length, breadth first, with
    batches of async requests (``exists`` gives the stat, so no data is transferred)."""
    sizes: dict[str, int] = {}
    level = [root]
    while level:
        parents: list[str] = []
        for i in range(0, len(level), WALK_BATCH):
            batch = level[i : i + WALK_BATCH]
            pending = [(path, zk.exists_async(path)) for path in batch]
            for path, result in pending:
                stat = result.get(timeout=60)
                if stat is None:  # deleted meanwhile
                    continue
                sizes[path] = stat.dataLength
                if stat.numChildren:
                    parents.append(path)
        level = []
        for i in range(0, len(parents), WALK_BATCH):
            batch = parents[i : i + WALK_BATCH]
            listed = [(path, zk.get_children_async(path)) for path in batch]
            for path, result in listed:
                try:
                    children = result.get(timeout=60)
                except Exception:  # deleted meanwhile
                    continue
                level.extend(f"{path}/{child}" for child in children)
    return sizes


def tree_stats(zk: KazooClient, cluster: LocalCluster, contexts: list[str]) -> dict[str, Any]:
    """Bytes under the ``contexts`` paths, the largest znode and the count of the cluster."""
    sizes = znode_sizes(zk, cluster.paths.root)
    largest = max(sizes, key=lambda p: sizes[p])
    context_bytes = sum(
        size
        for path, size in sizes.items()
        if any(path == c or path.startswith(c + "/") for c in contexts)
    )
    return {
        "context_bytes": context_bytes,
        "largest_znode_bytes": sizes[largest],
        "largest_znode_path": largest,
        "znodes": len(sizes),
    }


# --- helpers ------------------------------------------------------------------------------


@contextmanager
def fresh_cluster(
    participants: int, capacity: int, session_timeout: float
) -> Iterator[tuple[LocalCluster, KazooClient]]:
    """A new ZooKeeper and a ``LocalCluster`` with ``participants`` participant processes,
    plus a kazoo client of our own (closed on exit)."""
    with (
        local_zookeeper() as zk_address,
        LocalCluster(
            tasks=TASKS,
            participants=0,
            zk=zk_address,
            session_timeout=session_timeout,
            driver_options={"timeout": DRIVER_TIMEOUT},
        ) as cluster,
    ):
        for _ in range(participants):
            cluster.add_participant(capacity=capacity)
        zk = connect(zk_address)
        try:
            yield cluster, zk
        finally:
            zk.stop()
            zk.close()


def controller_rss(cluster: LocalCluster) -> float:
    """Peak RSS (MB) of the leader controller's process."""
    pid = cluster.pid(cluster.leader())
    assert pid is not None
    return rss_mb(pid)


def noop_job(tasks: int, per_instance: int) -> JobConfig:
    return JobConfig(
        command="Noop",
        num_tasks=tasks,
        num_concurrent_tasks_per_instance=per_instance,
        max_attempts_per_task=1,
    )


def run_to_end(cluster: LocalCluster, wf: Workflow, timeout: float) -> float:
    """Start ``wf`` and wait (bounded) for COMPLETED; the seconds it took."""
    started = time.monotonic()
    cluster.driver.start(wf)
    state = cluster.driver.poll_for_workflow_state(
        wf.name, TaskState.COMPLETED, TaskState.FAILED, timeout=timeout
    )
    elapsed = time.monotonic() - started
    if state is not TaskState.COMPLETED:
        raise SystemExit(f"workflow {wf.name} ended {state.value}")
    return elapsed


# --- sub-scenarios ------------------------------------------------------------------------


def run_big_job(
    tasks: int, participants: int, capacity: int, session_timeout: float, timeout: float
) -> dict[str, Any]:
    """One job of ``tasks`` no-op tasks."""
    with fresh_cluster(participants, capacity, session_timeout) as (cluster, zk):
        wf = Workflow.builder("big").add_job("j", noop_job(tasks, capacity)).build()
        note(f"big_job: {tasks} tasks on {participants} participants x {capacity}")
        elapsed = run_to_end(cluster, wf, timeout)
        rss = controller_rss(cluster)
        note(f"big_job: completed in {elapsed:.1f}s, controller peak RSS {rss} MB; walking")
        walk_started = time.monotonic()
        stats = tree_stats(zk, cluster, [cluster.paths.job_context("big", "j")])
        note(f"big_job: walked {stats['znodes']} znodes in {time.monotonic() - walk_started:.1f}s")
    return {
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(tasks / elapsed, 1),
        "controller_peak_rss_mb": rss,
        **stats,
    }


def run_many_workflows(
    workflows: int,
    tasks_per_workflow: int,
    participants: int,
    capacity: int,
    submitters: int,
    session_timeout: float,
    timeout: float,
) -> dict[str, Any]:
    """``workflows`` workflows of one ``tasks_per_workflow``-task job, all submitted at once."""
    with fresh_cluster(participants, capacity, session_timeout) as (cluster, _zk):
        driver = cluster.driver
        wfs = [
            Workflow.builder(f"wf-{i:05d}")
            .add_job("j", noop_job(tasks_per_workflow, tasks_per_workflow))
            .build()
            for i in range(workflows)
        ]
        note(
            f"many_workflows: {workflows} x {tasks_per_workflow} tasks on "
            f"{participants} participants x {capacity}"
        )
        started = time.monotonic()
        deadline = started + timeout
        with ThreadPoolExecutor(max_workers=submitters) as pool:
            list(pool.map(driver.start, wfs))
        note(f"many_workflows: submitted in {time.monotonic() - started:.1f}s")
        for wf in wfs:
            state = driver.poll_for_workflow_state(
                wf.name,
                TaskState.COMPLETED,
                TaskState.FAILED,
                timeout=max(1.0, deadline - time.monotonic()),
            )
            if state is not TaskState.COMPLETED:
                raise SystemExit(f"workflow {wf.name} ended {state.value}")
        elapsed = time.monotonic() - started
        rss = controller_rss(cluster)
        note(f"many_workflows: completed in {elapsed:.1f}s, controller peak RSS {rss} MB")
    total = workflows * tasks_per_workflow
    return {
        "workflows": workflows,
        "tasks_per_workflow": tasks_per_workflow,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(total / elapsed, 1),
        "controller_peak_rss_mb": rss,
    }


def spawn_sims(
    cluster: LocalCluster,
    participants: int,
    processes: int,
    capacity: int,
    session_timeout: float,
    procs: list[subprocess.Popen[bytes]],
    logs: list[IO[bytes]],
) -> None:
    """Start ``processes`` ``bench.sim_participants`` processes sharing ``participants``;
    each is appended to ``procs`` as soon as it exists (so the caller can stop it)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    for k in range(processes):
        count = participants // processes + (1 if k < participants % processes else 0)
        if count == 0:
            continue
        log = open(cluster.log_dir / f"sim-{k}.log", "wb")  # noqa: SIM115 - closed by caller
        logs.append(log)
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.sim_participants",
                    "--zk",
                    cluster.zk_address,
                    "--cluster",
                    cluster.cluster,
                    "--count",
                    str(count),
                    "--prefix",
                    f"p{k}-",
                    "--tasks",
                    TASKS,
                    "--capacity",
                    str(capacity),
                    "--session-timeout",
                    str(session_timeout),
                ],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )


def stop_sims(procs: list[subprocess.Popen[bytes]], logs: list[IO[bytes]]) -> None:
    """SIGTERM each process we started (by its pid), wait bounded, SIGKILL what remains."""
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
    for log in logs:
        log.close()


def run_many_participants(
    participants: int,
    processes: int,
    capacity: int,
    tasks: int,
    session_timeout: float,
    timeout: float,
) -> dict[str, Any]:
    """``participants`` participants as threads in ``processes`` processes, then one job."""
    with fresh_cluster(0, capacity, session_timeout) as (cluster, zk):
        procs: list[subprocess.Popen[bytes]] = []
        logs: list[IO[bytes]] = []
        try:
            note(f"many_participants: {participants} participants in {processes} processes")
            started = time.monotonic()
            spawn_sims(cluster, participants, processes, capacity, session_timeout, procs, logs)
            live_path = cluster.paths.live_instances

            def all_live() -> bool:
                dead = [p.pid for p in procs if p.poll() is not None]
                if dead:
                    raise SystemExit(
                        f"participant processes {dead} exited; logs in {cluster.log_dir}"
                    )
                return len(zk.get_children(live_path)) >= participants

            wait_until(all_live, timeout, f"{participants} live participants")
            registration = time.monotonic() - started
            note(f"many_participants: all live in {registration:.1f}s; {tasks} tasks")
            wf = Workflow.builder("spread").add_job("j", noop_job(tasks, capacity)).build()
            elapsed = run_to_end(cluster, wf, timeout)
            rss = controller_rss(cluster)
            ctx = cluster.driver.get_job_context("spread", "j")
            ran = {t.assigned_participant for t in ctx.tasks.values() if t.assigned_participant}
            note(
                f"many_participants: completed in {elapsed:.1f}s on {len(ran)} instances, "
                f"controller peak RSS {rss} MB"
            )
            for k in range(len(logs)):  # each process's own start time (imports excluded)
                text = (cluster.log_dir / f"sim-{k}.log").read_text(errors="replace")
                note(f"sim-{k}: {' | '.join(text.splitlines()[:3])}")
        finally:
            stop_sims(procs, logs)
    return {
        "participants": participants,
        "processes": processes,
        "tasks": tasks,
        "seconds": round(elapsed, 3),
        "tasks_per_s": round(tasks / elapsed, 1),
        "registration_seconds": round(registration, 3),
        "controller_peak_rss_mb": rss,
        "instances_that_ran_tasks": len(ran),
    }


# --- entry point --------------------------------------------------------------------------


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "scale").splitlines()[0])
    parser.add_argument("--only", choices=("big", "many", "participants"), default=None)
    parser.add_argument("--big-tasks", type=int, default=100_000)
    parser.add_argument("--big-participants", type=int, default=4)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--tasks-per-workflow", type=int, default=10)
    parser.add_argument(
        "--many-participants",
        type=int,
        default=4,
        help="participant processes for the many_workflows scenario",
    )
    parser.add_argument(
        "--submitters", type=int, default=32, help="threads submitting the many_workflows workflows"
    )
    parser.add_argument(
        "--capacity", type=int, default=40, help="capacity of each participant process (big, many)"
    )
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--participant-capacity", type=int, default=5)
    parser.add_argument("--participant-tasks", type=int, default=5000)
    parser.add_argument("--session-timeout", type=float, default=10.0)
    parser.add_argument(
        "--timeout", type=float, default=900.0, help="bound on each scenario's waits (seconds)"
    )
    parser.add_argument("--no-save", action="store_true", help="print only")
    args = parser.parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C, so every ``finally`` stops what this run started.
        signal.signal(signal.SIGTERM, _terminate)

    scenarios: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
        "big": (
            "big_job",
            lambda: run_big_job(
                args.big_tasks,
                args.big_participants,
                args.capacity,
                args.session_timeout,
                args.timeout,
            ),
        ),
        "many": (
            "many_workflows",
            lambda: run_many_workflows(
                args.workflows,
                args.tasks_per_workflow,
                args.many_participants,
                args.capacity,
                args.submitters,
                args.session_timeout,
                args.timeout,
            ),
        ),
        "participants": (
            "many_participants",
            lambda: run_many_participants(
                args.participants,
                args.processes,
                args.participant_capacity,
                args.participant_tasks,
                args.session_timeout,
                args.timeout,
            ),
        ),
    }
    result: dict[str, Any] = {}
    if args.only is not None:  # keep the other sub-scenarios of an earlier full run
        previous = load("scale") or {}
        result = {k: v for k, v in previous.items() if k in {key for key, _ in scenarios.values()}}
    for option, (key, run) in scenarios.items():
        if args.only in (None, option):
            result[key] = run()
    result = {key: result[key] for key, _ in scenarios.values() if key in result}
    result["targets"] = TARGETS
    if not args.no_save:
        note(f"saved {save('scale', result)}")
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
