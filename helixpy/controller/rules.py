"""The controller's decisions, as functions over the in-memory runtime. No I/O.

Semantics follow Helix's task framework (HELIX-NOTES "Failure semantics"):
attempts are counted when a task is scheduled; TASK_ERROR, TIMED_OUT and DROPPED are retried
while attempts < max_attempts_per_task; TASK_ABORTED and ERROR are never retried; a job is
COMPLETED when every task is COMPLETED or given up and given-up <= failure_threshold, else it
goes FAILING (running tasks aborted) then FAILED; a child of a FAILED or TIMED_OUT job fails
unless it ignores dependent failures; a workflow FAILS when its failed and timed-out jobs
exceed its failure_threshold, and its running jobs become ABORTED.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from helixpy.controller.overlap import Overlap
from helixpy.controller.quota import DEFAULT, Quotas
from helixpy.controller.runtime import RESTING, JobRuntime, LiveInstance, WorkflowRuntime
from helixpy.model import JobConfig, TaskContextInfo, TaskPartitionState, TaskState
from helixpy.model.context import cap_info

P = TaskPartitionState
S = TaskState

_RETRIABLE = frozenset({P.TASK_ERROR, P.TIMED_OUT, P.DROPPED})
_NEVER_RETRIED = frozenset({P.TASK_ABORTED, P.ERROR})
#: States a participant may report for an attempt.
REPORTABLE = frozenset(
    {
        P.RUNNING,
        P.COMPLETED,
        P.TASK_ERROR,
        P.TASK_ABORTED,
        P.ERROR,
        P.TIMED_OUT,
        P.STOPPED,
        P.DROPPED,
    }  # DROPPED: cancelled on a disabled instance
)
_JOB_FAILURES = frozenset({S.FAILED, S.TIMED_OUT})


def is_given_up(t: TaskContextInfo, cfg: JobConfig) -> bool:
    """Whether a finished attempt ends the task for good without success."""
    if t.state in _NEVER_RETRIED:
        return True
    return t.state in _RETRIABLE and t.num_attempts >= cfg.max_attempts_per_task


def retry_ready_at(t: TaskContextInfo, cfg: JobConfig) -> float | None:
    """When a retriable task may be scheduled again (epoch seconds), None for now."""
    if cfg.task_retry_delay is None or t.finish_time is None:
        return None
    return t.finish_time.timestamp() + cfg.task_retry_delay


def schedule(job: JobRuntime, partition: int, inst: LiveInstance, now: datetime) -> None:
    """Record a new attempt of ``partition`` on ``inst`` (attempts count at scheduling)."""
    t = job.tasks[partition]
    job.set_task(
        partition,
        replace(
            t,
            state=P.INIT,
            num_attempts=t.num_attempts + 1,
            assigned_participant=inst.name,
            incarnation=inst.incarnation,
            info="",
            start_time=now,
            finish_time=None,
            next_retry_time=None,
        ),
    )
    job.active[partition] = inst.name


def finish_attempt(
    job: JobRuntime, partition: int, state: TaskPartitionState, info: str, now: datetime
) -> None:
    """End the active attempt of ``partition`` in ``state`` and queue a retry if one is due."""
    if partition in job.aborting and state is not P.COMPLETED:
        state = P.TASK_ABORTED  # cancelled because the job or workflow is failing
    job.aborting.discard(partition)
    job.active.pop(partition, None)
    t = replace(job.tasks[partition], state=state, info=cap_info(info), finish_time=now)
    if state is P.COMPLETED:
        job.completed += 1
    elif state is P.STOPPED:
        # Not a failure: pending again, scheduled once the job is resumed (a stopping or
        # stopped job schedules nothing).
        job.pending.append(partition)
    elif is_given_up(t, job.config):
        job.given_up += 1
    else:
        at = retry_ready_at(t, job.config)
        if at is not None and at > now.timestamp():
            t = replace(t, next_retry_time=datetime.fromtimestamp(at, tz=now.tzinfo))
            job.delayed[partition] = at
        else:
            job.pending.append(partition)
    job.set_task(partition, t)


def apply_report(
    job: JobRuntime,
    partition: int,
    inst: str,
    incarnation: int,
    attempt: int,
    state: TaskPartitionState,
    info: str,
    start: datetime | None,
    now: datetime,
) -> bool:
    """Fold one participant report in; False when it is stale or already folded."""
    if not 0 <= partition < len(job.tasks):
        return False
    t = job.tasks[partition]
    if (
        t.state is None
        or not t.state.is_active
        or t.num_attempts != attempt
        or t.assigned_participant != inst
        or t.incarnation != incarnation
        or state not in REPORTABLE
    ):
        return False
    if state is P.RUNNING:
        if t.state is P.RUNNING:
            return False
        job.set_task(partition, replace(t, state=P.RUNNING, start_time=start or t.start_time))
        return True
    if start is not None:
        job.tasks[partition] = replace(t, start_time=start)
    finish_attempt(job, partition, state, info, now)
    return True


def drop_instance(
    jobs: Iterable[JobRuntime], inst: str, keep_incarnation: int | None, now: datetime
) -> int:
    """Mark DROPPED every active attempt on ``inst`` not of ``keep_incarnation``."""
    dropped = 0
    for job in jobs:
        for p in [p for p, i in job.active.items() if i == inst]:
            if keep_incarnation is not None and job.tasks[p].incarnation == keep_incarnation:
                continue
            reason = "instance left" if keep_incarnation is None else "instance restarted"
            finish_attempt(job, p, P.DROPPED, f"{reason}: {inst}", now)
            dropped += 1
    return dropped


def _abort_active(job: JobRuntime) -> None:
    job.aborting.update(job.active)


def _parents_verdict(wf: WorkflowRuntime, job: JobRuntime) -> tuple[bool, str | None]:
    """(all parents done, the failed parent that fails this job or None)."""
    done = True
    for parent in sorted(wf.stored.parents.get(job.name, ())):
        ps = wf.jobs[parent].state
        if ps in _JOB_FAILURES or ps is S.ABORTED:
            if not job.config.ignore_dependent_job_failure:
                return True, parent
        elif ps is not S.COMPLETED:
            done = False
    return done, None


#: Job states that hold tasks (count against ``parallel_jobs``).
_ACTIVE_JOB = frozenset({S.IN_PROGRESS, S.FAILING, S.STOPPING, S.TIMING_OUT})
_FINAL_JOB = frozenset(s for s in S if s.is_final)


def evaluate_workflow(wf: WorkflowRuntime, now: datetime) -> float | None:
    """Advance job and workflow states; return the next time a timer must wake the pass."""
    if wf.state.is_final:
        return None
    now_s = now.timestamp()
    wakeups: list[float] = []
    cfg = wf.stored.config
    if cfg.schedule is not None:
        if cfg.schedule.is_recurring:
            # A recurring template runs nothing itself: its clones do (controller.schedules).
            wf.set_state(S.STOPPED if cfg.target_state == "STOP" else S.IN_PROGRESS, now)
            return None
        at = cfg.schedule.start_time
        if wf.state is S.NOT_STARTED and at is not None and at.timestamp() > now_s:
            return at.timestamp()  # a one-time delayed start
    if wf.state is S.NOT_STARTED:
        wf.set_state(S.IN_PROGRESS, now)
    if cfg.timeout is not None and cfg.terminable and wf.start_time is not None:
        # The workflow timeout runs from its start, also while STOPPED; 0 times out at once.
        deadline = wf.start_time.timestamp() + cfg.timeout
        if deadline <= now_s:
            _end_workflow(wf, S.TIMED_OUT, now, f"timed out after {cfg.timeout}s")
            return None
        wakeups.append(deadline)
    stop = cfg.target_state == "STOP"
    # Only hot jobs: a cold one (not started or finished, nothing out) has nothing to
    # advance; a long queue's finished jobs cost nothing here.
    for job in wf.hot_jobs():
        if job.state not in RESTING or job.delayed:
            _advance_job(job, stop, now, wakeups)
    if not stop:
        _start_ready_jobs(wf, now, wakeups)
    failed = wf.count(_JOB_FAILURES)
    if failed > cfg.failure_threshold and cfg.terminable:
        _end_workflow(wf, S.FAILED, now, f"{failed} job(s) failed")
    elif wf.count(_FINAL_JOB) == len(wf.jobs) and cfg.terminable:
        wf.set_state(S.COMPLETED, now)
    elif stop:
        wf.set_state(S.STOPPING if wf.count(_ACTIVE_JOB) else S.STOPPED, now)
    else:
        wf.set_state(S.IN_PROGRESS, now)
    return min(wakeups) if wakeups else None


def _advance_job(job: JobRuntime, stop: bool, now: datetime, wakeups: list[float]) -> None:
    now_s = now.timestamp()
    _release_delayed(job, now_s, wakeups)
    if (
        job.config.timeout is not None
        and job.start_time is not None
        and job.state in (S.IN_PROGRESS, S.STOPPING, S.STOPPED)
    ):
        deadline = job.start_time.timestamp() + job.config.timeout
        if deadline <= now_s:
            job.info = f"timed out after {job.config.timeout}s"
            job.set_state(S.TIMING_OUT, now)
            _abort_active(job)
        else:
            wakeups.append(deadline)
    if stop and job.state is S.IN_PROGRESS:
        job.set_state(S.STOPPING, now)
    elif not stop and job.state in (S.STOPPING, S.STOPPED):
        job.set_state(S.IN_PROGRESS, now)  # resumed: stopped tasks are pending again
    if job.state is S.IN_PROGRESS and job.given_up > job.config.failure_threshold:
        job.set_state(S.FAILING, now)
        _abort_active(job)
    if job.state is S.FAILING and not job.active:
        job.set_state(S.FAILED, now)
    elif job.state is S.TIMING_OUT and not job.active:
        job.set_state(S.TIMED_OUT, now)
    elif job.state is S.STOPPING and not job.active:
        # STOP wins over completion: even with every task done the job is STOPPED, and
        # becomes COMPLETED after a resume.
        job.set_state(S.STOPPED, now)
    elif (
        job.state is S.IN_PROGRESS
        and job.tasks  # (a targeted job has none until the pass fixes them at its start)
        and job.finished_tasks == job.live_task_count
    ):
        job.set_state(S.COMPLETED, now)


def _queue_verdict(
    wf: WorkflowRuntime, job: JobRuntime, prev: JobRuntime | None
) -> tuple[bool, str | None]:
    """Helix's queue rule: a job is ready once the job before it (``prev``) has *started*; it
    fails when that job FAILED, TIMED_OUT or was ABORTED, unless it ignores dependent
    failure."""
    if prev is None:
        return True, None
    failed = prev.state in _JOB_FAILURES or prev.state is S.ABORTED
    if failed and not job.config.ignore_dependent_job_failure:
        return True, prev.name
    return prev.state is not S.NOT_STARTED, None


def _start_ready_jobs(wf: WorkflowRuntime, now: datetime, wakeups: list[float]) -> None:
    now_s = now.timestamp()
    running = wf.count(_ACTIVE_JOB)
    queue = wf.stored.queue is not None
    order = wf.order
    # A queue's jobs before its frontier have all started: the walk begins there.
    first = wf.frontier() if queue else 0
    prev: JobRuntime | None = wf.jobs[order[first - 1]] if first else None
    for name in order[first:] if first else order:
        job, before = wf.jobs[name], prev
        prev = job
        if job.state is not S.NOT_STARTED:
            continue
        if queue:
            done, failed_parent = _queue_verdict(wf, job, before)
        else:
            done, failed_parent = _parents_verdict(wf, job)
        if failed_parent is not None:
            job.info = f"parent job {failed_parent} failed"
            job.set_state(S.FAILED, now)
            continue
        if not done:
            if queue:
                # Its predecessor has not started (nor failed): neither has any later one,
                # so none of them is ready either (a long queue costs no scan of its tail).
                break
            continue
        if job.ready_time is None:
            job.ready_time = now_s
        start_at = job.ready_time + (job.config.execution_delay or 0.0)
        if job.config.execution_start is not None:
            start_at = max(start_at, job.config.execution_start.timestamp())
        if start_at > now_s:
            wakeups.append(start_at)
            continue
        if running >= wf.stored.config.parallel_jobs:
            continue
        job.set_state(S.IN_PROGRESS, now)
        running += 1


def _end_workflow(wf: WorkflowRuntime, state: TaskState, now: datetime, info: str) -> None:
    """FAILED or TIMED_OUT: running jobs become ABORTED and their attempts are aborted."""
    for job in wf.jobs.values():
        if job.state in _ACTIVE_JOB or job.state is S.STOPPED:
            _abort_active(job)
            job.set_state(S.ABORTED, now)
    wf.set_state(state, now, info=info)


def _release_delayed(job: JobRuntime, now_s: float, wakeups: list[float]) -> None:
    for p, at in sorted(job.delayed.items(), key=lambda kv: kv[1]):
        if at <= now_s:
            del job.delayed[p]
            job.pending.append(p)
        else:
            wakeups.append(at)
            break


def schedule_key(
    wf: WorkflowRuntime, position: int, job: JobRuntime
) -> tuple[int, bool, float, str, int]:
    """A job's place in scheduling order: higher priority first (``JobConfig.priority``, else
    its ``job_type``'s), and within one priority, submission order (workflow start, then
    the job's ``position`` in the workflow's order)."""
    start = wf.start_time
    return (
        -job.config.effective_priority(),
        start is None,
        start.timestamp() if start is not None else 0.0,
        wf.name,
        position,
    )


def is_schedulable(wf: WorkflowRuntime, job: JobRuntime) -> bool:
    """Whether ``job`` has pending tasks that may be assigned now."""
    return wf.state is S.IN_PROGRESS and job.state is S.IN_PROGRESS and bool(job.pending)


def schedulable_jobs(workflows: Iterable[WorkflowRuntime]) -> list[JobRuntime]:
    """Jobs with pending tasks that may be assigned now, in :func:`schedule_key` order."""
    keyed = [
        (schedule_key(wf, wf.position(job.name), job), job)
        for wf in workflows
        for job in wf.hot_jobs()  # a schedulable job is IN_PROGRESS: never cold
        if is_schedulable(wf, job)
    ]
    keyed.sort(key=lambda kv: kv[0])
    return [job for _, job in keyed]


def _pop_roomiest(
    heap: list[tuple[int, str]],
    room: Callable[[str], int],
    per_job: Counter[str],
    limit: int,
) -> str | None:
    """Pop the candidate with the most room now (ties: the first name), or None if even it
    has none. Rooms only shrink while a pass places tasks, so an entry whose stored room is
    out of date is re-pushed with the current one, and the top is then the true best."""
    while heap:
        stored, name = heap[0]
        if per_job[name] >= limit:
            heapq.heappop(heap)  # this job's share of the instance is used up
            continue
        current = room(name)
        if current != -stored:
            heapq.heapreplace(heap, (-current, name))
            continue
        if current <= 0:
            return None
        heapq.heappop(heap)
        return name
    return None


def instance_load(jobs: Iterable[JobRuntime]) -> Counter[str]:
    """Active attempts per instance across ``jobs``."""
    load: Counter[str] = Counter()
    for job in jobs:
        if job.active:  # most jobs of a long queue have none
            load.update(job.active.values())
    return load


def assign(
    jobs: Iterable[JobRuntime],
    instances: Mapping[str, LiveInstance],
    load: Mapping[str, int],
    quotas: Quotas | None = None,
    type_of: Callable[[JobRuntime], str] | None = None,
    type_load: Mapping[tuple[str, str], int] | None = None,
    allowed: Callable[[JobRuntime, int], frozenset[str] | None] | None = None,
    overlap: Overlap | None = None,
) -> list[tuple[JobRuntime, int, LiveInstance]]:
    """Place pending tasks: the eligible instance with the most free quota first.

    Eligible: enabled, carries the job's ``instance_group_tag`` (if any), has free capacity
    and free quota for the job's type, runs fewer than ``num_concurrent_tasks_per_instance``
    of the job's tasks, runs no other job of the workflow when ``overlap`` says the workflow
    forbids it, and is among ``allowed(job, partition)`` when that is not None (a
    targeted task's hosts). Pops what it places from each job's ``pending``; the caller
    records the attempts. A job that cannot place anything is skipped, never blocking the
    next; a task with no allowed instance free waits without blocking its job's others.
    """
    quotas = quotas or Quotas()
    free = {name: inst.capacity - load.get(name, 0) for name, inst in instances.items()}
    # Free slots left anywhere: once none is, no later job can place a task (thousands of
    # waiting jobs cost nothing while the cluster is full).
    # (only enabled instances' slots: a disabled one takes nothing)
    left = sum(max(0, f) for n, f in free.items() if instances[n].enabled)
    typed: dict[tuple[str, str], int] = {}
    placed: list[tuple[JobRuntime, int, LiveInstance]] = []
    for job in jobs:
        if left <= 0:
            break
        qtype = type_of(job) if type_of is not None else DEFAULT
        for name, inst in instances.items():
            if (name, qtype) not in typed:
                used = (type_load or {}).get((name, qtype), 0)
                typed[(name, qtype)] = quotas.share(inst.capacity, qtype) - used
        tag = job.config.instance_group_tag
        blocked = overlap.blocked(job) if overlap is not None else frozenset()
        eligible = sorted(
            n
            for n, i in instances.items()
            if i.enabled and (tag is None or tag in i.tags) and n not in blocked
        )
        per_job = Counter(job.active.values())
        limit = job.config.num_concurrent_tasks_per_instance

        def room(n: str, qtype: str = qtype) -> int:
            return min(free[n], typed[(n, qtype)])

        # The job's candidates by most room, then name: a placement costs O(log n), not a
        # scan of every instance (a pass places thousands of tasks over hundreds of them).
        heap = [(-room(n), n) for n in eligible if per_job[n] < limit]
        heapq.heapify(heap)
        waiting: list[int] = []
        while job.pending:
            p = job.pending.popleft()
            hosts = allowed(job, p) if allowed is not None else None
            if hosts is None:
                best = _pop_roomiest(heap, room, per_job, limit)
            else:
                best = None
                for n in eligible:
                    if (
                        n in hosts
                        and room(n) > 0
                        and per_job[n] < limit
                        and (best is None or room(n) > room(best))
                    ):
                        best = n
            if best is None:
                if hosts is None:
                    job.pending.appendleft(p)  # nothing fits any task of this job now
                    break
                waiting.append(p)  # its hosts are busy or gone; the others may fit
                continue
            placed.append((job, p, instances[best]))
            free[best] -= 1
            left -= 1
            typed[(best, qtype)] -= 1
            per_job[best] += 1
            if overlap is not None:
                overlap.placed(job, best)
            if hosts is None and per_job[best] < limit:
                heapq.heappush(heap, (-room(best), best))
            # (a targeted placement leaves a stale, larger room in the heap: corrected lazily)
        job.pending.extendleft(reversed(waiting))  # in their order, ahead of the rest
    return placed
