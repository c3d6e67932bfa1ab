"""Publishing a completed attempt's value (see :mod:`helixpy.store.results` for the layout).

The participant writes a large value's chunks itself, fenced, before it reports; the head
rides in the state reporter's next multi, in front of the report that says COMPLETED, as an
:class:`~helixpy.participant.reporter.Attachment`. A multi that fails on the head's writes
(a directory another participant created meanwhile, a retry after a lost connection whose
first try landed) asks the attachment to recover: it reads what is really there and either
writes again or, when its head exists already or the job is gone, is dropped.
"""

from __future__ import annotations

import logging
import threading

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError

from helixpy.errors import NotFound
from helixpy.model import TaskPartitionState
from helixpy.participant.attempt import Attempt
from helixpy.participant.reporter import StateReporter
from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Create, Op
from helixpy.store.paths import Paths
from helixpy.store.results import ResultWrite, result_write

log = logging.getLogger(__name__)

#: Directories remembered as existing (a busy participant's jobs); cleared past this.
_KNOWN_CAP = 10_000
_TRIES = 10


def publish_outcome(
    publisher: ResultPublisher,
    reporter: StateReporter,
    attempt: Attempt,
    state: TaskPartitionState,
    info: str,
) -> tuple[TaskPartitionState, str, ResultAttachment | None]:
    """An ended attempt's (state, info) and the result head its report must carry: none
    unless it COMPLETED with a value. A value that cannot be stored (its job was deleted,
    ZooKeeper refused its chunks) fails the attempt rather than complete it without it."""
    if state is not TaskPartitionState.COMPLETED or attempt.value is None:
        return state, info, None
    ctx = attempt.ctx
    where = (ctx.workflow, ctx.job, ctx.task_id, attempt.attempt)
    # A one-task job's result directories cannot exist before its one completed attempt
    # (short of a superseded attempt's late head, which the recovery handles): no reads.
    sole = ctx.job_config.task_count == 1
    try:
        value = attempt.value
        return state, info, publisher.publish(reporter.zk, reporter.writer, where, value, sole)
    except Exception as exc:
        log.warning("%s: result not stored: %r", attempt.key, exc, extra=attempt.fields)
        return TaskPartitionState.TASK_ERROR, f"its result could not be stored: {exc!r}", None


class ResultPublisher:
    """Makes the writes of one participant's results, remembering which result
    directories exist so a steady stream of results costs no reads."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self._known: set[str] = set()
        self._lock = threading.Lock()

    def publish(
        self,
        zk: KazooClient,
        writer: FencedWriter,
        where: tuple[str, str, str, int],
        text: bytes,
        sole: bool = False,
    ) -> ResultAttachment:
        """Write the chunks of the value ``text`` of attempt ``where`` = (workflow, job,
        task id, attempt) and return its head, to go with the COMPLETED report (``sole``:
        the job's only task, so its result directories are taken to be missing). Raises
        :class:`NotFound` when the job is gone, and what the store raises (Fenced, lost
        connection) when the chunks cannot be written."""
        wf, job, task_id, attempt = where
        write = result_write(self.paths, wf, job, task_id, attempt, text)
        missing = list(write.dirs) if sole else self.missing(zk, write.dirs)
        if write.chunks:
            self._write_chunks(zk, writer, write, missing)
            missing = []
        return ResultAttachment(self, write, missing, self.paths.job(wf, job))

    def missing(self, zk: KazooClient, dirs: tuple[str, ...], fresh: bool = False) -> list[str]:
        """The ``dirs`` that do not exist (read unless known to exist, or ``fresh``)."""
        out: list[str] = []
        for path in dirs:
            with self._lock:
                known = path in self._known and not fresh
            if known:
                continue
            if zk.exists(path) is None:
                out.append(path)
            else:
                self.known(path)
        return out

    def known(self, *dirs: str) -> None:
        with self._lock:
            if len(self._known) > _KNOWN_CAP:
                self._known.clear()
            self._known.update(dirs)

    def _write_chunks(
        self, zk: KazooClient, writer: FencedWriter, write: ResultWrite, missing: list[str]
    ) -> None:
        chunks: list[Op] = list(write.chunks)
        for _ in range(_TRIES):
            try:
                writer.commit([*(Create(d) for d in missing), *chunks])
                self.known(*write.dirs)
                return
            except MultiFailed as exc:
                # Some multis may have landed (a long value spans several), a directory may
                # have been made by another participant: look, and write what is missing.
                if not isinstance(exc.error, NodeExistsError | NoNodeError):
                    raise
                if isinstance(exc.error, NoNodeError) and zk.exists(_job_dir(write)) is None:
                    raise NotFound(
                        f"{_job_dir(write)} (deleted while its result was written)"
                    ) from None
                missing = self.missing(zk, write.dirs, fresh=True)
                chunks = [c for c in write.chunks if zk.exists(c.path) is None]
        raise RuntimeError(f"{write.head.path}: chunks not written after {_TRIES} tries")


def _job_dir(write: ResultWrite) -> str:
    return write.dirs[0].rsplit("/", 1)[0]


class ResultAttachment:
    """The head of one result (and the directories it still needs), for the reporter."""

    def __init__(
        self, publisher: ResultPublisher, write: ResultWrite, missing: list[str], job_dir: str
    ) -> None:
        self._publisher = publisher
        self._write = write
        self._job_dir = job_dir
        self._recoveries = 0
        self.ops: list[Op] = [*(Create(d) for d in missing), write.head]

    @property
    def path(self) -> str:
        return self._write.head.path

    def written(self) -> None:
        self._publisher.known(*self._write.dirs)

    def recover(self, zk: KazooClient, failed: Op, error: BaseException) -> bool:
        """The multi failed on ``failed``, one of :attr:`ops`: whether to write again
        (with :attr:`ops` brought up to date) or drop this head."""
        self._recoveries += 1
        if failed == self._write.head and isinstance(error, NodeExistsError):
            return False  # an earlier try landed: a head is never rewritten
        if zk.exists(self._job_dir) is None:
            return False  # the job is gone: nobody reads its results
        if self._recoveries > _TRIES:
            log.error("%s: result dropped after %d failed writes: %r", self.path, _TRIES, error)
            return False
        missing = self._publisher.missing(zk, self._write.dirs, fresh=True)
        self.ops = [*(Create(d) for d in missing), self._write.head]
        return True
