"""Recurring workflows and queues: a template cloned into ``<name>_<yyyyMMddTHHmmss>`` each
period. A recurring queue's clone holds the jobs enqueued to it so far, in queue order; it is
a terminable queue (Helix clones a queue so), which completes when its jobs end.

At each period boundary (the schedule's start plus a whole number of intervals) the leader
clones the template, but only once the previous clone has finished; a boundary that passes
while a clone still runs is skipped. The template's context records its clones (at most
:data:`HISTORY`; older ones are deleted) and the last boundary scheduled, so a new leader
neither repeats nor loses a period.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from helixpy.errors import AlreadyExists
from helixpy.store.records import StoredWorkflow

if TYPE_CHECKING:
    from helixpy.controller.pipeline import Pipeline
    from helixpy.controller.runtime import WorkflowRuntime

log = logging.getLogger(__name__)

#: How many clones of a template are kept (Helix keeps 20).
HISTORY = 20
#: ``<template>_`` plus ``yyyyMMddTHHmmss`` must still be a valid name.
CLONE_SUFFIX_LEN = 16


def clone_name(template: str, boundary: float) -> str:
    return f"{template}_{datetime.fromtimestamp(boundary, UTC):%Y%m%dT%H%M%S}"


def run_schedules(p: Pipeline, now: datetime, templates: Iterable[WorkflowRuntime]) -> float | None:
    """Create the clones of ``templates`` that are due; return when the next boundary
    comes."""
    wake: float | None = None
    now_s = now.timestamp()
    for wf in list(templates):
        sched = wf.stored.config.schedule
        if sched is None or sched.recurrence_interval is None:
            continue
        if wf.stored.config.target_state == "STOP":
            continue  # a stopped template schedules nothing until resumed
        start = (
            sched.start_time.timestamp()
            if sched.start_time is not None
            else (wf.start_time.timestamp() if wf.start_time is not None else now_s)
        )
        interval = sched.recurrence_interval
        if now_s < start:
            wake = start if wake is None else min(wake, start)
            continue
        boundary = start + math.floor((now_s - start) / interval) * interval
        upcoming = boundary + interval
        wake = upcoming if wake is None else min(wake, upcoming)
        if wf.last_boundary is not None and boundary <= wf.last_boundary:
            continue
        last = p.workflows.get(wf.scheduled[-1]) if wf.scheduled else None
        if last is not None and not last.state.is_final:
            continue  # the previous clone still runs: this period is skipped
        name = clone_name(wf.name, boundary)
        if name in wf.scheduled:
            # Two boundaries within one second (sub-second intervals) share a name: the
            # period is taken by the clone already made.
            wf.last_boundary = boundary
            wf.context_dirty = True
            p.work.touch(wf.name)
            continue
        config = replace(wf.stored.config, schedule=None, target_state="START")
        if wf.stored.queue is not None:
            # A recurring queue's run, as Helix clones one: its jobs in queue order, run by
            # the queue's rules, but terminable: it completes (or fails) when they end.
            config = replace(config, terminable=True)
        stored = StoredWorkflow(
            name=name,
            config=config,
            parents=wf.stored.parents,
            uid=uuid.uuid4().hex,
            queue=wf.stored.queue,
        )
        try:
            p.commands.create_workflow(stored, {n: j.config for n, j in wf.jobs.items()}, None)
        except AlreadyExists:
            log.info("clone %s exists already (written before a leader change)", name)
        log.info("template %s scheduled %s", wf.name, name)
        p.work.touch(wf.name)
        wf.scheduled.append(name)
        wf.last_boundary = boundary
        wf.context_dirty = True
        while len(wf.scheduled) > HISTORY:
            oldest = wf.scheduled.pop(0)
            p.workflows.pop(oldest, None)
            p.work.forget(oldest)
            p.removal.remove_workflow(oldest)
    return wake
