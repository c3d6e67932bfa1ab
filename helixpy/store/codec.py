"""Znode payload encoding: JSON, gzip-compressed above a threshold, with hard size limits.

ZooKeeper refuses requests above ~1 MB (``jute.maxbuffer``), and a whole ``multi`` counts as
one request, so helixpy keeps every payload under :data:`MAX_PAYLOAD` and every multi under
:data:`MAX_MULTI`; callers split large writes (see :mod:`helixpy.store.fencing`).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

from helixpy.errors import CorruptNode, PayloadTooLarge

MAX_PAYLOAD = 128 * 1024
MAX_MULTI = 512 * 1024
#: Payloads larger than this are gzip-compressed; smaller ones stay readable in zkCli.
COMPRESS_ABOVE = 4 * 1024
_GZIP_MAGIC = b"\x1f\x8b"
# One encoder (stateless, its settings fixed): json.dumps with arguments builds one per call.
# ASCII with escapes: any Python str can be stored, a lone surrogate included (UTF-8 cannot
# encode one, and a write that raised for it would fail the controller's pass or a
# participant's report on every retry); escapes are decoded back to the same text.
_JSON = json.JSONEncoder(separators=(",", ":"))


def encode(value: Any, *, path: str = "<payload>") -> bytes:
    """Encode ``value`` as compact JSON, compressed when large; enforce :data:`MAX_PAYLOAD`."""
    return frame(_JSON.encode(value).encode(), path=path)


def frame(raw: bytes, *, path: str = "<payload>") -> bytes:
    """JSON text already encoded (``raw``) as :func:`encode` stores it: compressed when
    large, within :data:`MAX_PAYLOAD`."""
    if len(raw) > COMPRESS_ABOVE:
        # mtime=0 keeps equal values byte-identical, so "unchanged" is detectable.
        raw = gzip.compress(raw, compresslevel=6, mtime=0)
    if len(raw) > MAX_PAYLOAD:
        raise PayloadTooLarge(f"{path}: {len(raw)} bytes exceeds the {MAX_PAYLOAD}-byte limit")
    return raw


def encoded_size(value: Any) -> int:
    """Bytes of ``value``'s JSON as :func:`encode` writes it before any compression."""
    return len(_JSON.encode(value).encode())


def decode(data: bytes | None, *, path: str = "<payload>") -> Any:
    """Decode what :func:`encode` wrote; empty data decodes to None."""
    if not data:
        return None
    try:
        if data[:2] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        return json.loads(data)
    except (OSError, EOFError, ValueError) as exc:
        raise CorruptNode(f"{path}: cannot decode payload: {exc}") from exc
