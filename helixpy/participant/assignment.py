"""Reading a participant's ASSIGNMENT: the entries it can trust, and what it cannot read.

The controller writes ``{"inc": <incarnation>, "tasks": {<task key>: {"a": attempt,
"t": target, "u": config version, "c"?: the job's CONFIG payload}}}`` (``c`` only for a
small job config of a running attempt: the attempt then starts without reading CONFIG).
An assignment for another incarnation is stale and yields nothing; an entry that does not
have that shape (a corrupted or hand-edited node) is skipped and named in the problems, so
one bad entry never stops the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from helixpy.store.paths import parse_task_key

#: What an entry may ask of an attempt.
TARGETS = frozenset({"RUN", "ABORT", "STOP", "DROP", "MOVE"})


@dataclass(frozen=True)
class Entry:
    attempt: int
    target: str
    version: str
    #: the job's CONFIG payload, when the controller sent it along (a small config)
    config: dict[str, Any] | None = None


def readable_entries(body: Any, incarnation: int) -> tuple[dict[str, Entry], list[str]]:
    """The entries of ``body`` meant for ``incarnation``, and a description of each one
    that could not be read."""
    if not isinstance(body, dict):
        return {}, [f"not a mapping: {type(body).__name__}"] if body else []
    if body.get("inc") != incarnation:
        return {}, []  # stale: written for an earlier incarnation
    tasks = body.get("tasks", {})
    if not isinstance(tasks, dict):
        return {}, [f"tasks is not a mapping: {type(tasks).__name__}"]
    out: dict[str, Entry] = {}
    problems: list[str] = []
    for key, raw in tasks.items():
        try:
            parse_task_key(key)
            if not isinstance(raw, dict):
                raise ValueError(f"entry is a {type(raw).__name__}")
            attempt, target = raw.get("a"), raw.get("t")
            if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
                raise ValueError(f"attempt {attempt!r}")
            if target not in TARGETS:
                raise ValueError(f"target {target!r}")
            config = raw.get("c")
            if config is not None and not isinstance(config, dict):
                raise ValueError(f"config is a {type(config).__name__}")
            out[key] = Entry(attempt, target, str(raw.get("u", "")), config)
        except (ValueError, TypeError) as exc:
            problems.append(f"{key!r}: {exc}")
    return out, problems
