"""Typed task arguments: the JSON values a job's ``command_config`` and a task's ``config``
may hold, and how big they may be.

A value is what JSON can carry and give back unchanged: ``str``, ``int``, ``float``
(finite: JSON has no NaN or infinity), ``bool``, ``None``, lists (tuples become lists) and
mappings with string keys, nested at most :data:`MAX_DEPTH` deep. Strings stay strings, so
configs written before values were typed keep working as they were.

Sizes are checked when a config is made (so at submit, in the client and again in the
leader, which parses every request into these classes): a job's ``command_config`` or a
task's ``config`` is at most :data:`MAX_CONFIG_BYTES` as compact JSON, and the configs of
the tasks stored together in one task-config chunk (:data:`TASKS_PER_CHUNK` of them) at most
:data:`MAX_CHUNK_BYTES`, so every stored node fits ZooKeeper's payload whatever the data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from helixpy.errors import InvalidConfig

#: A JSON value (``str | int | float | bool | None | list[JsonValue] | dict[str,
#: JsonValue]``); spelled ``Any`` so task code can use what it gets without casts.
JsonValue = Any

#: The most bytes (compact JSON) of one job's ``command_config`` or one task's ``config``.
MAX_CONFIG_BYTES = 64 * 1024
#: How many task configs one stored chunk holds (``JOBS/<job>/TASKCONFIGS/<n>``).
TASKS_PER_CHUNK = 200
#: The most bytes (compact JSON) of one chunk of task configs: under the store's 128 KiB
#: payload limit even before compression.
MAX_CHUNK_BYTES = 120 * 1024
#: How deeply lists and mappings may nest.
MAX_DEPTH = 32
#: The most bytes (compact, ASCII-escaped JSON) of one task's result value.
MAX_RESULT_BYTES = 1024 * 1024

_RULE = "must be a JSON value: str, int, float, bool, None, a list, or a mapping of str keys"


def json_size(value: object) -> int:
    """Bytes of ``value`` as compact, ASCII-escaped JSON: how the driver sends it and the
    store writes it (before compression)."""
    return len(json.dumps(value, separators=(",", ":")))


def check_value(name: str, value: object, depth: int = 0) -> JsonValue:
    """``value`` as stored (tuples as lists, mappings as dicts); InvalidConfig naming the
    innermost offending place otherwise."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidConfig(name, f"must be a finite number (got {value!r})")
        return value
    if depth >= MAX_DEPTH:
        raise InvalidConfig(name, f"nests lists and mappings more than {MAX_DEPTH} deep")
    if isinstance(value, list | tuple):
        return [check_value(f"{name}[{i}]", v, depth + 1) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        return check_map(name, value, depth + 1)
    raise InvalidConfig(name, f"{_RULE} (got {type(value).__name__})")


def check_map(name: str, value: object, depth: int = 0) -> dict[str, JsonValue]:
    """A mapping of str keys to JSON values, as stored."""
    if not isinstance(value, Mapping):
        raise InvalidConfig(name, f"must be a mapping of str keys (got {type(value).__name__})")
    if all(type(k) is str and type(v) is str for k, v in value.items()):
        return dict(value)  # the common case: plain strings, nothing nested to check
    out: dict[str, JsonValue] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise InvalidConfig(f"{name}.{k}", f"keys must be strings (got {type(k).__name__})")
        out[k] = check_value(f"{name}.{k}", v, depth)
    return out


def check_config(name: str, value: object) -> tuple[dict[str, JsonValue], int]:
    """A ``command_config`` or task ``config``: a mapping of JSON values within
    :data:`MAX_CONFIG_BYTES`; with its size as JSON (0 when empty)."""
    out = check_map(name, value)
    if not out:
        return out, 0
    size = json_size(out)
    if size > MAX_CONFIG_BYTES:
        raise InvalidConfig(
            name, f"is {size} bytes as JSON, over the {MAX_CONFIG_BYTES}-byte limit of a config"
        )
    return out, size


def result_json(value: object) -> bytes:
    """A task's result ``value`` as the compact, ASCII-escaped JSON the store keeps;
    InvalidConfig naming ``result`` (or the innermost offending place, ``result.k[2]``)
    when it is not a JSON value or is over :data:`MAX_RESULT_BYTES`."""
    text = json.dumps(check_value("result", value), separators=(",", ":")).encode()
    if len(text) > MAX_RESULT_BYTES:
        raise InvalidConfig(
            "result",
            f"is {len(text)} bytes as JSON, over the {MAX_RESULT_BYTES}-byte limit of a result",
        )
    return text


def check_chunks(name: str, sizes: list[int]) -> None:
    """Every run of :data:`TASKS_PER_CHUNK` tasks (``sizes``: each task's stored bytes)
    fits one chunk; InvalidConfig naming the tasks of the first that does not."""
    for lo in range(0, len(sizes), TASKS_PER_CHUNK):
        window = sizes[lo : lo + TASKS_PER_CHUNK]
        total = sum(window) + len(window) + 1  # the list's brackets and commas
        if total > MAX_CHUNK_BYTES:
            hi = lo + len(window) - 1
            raise InvalidConfig(
                f"{name}[{lo}:{hi + 1}]",
                f"these tasks' configs are {total} bytes as JSON, over the {MAX_CHUNK_BYTES} "
                f"bytes one chunk of {TASKS_PER_CHUNK} task configs holds",
            )
