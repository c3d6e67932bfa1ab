"""The driver's state polls: wait on ZooKeeper watches until a workflow or job reaches a state.

Kept apart from :mod:`helixpy.driver.driver` so that the driver stays a list of thin public
methods. A :class:`StatePoller` holds what the polls need from the driver (its ZooKeeper
client, paths, shared :class:`Watcher` and a few callables) and never imports the driver:
the callables are how it reads through the driver's own retrying, syncing reads.

Every wait takes the watcher's generation before arming and reading, so an event landing in
between ends the wait at once; and waits at most ``SAFETY_WAKE`` seconds before re-reading,
for a watch lost while the session reconnects.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeGuard

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.driver.leader import SAFETY_WAKE as _SAFETY_WAKE
from helixpy.driver.leader import TRANSIENT_ZK as _TRANSIENT_ZK
from helixpy.driver.leader import Watcher
from helixpy.errors import CorruptNode, InvalidConfig, NotFound, PollTimeout
from helixpy.model import JobContext, TaskState, WorkflowConfig, WorkflowContext
from helixpy.store.client import forget_data_watch
from helixpy.store.codec import decode
from helixpy.store.paths import Paths
from helixpy.store.plan import Exists, Get, Plan, run_plan

#: Reads one batch wait keeps in flight at once.
_BATCH_READS = 1000

#: Reads the state out of a context znode's payload.
StateOf = Callable[[bytes], TaskState]


def poll_timeout(
    what: str, cluster: str, wanted: Sequence[str], timeout: float, seen: str | None
) -> PollTimeout:
    """The error of a poll for ``wanted`` that did not see it within ``timeout`` (both
    drivers'): it names the last state seen."""
    return PollTimeout(
        f"{what} in cluster {cluster} did not reach {' or '.join(wanted)} within "
        f"{timeout:g}s; last state seen: {seen or 'none (not visible yet)'}",
        seen,
    )


class StatePoller:
    """Waits for workflow and job states, and for workflows to be gone, on one driver's watches.

    ``check_open`` raises once the driver is closed; ``sync`` brings the ZooKeeper server up
    to date for a path; ``get_workflow_config`` / ``get_workflow_context`` are the driver's
    reads (raising :class:`NotFound` for an absent workflow), used where a poll needs a whole
    record rather than one state.
    """

    def __init__(
        self,
        zk: KazooClient,
        paths: Paths,
        watcher: Watcher,
        *,
        check_open: Callable[[], None],
        sync: Callable[[str], None],
        get_workflow_config: Callable[[str], WorkflowConfig],
        get_workflow_context: Callable[[str], WorkflowContext],
    ) -> None:
        self._zk = zk
        self._paths = paths
        self._watcher = watcher
        self._check_open = check_open
        self._sync = sync
        self._get_workflow_config = get_workflow_config
        self._get_workflow_context = get_workflow_context

    def workflow_state(
        self, name: str, states: tuple[TaskState | str, ...], timeout: float
    ) -> TaskState:
        """Wait until workflow ``name`` (a checked name) is in one of ``states``."""
        path = self._paths.workflow_context(name)
        return self.poll(f"workflow {name}", path, workflow_state, states, timeout)

    def job_state(
        self, name: str, job: str, states: tuple[TaskState | str, ...], timeout: float
    ) -> TaskState:
        """Wait until job ``job`` of workflow ``name`` (checked names) is in one of
        ``states``; on a recurring template, the job of its last clone."""
        self._check_open()
        wanted_states(states)
        deadline = time.monotonic() + check_timeout(timeout)
        target = self.last_clone_or_self(name, deadline)
        path = self._paths.job_context(target, job)
        left = max(deadline - time.monotonic(), 0.0)
        return self.poll(f"job {target}/{job}", path, job_state, states, left)

    def last_clone_or_self(self, name: str, deadline: float) -> str:
        """The workflow a job poll on ``name`` follows: the last clone of a recurring
        template (waiting until ``deadline`` for the first), else ``name`` itself."""
        try:
            schedule = self._get_workflow_config(name).schedule
        except NotFound:
            return name  # not visible yet: polled as "not yet" like any workflow
        if schedule is None or not schedule.is_recurring:
            return name
        path = self._paths.workflow_context(name)
        with self._watcher.watching(path):
            while True:
                generation = self._watcher.generation(path)
                self._watcher.arm(path)
                last = self._get_workflow_context(name).last_scheduled_workflow
                if last is not None:
                    return last
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PollTimeout(f"template {name} scheduled no workflow in time", None)
                self._watcher.wait(generation, min(left, _SAFETY_WAKE), path)

    def wait_gone(self, name: str, timeout: float) -> None:
        """Wait until no znode of workflow ``name`` is left; :class:`PollTimeout` naming the
        state last seen (``None`` when its context is already gone) after ``timeout``."""
        deadline = time.monotonic() + check_timeout(timeout)
        path = self._paths.workflow(name)
        with self._watcher.watching(path):
            while True:
                generation = self._watcher.generation(path)
                # Disconnected, kazoo would block on the sync past the timeout: wait for
                # the session event (or the safety wake) instead.
                if self._zk.connected:
                    try:
                        self._sync(path)
                        if not self._watcher.arm(path):
                            return
                    except _TRANSIENT_ZK:
                        pass  # reconnecting: the session event or the safety wake retries
                left = deadline - time.monotonic()
                if left <= 0:
                    last: str | None
                    try:
                        last = self._get_workflow_context(name).state.value
                    except NotFound:
                        last = None
                    raise not_deleted(self._paths, name, timeout, last)
                self._watcher.wait(generation, min(left, _SAFETY_WAKE), path)

    def poll(
        self,
        what: str,
        path: str,
        state_of: StateOf,
        states: tuple[TaskState | str, ...],
        timeout: float,
    ) -> TaskState:
        """Wait until the context at ``path`` is in one of ``states``; return the one seen.

        A missing node counts as "not yet". ``what`` names the thing in the
        :class:`PollTimeout`, which carries the last state seen.
        """
        self._check_open()
        wanted = wanted_states(states)
        check_timeout(timeout)
        with self._watcher.watching(path):
            return self._poll(what, path, state_of, wanted, time.monotonic() + timeout, timeout)

    def _poll(
        self,
        what: str,
        path: str,
        state_of: StateOf,
        wanted: tuple[TaskState, ...],
        deadline: float,
        timeout: float,
    ) -> TaskState:
        last: TaskState | None = None
        synced = False
        while True:
            # Take the generation before arming and reading: an event landing in between
            # then ends the wait below at once.
            generation = self._watcher.generation(path)
            state = None
            if self._zk.connected:
                try:
                    if not synced:
                        self._sync(path)
                        synced = True
                    state = self._read_state(path, state_of)
                except _TRANSIENT_ZK:
                    pass  # reconnecting: the session event or the safety wake retries
            if state is not None:
                last = state
                if state in wanted:
                    return state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                seen = last.value if last is not None else None
                raise poll_timeout(what, self._paths.cluster, wanted, timeout, seen)
            self._watcher.wait(generation, min(remaining, _SAFETY_WAKE), path)

    def workflow_states(
        self, names: Sequence[str], states: tuple[TaskState | str, ...], timeout: float
    ) -> dict[str, TaskState]:
        """Wait until every workflow of ``names`` (checked names) is in one of ``states``.

        One ``sync`` for the whole wait, the reads pipelined, and after that one read per
        change of a workflow still waited for: the cost of waiting on 20,000 workflows is
        about one read each, not the two round trips and a thread of a poll each.
        """
        self._check_open()
        wanted = wanted_states(states)
        check_timeout(timeout)
        deadline = time.monotonic() + timeout
        by_path = {self._paths.workflow_context(n): n for n in names}
        changed: queue.SimpleQueue[str] = queue.SimpleQueue()
        woken = threading.Event()

        def fire(event: Any) -> None:  # kazoo's thread: never block here
            path = getattr(event, "path", None)
            if isinstance(path, str):
                changed.put(path)
            woken.set()

        left, reached, last = set(by_path), {}, {}
        read, synced = set(left), False
        # Watches live through a reconnect (kazoo sets them again), but a session change
        # may lose them: then every workflow still waited for is read again. (Not a timed
        # re-read of all of them: with 20,000 waited for that would be 20,000 reads a
        # second.)
        sessions = self._watcher.sessions()
        try:
            while True:
                if read and self._zk.connected:
                    try:
                        if not synced:
                            self._sync(self._paths.workflows)
                            synced = True
                        found, appeared = run_plan(
                            self._zk, states_plan(sorted(read), workflow_state), watch=fire
                        )
                        for path, state in found:
                            last[path] = state
                            if state in wanted:
                                left.discard(path)
                                reached[by_path[path]] = state
                        read = set(appeared)  # created between the two reads: read next
                    except _TRANSIENT_ZK:
                        pass  # reconnecting: read them all again shortly
                if not left:
                    return {n: reached[n] for n in names}
                now = time.monotonic()
                if now >= deadline:
                    raise PollTimeout(batch_timeout(self._paths, by_path, left, last, timeout))
                woken.wait(min(deadline - now, _SAFETY_WAKE))
                woken.clear()
                while not changed.empty():
                    path = changed.get_nowait()
                    if path in left:
                        read.add(path)
                if self._watcher.sessions() != sessions:
                    sessions = self._watcher.sessions()
                    read = set(left)
        finally:
            for path in by_path:
                forget_data_watch(self._zk, path, fire)

    def _read_state(self, path: str, state_of: StateOf) -> TaskState | None:
        # One read that also arms the watch (a data watch fires on change and deletion);
        # only a node not there yet costs an exists-watch, which fires on its creation, so
        # a workflow not written yet wakes us the moment the controller writes it.
        while True:
            try:
                data, _ = self._zk.get(path, watch=self._watcher.fire)
                break
            except NoNodeError:
                if not self._watcher.arm(path):
                    return None
                # created between the two reads: read it now
        return state_at(path, data, state_of)


def state_at(path: str, data: bytes, state_of: StateOf) -> TaskState:
    """The state in the context payload ``data`` at ``path``; :class:`CorruptNode` when
    it has none that can be read."""
    try:
        return state_of(data)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CorruptNode(f"{path}: no readable state: {exc}") from exc


def batch_timeout(
    paths: Paths,
    by_path: dict[str, str],
    left: set[str],
    last: dict[str, TaskState],
    timeout: float,
) -> str:
    """The message of a batch wait that timed out: how many workflows of ``by_path``
    (context path -> name) are ``left``, naming a few with the ``last`` state seen."""
    shown = sorted(left)[:5]
    seen = ", ".join(
        f"{by_path[p]} ({last[p].value if p in last else 'not visible yet'})" for p in shown
    )
    more = f" and {len(left) - len(shown)} more" if len(left) > len(shown) else ""
    return (
        f"{len(left)} of {len(by_path)} workflows in cluster {paths.cluster} did not reach the "
        f"states waited for within {timeout:g}s: {seen}{more}"
    )


def not_deleted(paths: Paths, name: str, timeout: float, last: str | None) -> PollTimeout:
    """The error of a wait for workflow ``name`` to be gone that ran out of time."""
    return PollTimeout(
        f"workflow {name} in cluster {paths.cluster} was not deleted within {timeout}s; "
        f"last state seen: {last}",
        last,
    )


def states_plan(
    paths: Sequence[str], state_of: StateOf
) -> Plan[tuple[list[tuple[str, TaskState]], list[str]]]:
    """The state at each of ``paths`` that exists, each read arming the runner's watch,
    and the paths created between a read that found nothing and the exists-watch armed
    then (to read next). Read ``_BATCH_READS`` at a time (a plan, see
    :mod:`helixpy.store.plan`: both drivers' batch polls run it)."""
    found: list[tuple[str, TaskState]] = []
    appeared: list[str] = []
    for i in range(0, len(paths), _BATCH_READS):
        chunk = paths[i : i + _BATCH_READS]
        datas = yield [Get(p, watch=True) for p in chunk]
        missing = [p for p, data in zip(chunk, datas, strict=True) if data is None]
        for path, data in zip(chunk, datas, strict=True):
            if data is not None:
                found.append((path, state_at(path, data, state_of)))
        if missing:
            exist = yield [Exists(p, watch=True) for p in missing]
            appeared += [p for p, there in zip(missing, exist, strict=True) if there]
    return found, appeared


def is_seconds(value: object) -> TypeGuard[int | float]:
    """Whether ``value`` is a plain number of seconds (a bool is an int, but not that)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_timeout(timeout: object) -> float:
    """``timeout`` as seconds to wait; :class:`InvalidConfig` naming it unless a number >= 0."""
    if isinstance(timeout, int | float) and not isinstance(timeout, bool) and timeout >= 0:
        return float(timeout)
    raise InvalidConfig("timeout", f"must be a number of seconds >= 0: {timeout!r}")


def workflow_state(data: bytes) -> TaskState:
    """The state in a workflow CONTEXT payload (the rest of the context is not parsed)."""
    body = decode(data) or {}
    return TaskState(body.get("state", TaskState.NOT_STARTED.value))


def job_state(data: bytes) -> TaskState:
    """The state in a job CONTEXT payload."""
    # The job's CONTEXT header alone: its task chunks may be many and are not needed here.
    return TaskState(JobContext.header_from_dict(decode(data) or {})["state"])


def wanted_states(states: tuple[TaskState | str, ...]) -> tuple[TaskState, ...]:
    """``states`` as TaskStates, duplicates dropped; :class:`InvalidConfig` if empty or if
    one is not a state (the message lists the known ones)."""
    if not states:
        raise InvalidConfig("states", "name at least one TaskState to wait for")
    try:
        return tuple(dict.fromkeys(TaskState(s) for s in states))
    except ValueError as exc:
        known = ", ".join(t.value for t in TaskState)
        raise InvalidConfig("states", f"{exc} (known: {known})") from None
