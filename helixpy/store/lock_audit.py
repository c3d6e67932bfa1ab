"""A lock resource's audit trail, ``LOCKS/<resource>/AUDIT/a-<seq>``, and its retention.

Every grant, join, revoke, release and reclaim is one node, created in the same multi as
the change it records (the multi is conditioned on the resource's version, so writers are
serialised and the sequence numbers are ours: the resource body keeps
``audit: {next, first, first_t}``, the next number, the oldest kept and its time when
known). The same multi deletes what retention no longer keeps: beyond the newest
``lock_audit_keep`` entries (cluster setting, default 10,000), or older than
``lock_audit_max_age`` seconds (default 7 days). A write never deletes the entries it
creates, so the newest events stay readable; at most :data:`PRUNE_PER_WRITE` go per write,
so a long-idle trail shrinks over a few writes rather than in one huge multi. A trail
written before retention existed (kazoo sequential names, contiguous from 0) is listed
once and continued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.store.codec import decode, encode
from helixpy.store.ops import Create, Delete, Op

#: Defaults of the cluster settings ``lock_audit_keep`` and ``lock_audit_max_age``.
AUDIT_KEEP = 10_000
AUDIT_MAX_AGE = 7 * 86_400.0
#: The most audit entries one write deletes.
PRUNE_PER_WRITE = 64


@dataclass(frozen=True)
class Retention:
    """How much of each resource's audit trail is kept."""

    keep: int = AUDIT_KEEP
    max_age: float = AUDIT_MAX_AGE

    @classmethod
    def of(cls, cluster_config: Mapping[str, Any]) -> Retention:
        return cls(
            int(cluster_config.get("lock_audit_keep", AUDIT_KEEP)),
            float(cluster_config.get("lock_audit_max_age", AUDIT_MAX_AGE)),
        )


def entry_path(path: str, seq: int) -> str:
    return f"{path}/AUDIT/a-{seq:010d}"


def _bounds(zk: KazooClient, path: str) -> dict[str, Any]:
    """Where a trail stands, from its children (a first write, or a trail to re-scan)."""
    try:
        seqs = sorted(int(name[2:]) for name in zk.get_children(f"{path}/AUDIT"))
    except NoNodeError:
        seqs = []
    nxt = seqs[-1] + 1 if seqs else 0
    return {"next": nxt, "first": seqs[0] if seqs else nxt, "first_t": None}


def _time_of(zk: KazooClient, path: str, seq: int) -> float | None:
    try:
        data, _ = zk.get(entry_path(path, seq))
    except NoNodeError:
        return None
    t = (decode(data) or {}).get("t")
    return float(t) if isinstance(t, int | float) else None


def audit_ops(
    zk: KazooClient,
    path: str,
    body: dict[str, Any],
    events: Sequence[Mapping[str, Any]],
    retention: Retention,
    now: float,
    *,
    rescan: bool = False,
) -> list[Op]:
    """The creates recording ``events`` and the deletes ``retention`` asks for, to commit
    in the multi that writes ``body`` (whose ``audit`` bounds this updates)."""
    state = body.get("audit")
    if rescan or not isinstance(state, dict):
        state = _bounds(zk, path)
    nxt, first, first_t = int(state["next"]), int(state["first"]), state.get("first_t")
    ops: list[Op] = []
    for event in events:
        ops.append(Create(entry_path(path, nxt), encode(dict(event))))
        nxt += 1
    kept_before = nxt - len(events)  # entries older than this write's
    for _ in range(PRUNE_PER_WRITE):
        if first >= kept_before:
            break
        if nxt - first <= retention.keep:  # within the count: is the oldest too old?
            if first_t is None:
                first_t = _time_of(zk, path, first)
            if first_t is None or now - first_t <= retention.max_age:
                break
        ops.append(Delete(entry_path(path, first)))
        first += 1
        first_t = None  # the new oldest's time is read when an age decision needs it
    body["audit"] = {"next": nxt, "first": first, "first_t": first_t}
    return ops
