"""Cancel grace decisions: abandon a thread attempt once, ignore its late end, and never
abandon an attempt that ended first. Real Deadlines; the participant's callbacks are fakes."""

from __future__ import annotations

import threading

from helixpy.model import JobConfig, TaskPartitionState
from helixpy.participant.attempt import Attempt, CancelReason
from helixpy.participant.grace import CancelGrace
from helixpy.participant.registry import TaskContext
from helixpy.participant.timeouts import Deadlines

P = TaskPartitionState


def attempt(grace: float) -> Attempt:
    cfg = JobConfig(command="Stubborn", num_tasks=1, cancel_grace=grace)
    ctx = TaskContext(
        workflow="wf",
        job="j",
        task_id="0",
        partition=0,
        attempt=1,
        instance="i",
        incarnation=1,
        job_config=cfg,
        task_config={},
        command="Stubborn",
    )
    return Attempt(key="wf/j/0", attempt=1, ctx=ctx)


class Participant:
    """What the participant does with the decisions: records them."""

    def __init__(self) -> None:
        self.retired: list[tuple[str, P, str]] = []
        self.released: list[str] = []
        self.changes = 0
        self.retired_event = threading.Event()

    def release(self, a: Attempt) -> None:
        self.released.append(a.key)

    def retire(self, a: Attempt, state: P, info: str) -> None:
        self.retired.append((a.key, state, info))
        self.retired_event.set()

    def changed(self) -> None:
        self.changes += 1


def make() -> tuple[Participant, CancelGrace, Deadlines]:
    p = Participant()
    deadlines = Deadlines(lambda item: grace.grace_end(item.attempt))  # type: ignore[attr-defined]
    grace = CancelGrace(deadlines, p.release, p.retire, p.changed)
    deadlines.start()
    return p, grace, deadlines


def test_a_thread_attempt_past_its_grace_is_abandoned_in_its_cancels_state() -> None:
    p, grace, deadlines = make()
    try:
        # Given a thread attempt cancelled by a stop, with a 0 s grace
        a = attempt(0.0)
        grace.cancel(a, CancelReason.STOP)
        grace.cancel(a, CancelReason.TIMEOUT)  # a second cancel neither wins nor re-arms
        # When the grace passes, Then it is retired STOPPED, its locks released, counted
        assert p.retired_event.wait(5.0)
        [(key, state, info)] = p.retired
        assert (key, state) == ("wf/j/0", P.STOPPED)
        assert "abandoned" in info and "STOP" in info
        assert p.released == ["wf/j/0"] and len(grace) == 1 and grace.keys() == ["wf/j/0"]
        # When its thread ends later, Then its result is to be ignored and its slot is free
        assert grace.ended(a) is True
        assert len(grace) == 0 and p.changes == 2
    finally:
        deadlines.close()


def test_an_attempt_that_ends_within_its_grace_is_never_abandoned() -> None:
    p, grace, deadlines = make()
    try:
        a = attempt(0.05)
        grace.cancel(a, CancelReason.TIMEOUT)
        assert grace.ended(a) is False  # its result counts
        # the grace's end finds it ended: nothing is retired
        grace.grace_end(a)
        assert p.retired == [] and len(grace) == 0 and p.changes == 0
    finally:
        deadlines.close()


def test_an_uncancelled_attempt_has_no_grace() -> None:
    _p, grace, deadlines = make()
    try:
        a = attempt(0.0)
        assert len(deadlines) == 0
        assert grace.ended(a) is False
    finally:
        deadlines.close()
