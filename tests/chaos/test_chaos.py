"""Chaos: random kills and freezes of participants, leader kills and ZooKeeper node kills,
on 4 participants, 2 controllers and a 3-node ensemble, while workflows run.

At the end: every workflow is final and consistent with its tasks; every accepted
completion is an attempt that really ran to its end; no two attempts of one task ran at the
same time unless the earlier one's incarnation had been superseded (its session ended);
nothing is stuck STOPPING; and the figures are printed.
"""

from __future__ import annotations

import itertools
import random
import signal
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from helixpy import JobConfig, TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster, local_ensemble

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(900)]
P = TaskPartitionState
S = TaskState


class Faults:
    """One fault at a time, each healed before the next, at random pauses."""

    def __init__(self, cluster: LocalCluster, ensemble: object, seed: int) -> None:
        self.cluster = cluster
        self.ensemble = ensemble
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.done: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def _run(self) -> None:
        try:
            kinds: list[str] = []
            while not self.stop.wait(self.rng.uniform(0.5, 2.0)):
                if not kinds:  # every kind once per round, in a random order
                    kinds = self.rng.sample(["kill", "freeze", "leader", "zookeeper"], 4)
                kind = kinds.pop()
                getattr(self, f"_{kind}")()
                self.done[kind] += 1
        except BaseException as exc:  # surfaced by the test
            self.errors.append(exc)

    def _kill(self) -> None:
        inst = self.rng.choice(self.cluster.instances)
        self.cluster.kill_participant(inst)
        self.stop.wait(self.rng.uniform(0.5, 3.0))
        self.cluster.start_participant(inst)

    def _freeze(self) -> None:
        inst = self.rng.choice(self.cluster.instances)
        self.cluster.send_signal(inst, signal.SIGSTOP)
        self.stop.wait(self.rng.uniform(1.0, 6.0))  # often past the 4 s session
        self.cluster.send_signal(inst, signal.SIGCONT)

    def _leader(self) -> None:
        killed = self.cluster.kill_controller()
        self.cluster.wait_for_leader(exclude=killed, timeout=60)
        self.cluster.start_controller(killed)

    def _zookeeper(self) -> None:
        ensemble = self.ensemble
        i = self.rng.randrange(3)
        ensemble.kill(i)  # type: ignore[attr-defined]
        self.stop.wait(self.rng.uniform(0.5, 3.0))
        ensemble.start(i)  # type: ignore[attr-defined]


def _attempts(log_dir: Path) -> dict[tuple[str, str, str], dict[int, dict[str, object]]]:
    """The tasks' own attempt logs: (wf, job, task) -> attempt -> record."""
    out: dict[tuple[str, str, str], dict[int, dict[str, object]]] = {}
    for path in log_dir.iterdir():
        wf, job, task, attempt = path.name.split(".")
        lines = path.read_text().split("\n")
        instance, incarnation, start = lines[0].split()
        end, outcome = lines[1].split() if len(lines) > 1 and lines[1] else ("inf", "running")
        out.setdefault((wf, job, task), {})[int(attempt)] = {
            "instance": instance,
            "incarnation": int(incarnation),
            "start": float(start),
            "end": float(end),
            "outcome": outcome,
        }
    return out


def test_chaos(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    n_workflows = int(request.config.getoption("--chaos-workflows"))
    seed = int(request.config.getoption("--chaos-seed"))
    log_dir = tmp_path / "attempts"
    log_dir.mkdir()
    rng = random.Random(seed)
    with (
        local_ensemble(3) as ensemble,
        LocalCluster(
            participants=4, controllers=2, zk=ensemble.connection_string, session_timeout=4.0
        ) as cluster,
    ):
        driver = cluster.driver
        faults = Faults(cluster, ensemble, seed)
        faults.thread.start()
        names = []
        try:
            # Work keeps arriving until every kind of fault has struck at least once: a
            # fast cluster must not finish the workload before the faults get to it.
            submit_until = time.monotonic() + 180
            for i in itertools.count():
                if i >= n_workflows and (len(faults.done) == 4 or time.monotonic() > submit_until):
                    break
                b = Workflow.builder(f"w{i:03d}")
                for j in range(2):
                    b.add_job(
                        f"j{j}",
                        JobConfig(
                            command="Chaos",
                            num_tasks=5,
                            num_concurrent_tasks_per_instance=5,
                            command_config={
                                "dir": str(log_dir),
                                "seconds": f"{rng.uniform(0.05, 0.6):.2f}",
                            },
                        ),
                    )
                b.add_parent_child_dependency("j0", "j1")
                driver.start(b.build())
                names.append(f"w{i:03d}")
                faults.stop.wait(0.15)  # spread submissions over the fault phase
            deadline = time.monotonic() + 600
            states = {}
            for name in names:
                final = (S.COMPLETED, S.FAILED, S.TIMED_OUT, S.ABORTED)
                states[name] = driver.poll_for_workflow_state(
                    name, *final, timeout=max(1.0, deadline - time.monotonic())
                )
        finally:
            faults.stop.set()
            faults.thread.join(120)
        assert not faults.errors, faults.errors
        # Every workflow is final and consistent with its tasks
        attempts = _attempts(log_dir)
        lost = 0
        for name in names:
            assert states[name] is S.COMPLETED, (name, states[name])
            wctx = driver.get_workflow_context(name)
            assert set(wctx.job_states.values()) == {S.COMPLETED}, (name, wctx)
            for job in wctx.job_states:
                ctx = driver.get_job_context(name, job)
                assert ctx.state is not S.STOPPING
                for t in ctx.tasks.values():
                    if t.state is not P.COMPLETED:
                        lost += 1
                        continue
                    # the accepted completion is an attempt that really ran to its end
                    ran = attempts[(name, job, t.task_id)]
                    assert ran[t.num_attempts]["outcome"] == "done", (name, job, t)
                    assert ran[t.num_attempts]["instance"] == t.assigned_participant
        assert lost == 0
        # No two attempts of a task overlapped while both were in live incarnations
        final_incarnation = {i: cluster.incarnation(i) for i in cluster.instances}
        overlaps = 0
        for key, by_attempt in attempts.items():
            ordered = sorted(by_attempt.items())
            for (_, a), (_, b) in itertools.combinations(ordered, 2):
                if a["start"] < b["end"] and b["start"] < a["end"]:  # type: ignore[operator]
                    overlaps += 1
                    superseded = a["incarnation"] != final_incarnation[str(a["instance"])]
                    assert superseded, (key, a, b)
        total = sum(len(v) for v in attempts.values())
        print(
            f"\nchaos: {len(names)} workflows, {len(attempts)} tasks, {total} attempts run, "
            f"faults {dict(faults.done)}, overlaps with a superseded attempt {overlaps}, "
            f"tasks lost {lost}"
        )
        assert sum(faults.done.values()) >= 4 and len(faults.done) == 4, faults.done
