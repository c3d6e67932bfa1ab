"""``rules.assign`` against the plain linear scan it replaced: the same placements.

The reference below is the specification written the obvious way (every task scans every
instance for the most room); ``rules.assign`` keeps a heap per job instead. Hypothesis
drives both with the same instances, loads, tags, limits and targeted hosts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from helixpy.controller import rules
from helixpy.controller.runtime import JobRuntime, LiveInstance
from helixpy.model import JobConfig, Workflow
from tests.unit.test_rules import runtime

Hosts = Callable[[JobRuntime, int], frozenset[str] | None]


def reference_assign(
    jobs: list[JobRuntime],
    instances: Mapping[str, LiveInstance],
    load: Mapping[str, int],
    allowed: Hosts,
) -> list[tuple[str, int, str]]:
    free = {n: i.capacity - load.get(n, 0) for n, i in instances.items()}
    placed: list[tuple[str, int, str]] = []
    for job in jobs:
        tag = job.config.instance_group_tag
        eligible = sorted(
            n for n, i in instances.items() if i.enabled and (tag is None or tag in i.tags)
        )
        per_job = Counter(job.active.values())
        limit = job.config.num_concurrent_tasks_per_instance
        waiting: list[int] = []
        while job.pending:
            p = job.pending.popleft()
            hosts = allowed(job, p)
            best: str | None = None
            for n in eligible:
                if (
                    free[n] > 0
                    and per_job[n] < limit
                    and (hosts is None or n in hosts)
                    and (best is None or free[n] > free[best])
                ):
                    best = n
            if best is None:
                if hosts is None:
                    job.pending.appendleft(p)
                    break
                waiting.append(p)
                continue
            placed.append((job.name, p, best))
            free[best] -= 1
            per_job[best] += 1
        job.pending.extendleft(reversed(waiting))
    return placed


instance_st = st.tuples(st.integers(0, 8), st.booleans(), st.sets(st.sampled_from("ab")))
job_st = st.tuples(st.integers(1, 25), st.integers(1, 6), st.sampled_from([None, "a", "b"]))


@settings(max_examples=300, deadline=None)
@given(
    specs=st.lists(instance_st, min_size=1, max_size=10),
    loads=st.lists(st.integers(0, 4), min_size=10, max_size=10),
    jobs=st.lists(job_st, min_size=1, max_size=3),
    targeted=st.lists(st.one_of(st.none(), st.sets(st.integers(0, 9))), min_size=25, max_size=25),
)
def test_assign_places_exactly_what_the_linear_scan_places(
    specs: list[tuple[int, bool, set[str]]],
    loads: list[int],
    jobs: list[tuple[int, int, str | None]],
    targeted: list[set[int] | None],
) -> None:
    instances = {
        f"i{k}": LiveInstance(
            name=f"i{k}",
            incarnation=1,
            session=1,
            tags=frozenset(tags),
            capacity=cap,
            enabled=enabled,
        )
        for k, (cap, enabled, tags) in enumerate(specs)
    }
    load = {f"i{k}": loads[k] for k in range(len(specs))}

    def allowed(job: JobRuntime, p: int) -> frozenset[str] | None:
        hosts = targeted[p] if job.name == "j0" else None  # only the first job is targeted
        return None if hosts is None else frozenset(f"i{k}" for k in hosts)

    def build() -> list[JobRuntime]:
        b = Workflow.builder("w")
        for n, (tasks, limit, tag) in enumerate(jobs):
            b.add_job(
                f"j{n}",
                JobConfig(
                    command="x",
                    num_tasks=tasks,
                    instance_group_tag=tag,
                    num_concurrent_tasks_per_instance=limit,
                ),
            )
        wf = runtime(b.build())  # every task pending
        return [wf.jobs[f"j{n}"] for n in range(len(jobs))]

    ours_jobs, ref_jobs = build(), build()
    ours = [
        (j.name, p, i.name) for j, p, i in rules.assign(ours_jobs, instances, load, allowed=allowed)
    ]
    assert ours == reference_assign(ref_jobs, instances, load, allowed)
    assert [list(j.pending) for j in ours_jobs] == [list(j.pending) for j in ref_jobs]
