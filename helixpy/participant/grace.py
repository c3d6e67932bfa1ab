"""Cancel grace: an attempt still running ``cancel_grace`` seconds after its cancel.

A cancel (stop, timeout, delete, disable, abort, move) sets ``ctx.cancelled`` and asks the
task to return. A task that ignores it would keep its job STOPPING for as long as it runs,
Helix's most reported pain. So the participant puts a :class:`GraceEnd` on its deadline
heap at cancel time; when it fires and the attempt has not ended:

- a **process-isolated** attempt's worker process gets SIGTERM, then SIGKILL
  (:meth:`ProcessTask.terminate <helixpy.participant.isolation.ProcessTask.terminate>`); the
  attempt ends when the process does, in the state its cancel reason gives;
- a **thread** attempt cannot be killed, so it is *abandoned*: reported at once in the state
  its cancel reason gives, its locks released, its late result ignored. Its worker thread is
  still busy, so its slot is too: :class:`CancelGrace` counts it, the participant advertises
  the count in its live node (the controller places ``capacity - abandoned`` attempts
  there), logs it, and exports it as ``helixpy_participant_abandoned``, until the thread
  really ends.

Which happens first, the attempt ending or the participant giving up, is decided once,
under the attempt's lock (``Attempt.ended`` / ``Attempt.abandoned``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from helixpy.model import TaskPartitionState, TaskResult, TaskStatus
from helixpy.participant.attempt import Attempt, CancelReason, outcome
from helixpy.participant.isolation import ProcessTask
from helixpy.participant.timeouts import Deadlines

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GraceEnd:
    """A deadline-heap item: ``attempt``'s cancel grace is over."""

    attempt: Attempt


def abandoned_outcome(attempt: Attempt) -> tuple[TaskPartitionState, str]:
    """The state and info an abandoned attempt is reported with: its cancel reason's."""
    grace = attempt.ctx.job_config.cancel_grace
    why = attempt.reason.value if attempt.reason is not None else "cancel"
    info = (
        f"abandoned: still running {grace:g}s after its cancel ({why}, cancel_grace); "
        "its thread is left to end and its result will be ignored"
    )
    return outcome(TaskResult(TaskStatus.CANCELED, info), attempt.reason)


class CancelGrace:
    """The participant's cancel graces and the thread attempts it abandoned.

    ``deadlines`` is the participant's deadline heap (its thread calls :meth:`grace_end`
    through the participant's dispatcher); ``release(attempt)`` frees an attempt's locks and
    deadlines; ``retire(attempt, state, info)`` takes an abandoned attempt out of the running
    ones and reports it (unless nobody wants its result); ``changed()`` tells the
    participant the abandoned count changed (it advertises it).
    """

    def __init__(
        self,
        deadlines: Deadlines,
        release: Callable[[Attempt], None],
        retire: Callable[[Attempt, TaskPartitionState, str], None],
        changed: Callable[[], None],
    ) -> None:
        self._deadlines = deadlines
        self._release = release
        self._retire = retire
        self._changed = changed
        self._lock = threading.Lock()
        self._abandoned: dict[int, tuple[Attempt, float]] = {}

    def cancel(self, attempt: Attempt, reason: CancelReason) -> None:
        """Cancel ``attempt``; its first cancel starts its ``cancel_grace``."""
        if not attempt.cancel(reason):
            return
        grace = attempt.ctx.job_config.cancel_grace
        token = self._deadlines.add(time.monotonic() + grace, GraceEnd(attempt))
        with attempt.lock:
            if attempt.ended:
                self._deadlines.discard(token)
            else:
                attempt.grace_token = token

    def grace_end(self, attempt: Attempt) -> None:
        """The attempt's grace is over: end its worker process, or abandon its thread."""
        with attempt.lock:
            if attempt.ended:
                return
            task = attempt.task
            if not isinstance(task, ProcessTask):
                attempt.abandoned = True
        grace = attempt.ctx.job_config.cancel_grace
        if isinstance(task, ProcessTask):
            log.warning(
                "%s attempt %d still running %gs after its cancel: ending its worker process",
                attempt.key,
                attempt.attempt,
                grace,
                extra=attempt.fields,
            )
            task.terminate()  # its run returns once the process is gone, and is reported
            return
        self._release(attempt)
        with self._lock:
            self._abandoned[id(attempt)] = (attempt, time.monotonic())
        log.warning(
            "%s attempt %d abandoned: still running %gs after its cancel (%s); its slot "
            "stays busy until its thread ends (abandoned now: %s)",
            attempt.key,
            attempt.attempt,
            grace,
            attempt.reason.value if attempt.reason is not None else "",
            ", ".join(self.keys()),
            extra=attempt.fields,
        )
        self._retire(attempt, *abandoned_outcome(attempt))
        self._changed()

    def ended(self, attempt: Attempt) -> bool:
        """The attempt's work is done. True when it had been abandoned: its result is to be
        ignored (it was reported when abandoned), and its slot is free again."""
        with attempt.lock:
            attempt.ended = True
            if not attempt.abandoned:
                return False
        with self._lock:
            _, since = self._abandoned.pop(id(attempt), (attempt, time.monotonic()))
        log.warning(
            "%s attempt %d: its abandoned thread ended %.1fs later; its result is ignored, "
            "its slot free again",
            attempt.key,
            attempt.attempt,
            time.monotonic() - since,
            extra=attempt.fields,
        )
        self._changed()
        return True

    def keys(self) -> list[str]:
        """The task keys of the abandoned attempts whose threads still run."""
        with self._lock:
            return sorted(a.key for a, _ in self._abandoned.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._abandoned)
