"""History: does a start's cost grow with the finished work a cluster retains?

One fresh cluster (``--workers`` participants of capacity ``--concurrency``, two
controllers). For each retained count R of ``--retained`` (ascending): the cluster is
brought to R finished (COMPLETED) one-task workflows retained (started with
``start_many`` in chunks of ``--chunk``, at most ``--in-flight`` unfinished at a time,
each waited for; the workflows measured at
earlier steps count), then:

- ``--starts`` sync ``driver.start`` calls from one thread: p50/p90/p99 ms (they are waited
  for too, so they join the history);
- the leader controller's resident set (VmRSS, and its peak VmHWM) from /proc, and the
  znodes on the ZooKeeper server;
- leader takeover with R retained, both ways: SIGTERM (the leader resigns at once, so the
  time is the standby's own take-over work) and SIGKILL (the standby waits for the dead
  leader's session to expire: about ``--session-timeout`` more); each time from the
  signal until the new leader has accepted a start. The old leader is started again as
  the standby afterwards. ``--takeover none`` skips this.

Before the measured cluster, ``--warmup`` one-task workflows run on a throwaway cluster on
the same ZooKeeper (whose JVM compiles for its first tens of seconds: a baseline taken
then is slow, and flatters every later step). ZooKeeper gets ``--zk-heap-mb`` of heap: it
keeps every retained znode in memory (~8 per retained workflow).

Targets (issue 12): start p50 at R = 100,000 within 1.3x of R=0; leader RSS < 300 MB.

    python -m bench history [--retained 0,10000,100000 --starts 100]
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from typing import Any

from bench.common import percentiles, rss_mb, save
from bench.small import (
    cluster,
    cpu_seconds,
    cpu_used,
    one_task,
    say,
    start_many_checked,
    wait_workflows,
    znode_count,
)
from helixpy.errors import AlreadyExists, ClusterUnavailable
from helixpy.testing import LocalCluster, local_zookeeper

#: unmeasured starts before each step's measured ones
WARMUP = 20


def _fill(
    c: LocalCluster, names: list[str], a: argparse.Namespace
) -> tuple[float, dict[str, float]]:
    """Start ``names`` (one-task workflows) and wait for them: seconds, CPU seconds used.

    At most ``a.in_flight`` are unfinished at a time (each group is waited for before the
    next is started): a cluster that ran for weeks kept its history, not a backlog of that
    size, and the controller's peak memory follows what was in flight."""
    cpu0 = cpu_seconds(c)
    t0 = time.perf_counter()
    for i in range(0, len(names), a.in_flight):
        group = names[i : i + a.in_flight]
        start_many_checked(c.driver, [one_task(n) for n in group], a.chunk)
        wait_workflows(c.driver, group, a.timeout)
    return time.perf_counter() - t0, cpu_used(cpu0, cpu_seconds(c))


def _takeover(c: LocalCluster, how: str, name: str, timeout: float) -> dict[str, Any]:
    """Signal the leader; seconds until the new leader accepted a start of ``name``."""
    old = c.leader()
    sig = signal.SIGTERM if how == "term" else signal.SIGKILL
    t0 = time.perf_counter()
    c.send_signal(old, sig)
    errors = 0
    while True:
        try:
            c.driver.start(one_task(name))
            break
        except AlreadyExists:
            break  # an earlier attempt did land
        except ClusterUnavailable:
            errors += 1
            if time.perf_counter() - t0 > timeout:
                raise
    accepted = time.perf_counter() - t0
    new = c.leader()
    code = c.exit_code(old, 60)
    c.start_controller(old)  # back as the standby
    return {
        "seconds": round(accepted, 3),
        "workflow": name,
        "old_leader": old,
        "new_leader": new,
        "old_exit_code": code,
        "retries": errors,
    }


def run(a: argparse.Namespace) -> dict[str, Any]:
    retained = sorted({int(r) for r in a.retained.split(",")})
    controllers = 1 if a.takeover == "none" else 2
    with local_zookeeper(max_heap_mb=a.zk_heap_mb) as zk:
        if a.warmup:
            # On a throwaway cluster: a fresh ZooKeeper JVM compiles for its first tens of
            # seconds, and a baseline taken then makes every later step look cheaper.
            with cluster(zk, a.workers, a.concurrency) as warm:
                _fill(warm, [f"warm{i:06d}" for i in range(a.warmup)], a)
        with cluster(
            zk, a.workers, a.concurrency, controllers, session_timeout=a.session_timeout
        ) as c:
            return _steps(c, zk, retained, a)


