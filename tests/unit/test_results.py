"""Unit tests for task results: what a task function's return means, which values can be
stored, and how a value is laid out in result nodes (pure: no ZooKeeper here)."""

from __future__ import annotations

import gzip
import json
import threading
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helixpy.model import JobConfig, TaskResult, TaskStatus
from helixpy.model.values import MAX_RESULT_BYTES, result_json
from helixpy.participant.registry import TaskContext, function_result
from helixpy.store.codec import MAX_PAYLOAD, decode
from helixpy.store.paths import Paths
from helixpy.store.results import CHUNK_BYTES, INLINE_BYTES, result_write
from tests.unit.strategies import PROPERTY, expect_invalid

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=30,
)


def context(cancelled: bool = False) -> TaskContext:
    ctx = TaskContext(
        workflow="w",
        job="j",
        task_id="0",
        partition=0,
        attempt=1,
        instance="i",
        job_config=JobConfig(command="X", num_tasks=1),
        task_config={},
        command="X",
        cancelled=threading.Event(),
    )
    if cancelled:
        ctx.cancelled.set()
    return ctx


def test_a_function_returning_a_value_completes_with_it() -> None:
    # Given what a task function may return, Then each means its TaskResult
    assert function_result(None, context()) == TaskResult(TaskStatus.COMPLETED)
    assert function_result(None, context(cancelled=True)) == TaskResult(TaskStatus.CANCELED)
    assert function_result([1, "a"], context()) == TaskResult(TaskStatus.COMPLETED, value=[1, "a"])
    assert function_result(0, context()).value == 0  # a falsy value is still a value
    failed = TaskResult(TaskStatus.FAILED, "no", value=3)
    assert function_result(failed, context()) is failed


@PROPERTY
@given(json_values)
def test_any_json_value_is_stored_as_compact_ascii_json(value: Any) -> None:
    text = result_json(value)
    assert text.isascii()
    assert json.loads(text) == value


def test_values_that_cannot_be_stored_are_refused_naming_the_place() -> None:
    assert json.loads(result_json((1, (2, 3)))) == [1, [2, 3]]  # tuples become lists
    with expect_invalid("result.a[1]", "finite"):
        result_json({"a": [1, float("nan")]})
    with expect_invalid("result.s", "set"):
        result_json({"s": {1, 2}})
    with expect_invalid("result.1", "keys must be strings"):
        result_json({1: "x"})
    with expect_invalid("result", f"over the {MAX_RESULT_BYTES}-byte limit"):
        result_json("x" * MAX_RESULT_BYTES)
    assert len(result_json("x" * (MAX_RESULT_BYTES - 2))) == MAX_RESULT_BYTES


def test_a_small_value_lives_in_its_head() -> None:
    paths = Paths("c")
    write = result_write(paths, "w", "j", "t", 2, result_json({"k": [1, 2]}))
    assert write.chunks == ()
    assert write.head.path == paths.task_result("w", "j", "t", 2)
    assert write.head.path.endswith("/RESULTS/" + write.dirs[1].rsplit("/", 1)[1] + "/t@2")
    assert write.dirs == (paths.task_results("w", "j"), paths.task_result_shard("w", "j", "t"))
    assert decode(write.head.data) == {"v": {"k": [1, 2]}}


@pytest.mark.parametrize("size", [INLINE_BYTES - 2, INLINE_BYTES - 1, MAX_RESULT_BYTES - 2])
def test_a_value_is_inline_up_to_the_limit_and_chunked_beyond(size: int) -> None:
    # Given a string value of pseudo-random hex (gzip halves it, no more)
    import random

    value = random.Random(size).randbytes(size // 2 + 1).hex()[:size]
    text = result_json(value)
    write = result_write(Paths("c"), "w", "j", "t", 1, text)
    if len(text) <= INLINE_BYTES:
        # Then a value up to INLINE_BYTES is in the head, within one payload
        assert write.chunks == () and len(write.head.data) <= MAX_PAYLOAD
        assert decode(write.head.data) == {"v": value}
    else:
        # Then a larger one is gzipped across chunks the head counts, each within a payload
        assert decode(write.head.data) == {"c": len(write.chunks)}
        assert all(len(c.data) <= CHUNK_BYTES for c in write.chunks)
        assert [c.path for c in write.chunks] == [
            f"{write.head.path}+{i}" for i in range(len(write.chunks))
        ]
        joined = gzip.decompress(b"".join(c.data for c in write.chunks))
        assert json.loads(joined) == value
    # and the same value is always written the same way (a retried write is identical)
    assert result_write(Paths("c"), "w", "j", "t", 1, text) == write
