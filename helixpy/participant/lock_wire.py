"""The JSON wire form of task-lock calls between a worker process and its participant.

Pure functions, no I/O (see :mod:`helixpy.participant.remote_locks`, which uses them):
intervals as ``[start, end, kind]``, write ops with their bytes in base64, lock results as
dicts, and errors as class name, message and fields, rebuilt as the same class (helixpy's,
kazoo's, ``MultiFailed`` naming the caller's own op; anything else as ``RuntimeError``).
Never pickle: a worker process runs user code.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from typing import Any

import kazoo.exceptions

from helixpy import errors
from helixpy.errors import HelixpyError, InvalidConfig, PollTimeout
from helixpy.model.locks import Holder, Interval, Lock, LockResult, LockType, check_priority
from helixpy.store.fencing import MultiFailed
from helixpy.store.locks import escape_resource
from helixpy.store.ops import Check, Create, Delete, Op, SetData


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(raw: object) -> bytes:
    if not isinstance(raw, str):
        raise InvalidConfig("commit.ops.data", "must be base64 text")
    try:
        return base64.b64decode(raw.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidConfig("commit.ops.data", f"not base64: {exc}") from None


def _field(raw: Mapping[str, Any], name: str, kind: type, default: Any = None) -> Any:
    value = raw.get(name, default)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InvalidConfig(f"commit.ops.{name}", f"must be {kind.__name__} (got {value!r})")
    return value


#: How each write op is named on the wire.
_KINDS: dict[type, str] = {Create: "create", SetData: "set", Delete: "delete", Check: "check"}


def op_to_dict(op: Op) -> dict[str, Any]:
    """One write op as JSON-able data (its bytes in base64)."""
    kind = _KINDS.get(type(op))
    if kind is None:
        raise InvalidConfig(
            "commit.ops", f"not a write op (Create, SetData, Delete, Check): {op!r}"
        )
    out = {"kind": kind, **vars(op)}
    if "data" in out:
        out["data"] = _b64(out["data"])
    return out


def op_from_dict(raw: object) -> Op:
    if not isinstance(raw, Mapping):
        raise InvalidConfig("commit.ops", f"not an op: {raw!r}")
    kind, path = raw.get("kind"), _field(raw, "path", str)
    if kind == "create":
        return Create(
            path,
            _unb64(raw.get("data", "")),
            ephemeral=_field(raw, "ephemeral", bool, False),
            sequence=_field(raw, "sequence", bool, False),
        )
    if kind == "set":
        return SetData(path, _unb64(raw.get("data")), _field(raw, "version", int, -1))
    if kind == "delete":
        return Delete(path, _field(raw, "version", int, -1))
    if kind == "check":
        return Check(path, _field(raw, "version", int))
    raise InvalidConfig("commit.ops.kind", f"unknown op kind {kind!r}")


def ops_to_list(ops: Sequence[Op]) -> list[dict[str, Any]]:
    return [op_to_dict(op) for op in ops]


def ops_from_list(raw: object) -> list[Op]:
    if not isinstance(raw, list):
        raise InvalidConfig("commit.ops", "must be a list")
    return [op_from_dict(item) for item in raw]


def lock_to_dict(lock: Lock) -> dict[str, Any]:
    out = dict(vars(lock), interval=lock.interval.to_list(), type=lock.type.value)
    return dict(out, holder=lock.holder.to_dict())


def lock_from_dict(raw: Mapping[str, Any]) -> Lock:
    interval, kind = Interval.from_list(raw["interval"]), LockType(raw["type"])
    return Lock(**dict(raw, interval=interval, type=kind, holder=Holder.from_dict(raw["holder"])))


def result_to_dict(result: LockResult) -> dict[str, Any]:
    return dict(vars(result), lock=None if result.lock is None else lock_to_dict(result.lock))


def result_from_dict(raw: Mapping[str, Any]) -> LockResult:
    lock = raw.get("lock")
    return LockResult(**dict(raw, lock=None if lock is None else lock_from_dict(lock)))


def _known_errors() -> dict[str, type[BaseException]]:
    """The exception classes a child raises again by name: helixpy's and kazoo's."""
    known: dict[str, type[BaseException]] = {}
    for value in vars(kazoo.exceptions).values():
        if isinstance(value, type) and issubclass(value, kazoo.exceptions.KazooException):
            known[value.__name__] = value
    for value in vars(errors).values():  # helixpy's win a clash of names
        if isinstance(value, type) and issubclass(value, HelixpyError):
            known[value.__name__] = value
    return known


_KNOWN = _known_errors()
#: Fields an error carries besides its message (``InvalidConfig.field`` ...).
_ERROR_FIELDS = ("field", "rule", "last_state")


def error_to_dict(exc: BaseException, ops: Sequence[Op] = ()) -> dict[str, Any]:
    """An error as data: class name, message and fields (for ``MultiFailed``: which of
    ``ops`` failed, and its ZooKeeper error)."""
    out: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    fields = {f: getattr(exc, f) for f in _ERROR_FIELDS if isinstance(getattr(exc, f, None), str)}
    if fields:
        out["fields"] = fields
    if isinstance(exc, MultiFailed):
        index = next((i for i, op in enumerate(ops) if op is exc.op), None)
        if index is not None:
            out["op"] = index
            out["error"] = error_to_dict(exc.error)
    return out


def error_from_dict(raw: Mapping[str, Any], ops: Sequence[Op] = ()) -> Exception:
    """The exception :func:`error_to_dict` described, as its own class when it is one of
    helixpy's or kazoo's (or ``MultiFailed`` naming one of ``ops``), else ``RuntimeError``."""
    name, message = str(raw.get("type", "Exception")), str(raw.get("message", ""))
    if name == MultiFailed.__name__:
        index = raw.get("op")
        if isinstance(index, int) and 0 <= index < len(ops) and isinstance(raw.get("error"), dict):
            return MultiFailed(ops[index], error_from_dict(raw["error"]))
    cls = _KNOWN.get(name)
    if cls is None or not issubclass(cls, Exception):
        return RuntimeError(f"{name}: {message}" if message else name)
    fields = raw.get("fields") or {}
    exc: Exception
    if issubclass(cls, InvalidConfig) and "field" in fields and "rule" in fields:
        exc = cls(str(fields["field"]), str(fields["rule"]))
    elif issubclass(cls, PollTimeout):
        exc = cls(message, fields.get("last_state"))
    else:
        try:
            exc = cls(message) if message else cls()
        except TypeError:  # a constructor of other arguments: the message is what counts
            exc = cls.__new__(cls)
            Exception.__init__(exc, message)
    return exc


def lock_request(
    resource: str,
    interval: Interval | tuple[object, object],
    type: LockType,
    group: str | None,
    priority: int | None,
) -> dict[str, Any]:
    """A request's arguments, checked here as a LockBox checks them (same errors)."""
    escape_resource(resource)
    if not isinstance(interval, Interval):
        interval = Interval.of(*interval)
    return {
        "resource": resource,
        "interval": interval.to_list(),
        "type": LockType(type).value,
        "group": None if group is None else str(group),
        "priority": None if priority is None else check_priority("priority", priority),
    }
