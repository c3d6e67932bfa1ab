"""Failover times against the session timeout (issue 7's failover targets).

- leader: SIGKILL of the leader controller -> the standby's first new assignment (the start
  time, in the job context, of a task submitted right after the kill);
- participant: SIGKILL of a participant running tasks -> those tasks running elsewhere
  (the latest start time of their second attempts).

Each is measured ``--repeat`` times on a fresh cluster; prints one JSON object with every
sample, the median, and the target (session timeout + 1 s).

    python -m bench failover --session-timeout 4 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from bench.common import save, wait_until
from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster, local_zookeeper


def leader_failover(zk: str, session_timeout: float) -> float:
    with LocalCluster(
        participants=1, controllers=2, zk=zk, session_timeout=session_timeout
    ) as cluster:
        driver = cluster.driver
        killed_at = time.time()
        cluster.kill_controller()
        wf = Workflow.builder("after").add_job("j", JobConfig(command="Noop", num_tasks=1))
        driver.start(wf.build())  # retried by the driver until the standby leads
        driver.poll_for_workflow_state("after", TaskState.COMPLETED, timeout=120)
        start = driver.get_job_context("after", "j").tasks[0].start_time
        assert start is not None
        return start.timestamp() - killed_at


def participant_failover(zk: str, session_timeout: float) -> float:
    with LocalCluster(participants=2, zk=zk, session_timeout=session_timeout) as cluster:
        driver = cluster.driver
        victim, survivor = cluster.instances
        driver.set_instance_enabled(survivor, False)
        driver.start(
            Workflow.builder("w")
            .add_job(
                "j",
                JobConfig(
                    command="Sleep",
                    num_tasks=3,
                    num_concurrent_tasks_per_instance=3,
                    command_config={"seconds": "60"},
                ),
            )
            .build()
        )

        def running() -> bool:
            ctx = driver.get_job_context("w", "j")
            return all(t.state is TaskPartitionState.RUNNING for t in ctx.tasks.values())

        wait_until(running, 60, "the tasks running")
        driver.set_instance_enabled(survivor, True)
        killed_at = time.time()
        cluster.kill_participant(victim)

        def moved() -> bool:
            ctx = driver.get_job_context("w", "j")
            return all(
                t.num_attempts == 2 and t.state is TaskPartitionState.RUNNING
                for t in ctx.tasks.values()
            )

        wait_until(moved, 120, "the tasks running elsewhere")
        ctx = driver.get_job_context("w", "j")
        return (
            max(t.start_time.timestamp() for t in ctx.tasks.values() if t.start_time is not None)
            - killed_at
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--session-timeout", type=float, default=4.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    out: dict[str, object] = {
        "session_timeout_s": args.session_timeout,
        "target_s": args.session_timeout + 1.0,
    }
    with local_zookeeper() as zk:
        for name, fn in (("leader", leader_failover), ("participant", participant_failover)):
            samples = [round(fn(zk, args.session_timeout), 3) for _ in range(args.repeat)]
            out[name] = {"samples_s": samples, "median_s": statistics.median(samples)}
    save("failover", out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