def _steps(c: LocalCluster, zk: str, retained: list[int], a: argparse.Namespace) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    driver = c.driver
    have = 0  # finished workflows the cluster retains
    serial = 0
    for r in retained:
        names = [f"h{have + i:06d}" for i in range(max(r - have, 0))]
        fill_s, fill_cpu = _fill(c, names, a) if names else (0.0, {})
        have += len(names)
        row: dict[str, Any] = {
            "retained": have,
            "filled": len(names),
            "fill_seconds": round(fill_s, 3),
            "fill_per_s": round(len(names) / fill_s, 1) if fill_s else None,
            "fill_cpu_seconds": fill_cpu,
        }
        measured = []
        for _ in range(WARMUP):  # unmeasured, part of the history like the rest
            measured.append(f"w{serial:06d}")
            driver.start(one_task(measured[-1]))
            serial += 1
        calls: list[float] = []
        for _ in range(a.starts):
            wf = one_task(f"s{serial:06d}")
            serial += 1
            t = time.perf_counter()
            driver.start(wf)
            calls.append(time.perf_counter() - t)
            measured.append(wf.name)
        wait_workflows(driver, measured, a.timeout)
        have += a.starts + WARMUP
        leader = c.leader()
        pid = c.pid(leader)
        assert pid is not None
        row |= {
            "start": percentiles(calls),
            "leader": leader,
            "leader_rss_mb": rss_mb(pid, peak=False),
            "leader_peak_rss_mb": rss_mb(pid),
            "znodes": znode_count(zk),
        }
        for how in ("term", "kill") if a.takeover == "both" else (a.takeover,):
            if how == "none":
                continue
            row[f"takeover_{how}"] = _takeover(c, how, f"t{how}{serial}", a.timeout)
            serial += 1
            have += 1
        # the takeover workflows finish before the next step counts them
        wait_workflows(
            driver,
            [row[k]["workflow"] for k in ("takeover_term", "takeover_kill") if k in row],
            a.timeout,
        )
        rows.append(row)
        p = row["start"]
        tk = " ".join(
            f"takeover({h}) {row[f'takeover_{h}']['seconds']} s"
            for h in ("term", "kill")
            if f"takeover_{h}" in row
        )
        say(
            f"R={r} (retained {row['retained']}): start p50 {p['p50_ms']} ms p90 "
            f"{p['p90_ms']} ms p99 {p['p99_ms']} ms; leader RSS {row['leader_rss_mb']} MB "
            f"(peak {row['leader_peak_rss_mb']}); {row['znodes']} znodes; {tk}; "
            f"fill {len(names)} in {row['fill_seconds']} s (CPU s {fill_cpu})"
        )
    base, last = rows[0], rows[-1]
    return {
        "warmup": a.warmup,
        "workers": a.workers,
        "concurrency_per_worker": a.concurrency,
        "starts_per_step": a.starts,
        "session_timeout_s": c.session_timeout,
        "steps": rows,
        "p50_ratio_last_over_first": round(last["start"]["p50_ms"] / base["start"]["p50_ms"], 3),
        "rss_ratio_last_over_first": round(last["leader_rss_mb"] / base["leader_rss_mb"], 3),
        # the targets: p50 after 100,000 retained <= 1.3x fresh, RSS < 300 MB
        "targets": {"p50_ratio_max": 1.3, "leader_rss_mb_max": 300},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--retained", default="0,1000,5000,10000")
    parser.add_argument("--starts", type=int, default=100)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=8, help="threads polling for COMPLETED")
    parser.add_argument("--chunk", type=int, default=500, help="start_many chunk size")
    parser.add_argument(
        "--in-flight", type=int, default=2000, help="most unfinished workflows while filling"
    )
    parser.add_argument("--takeover", choices=("both", "term", "kill", "none"), default="both")
    parser.add_argument("--session-timeout", type=float, default=4.0)
    parser.add_argument(
        "--warmup", type=int, default=8000, help="workflows run first on another cluster"
    )
    parser.add_argument(
        "--zk-heap-mb",
        type=int,
        default=2048,
        help="the ZooKeeper JVM's heap (it holds every retained znode: ~2 GiB for 100,000)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    result = run(args)
    path = save("history", result)
    print(json.dumps({k: v for k, v in result.items() if k != "steps"}))
    say(f"wrote {path}")


if __name__ == "__main__":
    main()
