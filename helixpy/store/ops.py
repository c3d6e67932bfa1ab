"""Write operations as plain values, so batches can be sized, split and tested without I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from helixpy.store.codec import MAX_MULTI

# Per-op bytes beyond path and payload on the wire (header, version, flags, ACL); generous so
# the split never underestimates.
OP_OVERHEAD = 128


@dataclass(frozen=True)
class Create:
    path: str
    data: bytes = b""
    ephemeral: bool = False
    sequence: bool = False


@dataclass(frozen=True)
class SetData:
    path: str
    data: bytes
    version: int = -1


@dataclass(frozen=True)
class Delete:
    path: str
    version: int = -1


@dataclass(frozen=True)
class Check:
    path: str
    version: int


Op = Create | SetData | Delete | Check


def op_size(op: Op) -> int:
    """An upper bound of the bytes ``op`` adds to a multi request."""
    data = getattr(op, "data", b"")
    return len(op.path.encode()) + len(data) + OP_OVERHEAD


def split_batches(
    ops: Sequence[Op], fence: Op | Sequence[Op] | None, limit: int = MAX_MULTI
) -> list[list[Op]]:
    """Pack ``ops`` in order into multis of at most ``limit`` bytes, each led by ``fence``
    (one check, or several).

    Order is kept across batches, so a caller that lists contexts before assignments gets
    contexts written first even when the write spans several multis.
    """
    lead: list[Op] = (
        [] if fence is None else [fence] if not isinstance(fence, Sequence) else [*fence]
    )
    base = sum(op_size(op) for op in lead)
    batches: list[list[Op]] = []
    current: list[Op] = []
    size = base
    for op in ops:
        n = op_size(op)
        if base + n > limit:
            raise ValueError(f"{op.path}: a single operation of {n} bytes exceeds the multi limit")
        if current and size + n > limit:
            batches.append(current)
            current, size = [], base
        current.append(op)
        size += n
    if current:
        batches.append(current)
    return [[*lead, *b] for b in batches]
