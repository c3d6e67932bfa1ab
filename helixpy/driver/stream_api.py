"""The TaskDriver's methods for streaming jobs; the work is done in :mod:`helixpy.driver.streams`.

Appends write straight to ZooKeeper rather than through the leader controller (see there
for why); reads of a stream sync first, like every other read of the driver.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

from helixpy.driver import streams
from helixpy.driver.base import DriverBase, NoNode
from helixpy.driver.base import job_name as _job
from helixpy.driver.base import workflow_name as _wf
from helixpy.errors import InvalidConfig, NotFound
from helixpy.store.paths import Paths
from helixpy.store.plan import Plan, run_plan

_T = TypeVar("_T")
_P = ParamSpec("_P")


class StreamMethods(DriverBase):
    """Add splits and barriers to streaming jobs, end them, read their results."""

    def add_splits(
        self, name: str, job: str, splits: Sequence[Any], *, key: Callable[[Any], Any] | None = None
    ) -> int:
        """Append a batch of JSON-serialisable splits to streaming job ``job`` (one znode);
        its sequence number. Each split goes to one slot: by a stable hash of ``key(split)``
        when given, else round-robin."""
        # Checked before copying: list("abc") would make three splits of a string.
        streams.check_splits(splits)
        if key is not None and not callable(key):
            raise InvalidConfig("key", f"must be a function of a split (got {type(key).__name__})")
        return self._stream(name, job, False, streams.add_splits, list(splits), key)

    def request_barrier(self, name: str, job: str) -> streams.Barrier:
        """A barrier after every split added so far (the pending one when no split came
        since it was requested); ``.wait(timeout)`` returns the checkpoint."""
        seq = self._stream(name, job, False, streams.request_barrier)
        return streams.Barrier(self._zk, self._paths, self._watcher, name, job, seq)

    def end_stream(self, name: str, job: str) -> streams.Barrier:
        """No more splits: after a final barrier (returned) every slot closes and the job
        completes."""
        seq = self._stream(name, job, False, streams.end_stream)
        return streams.Barrier(self._zk, self._paths, self._watcher, name, job, seq)

    def get_split_results(
        self, name: str, job: str, *, since_barrier: int | None = None
    ) -> list[streams.SplitResult]:
        """What ``process`` returned, once per split, for every completed barrier (after
        ``since_barrier``) still kept, in the order the splits were added. A stream keeps
        its newest ``stream_checkpoints_keep`` checkpoints (cluster setting, default 100)
        and their results: read them within that many barriers."""
        if since_barrier is not None and (
            isinstance(since_barrier, bool) or not isinstance(since_barrier, int)
        ):
            raise InvalidConfig(
                "since_barrier", f"must be a barrier's sequence number (got {since_barrier!r})"
            )
        return self._stream(name, job, True, streams.split_results, since_barrier)

    def _stream(
        self,
        name: str,
        job: str,
        fresh: bool,
        op: Callable[Concatenate[Paths, str, str, _P], Plan[_T]],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T:
        """``op`` on a stream; ``fresh`` syncs first (reads). Appends skip that round trip:
        their multi checks the stream's state on the ZooKeeper leader anyway."""
        # Names are checked for appends too: they become the paths the multi writes.
        path = self._paths.stream(_wf(name), _job(job))
        try:
            return self._read(
                path if fresh else "",
                "",
                lambda zk, paths: run_plan(zk, op(paths, name, job, *args, **kwargs)),
            )
        except NoNode:
            # No STREAM tree: say why (not a streaming job, or no such job); else it was
            # deleted under our feet.
            path = self._paths.job(_wf(name), _job(job))
            self._read(path, "", streams.stream_slots, name, job)
            raise NotFound(
                f"job {name}/{job} does not exist in cluster {self._paths.cluster}"
            ) from None
