"""Replies: their shape (``reply``), and the stored ones (``CONTROLLER/REQUESTS/<id>``):
which exist, and pruning them.

Every accepted mutation stores its reply in the multi that applies it, so a driver's retry
of the same request id gets the stored answer instead of applying twice. A driver retries
for at most its timeout, so a reply older than ``REQUEST_TTL`` is never asked for again and
is deleted. The leader keeps the replies it wrote this term in write order, so a prune
touches only the ones that expired (its cost follows recent work, not the listing of every
reply of the last hour). The replies written before this term are listed once per term on
a thread of their own (one read; an hour of busy traffic is tens of thousands of nodes,
which must not hold up the takeover's first pass), dated at the listing, and join the log
when that is done.
"""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections import deque

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException

from helixpy.store.fencing import FencedWriter, MultiFailed
from helixpy.store.ops import Delete
from helixpy.store.paths import Paths

log = logging.getLogger(__name__)

#: seconds a stored reply is kept (longer than any driver's retry window)
REQUEST_TTL = 3600.0


class ReplyLog:
    """The stored replies of one leadership term, oldest first (owned by its pipeline)."""

    def __init__(self, zk: KazooClient, paths: Paths, writer: FencedWriter) -> None:
        self._zk = zk
        self._paths = paths
        self._writer = writer
        #: (wall-clock seconds, path) of each reply written, in write order; a reply whose
        #: write failed is in here too and is skipped by the prune's existence check
        self._written: deque[tuple[float, str]] = deque()
        #: the earlier terms' replies, (listing time, path), once listed
        self._earlier: list[tuple[float, str]] | None = None
        self._lister: threading.Thread | None = None

    def written(self, path: str) -> None:
        """Note a reply op about to be committed (call when the op is made)."""
        self._written.append((time.time(), path))

    def prune(self, max_age: float = REQUEST_TTL) -> int:
        """Delete the stored replies older than ``max_age`` seconds; returns how many."""
        self._merge_earlier_terms()
        cutoff = time.time() - max_age
        due: list[str] = []
        while self._written and self._written[0][0] < cutoff:
            due.append(self._written.popleft()[1])
        if not due:
            return 0
        # Pipelined: a reply whose multi failed was never created; a Delete of it would
        # fail the whole prune.
        reads = [(path, self._zk.exists_async(path)) for path in dict.fromkeys(due)]
        ops = [Delete(path) for path, read in reads if read.get() is not None]
        if not ops:
            return 0
        try:
            self._writer.commit(ops)
        except MultiFailed as exc:
            # Only the leader deletes replies, so this is a force delete of the cluster's
            # nodes; the next term lists what is left.
            log.info("reply pruning raced: %s", exc)
            return 0
        return len(ops)

    def listed(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` s) until the earlier terms' replies are listed; the
        next prune merges them. False if the listing is not done (or not started)."""
        if self._lister is None:
            return False
        self._lister.join(timeout)
        return not self._lister.is_alive()

    def _merge_earlier_terms(self) -> None:
        """Start listing the earlier terms' replies, or merge them in once listed."""
        if self._lister is None:
            self._lister = threading.Thread(
                target=self._list_earlier_terms, name="reply-lister", daemon=True
            )
            self._lister.start()
        elif self._earlier is not None and not self._lister.is_alive():
            mine = {path for _, path in self._written}
            earlier = [item for item in self._earlier if item[1] not in mine]
            self._written = deque(heapq.merge(earlier, self._written))
            self._earlier = []

    def _list_earlier_terms(self) -> None:
        """The replies already stored (earlier leaders'), all dated now.

        Runs on its own thread: reads only, and a failed read leaves the rest to the next
        term (a stale reply is harmless, only kept longer). One listing, no read per reply:
        100,000 replies' creation times were 100,000 reads queued on the leader's one
        ZooKeeper connection ahead of its first writes (a 1.8 s takeover). Dated at the
        listing, an earlier term's reply is kept up to ``REQUEST_TTL`` longer than needed.
        """
        try:
            names = self._zk.get_children(self._paths.requests)
        except KazooException as exc:
            log.info("listing stored replies failed (%r); the next term lists them", exc)
            names = []
        now = time.time()
        self._earlier = [(now, self._paths.request(n)) for n in sorted(names)]


#: the code of an accepted command's reply
OK = "OK"


def reply(code: str, message: str = "", **extra: str) -> dict[str, str]:
    """A command's reply: its code (OK, INVALID_CONFIG, NOT_FOUND ...), a message, and
    extra fields (``field`` and ``rule`` for bad input)."""
    return {"code": code, "message": message, **extra}
