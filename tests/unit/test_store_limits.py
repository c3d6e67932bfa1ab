"""Size limits: context chunks and multi splitting stay under ZooKeeper's request limit."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helixpy.errors import CorruptNode, PayloadTooLarge
from helixpy.model import TaskContextInfo, TaskPartitionState
from helixpy.model.context import INFO_CAP, cap_info
from helixpy.store.codec import MAX_MULTI, MAX_PAYLOAD, decode, encode
from helixpy.store.ops import Check, Create, SetData, op_size, split_batches
from helixpy.store.paths import CONTEXT_CHUNK, Paths
from helixpy.store.records import encode_chunk, job_context_ops, num_chunks

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-"


def worst_record(rng: random.Random) -> TaskContextInfo:
    """A record as large as the rules allow, and as incompressible as they allow."""
    name = "".join(rng.choice(ALPHABET) for _ in range(128))
    info = "".join(
        chr(rng.choice([rng.randrange(1, 32), rng.randrange(0x10000, 0x10FFFF)]))
        for _ in range(400)
    )
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return TaskContextInfo(
        task_id=name,
        state=TaskPartitionState.TASK_ERROR,
        num_attempts=2**31,
        assigned_participant=name[::-1],
        incarnation=2**31,
        info=cap_info(info),
        start_time=t,
        finish_time=t,
        next_retry_time=t,
    )


def test_a_chunk_of_worst_case_records_fits_the_payload_limit() -> None:
    # Given CONTEXT_CHUNK records of the largest, least compressible kind
    rng = random.Random(7)
    tasks = [worst_record(rng) for _ in range(CONTEXT_CHUNK)]
    # When one chunk is encoded
    data = encode_chunk(tasks, 0, len(tasks), "/chunk")
    # Then it fits, and it decodes back to the same records
    assert len(data) <= MAX_PAYLOAD
    assert [TaskContextInfo.from_dict(r) for r in decode(data)] == tasks


@given(st.text(max_size=2000))
@settings(max_examples=200, deadline=None)
def test_cap_info_bounds_the_encoded_size(info: str) -> None:
    capped = cap_info(info)
    import json

    assert len(json.dumps(capped, ensure_ascii=False).encode()) <= INFO_CAP
    assert capped == info or capped.endswith("...")


def test_encode_refuses_oversized_payloads_and_decode_reports_corruption() -> None:
    rng = random.Random(1)
    big = "".join(rng.choice(ALPHABET) for _ in range(MAX_PAYLOAD * 2))
    with pytest.raises(PayloadTooLarge, match="/big"):
        encode(big, path="/big")
    with pytest.raises(CorruptNode, match="/bad"):
        decode(b"\x1f\x8bnot gzip", path="/bad")
    assert decode(encode({"a": "b" * 10000})) == {"a": "b" * 10000}


@given(st.lists(st.integers(min_value=0, max_value=MAX_PAYLOAD), max_size=60))
@settings(max_examples=100, deadline=None)
def test_split_batches_keeps_order_and_the_multi_limit(sizes: list[int]) -> None:
    # Given ops of arbitrary sizes up to the payload limit
    ops = [SetData(f"/n/{i}", b"x" * n) for i, n in enumerate(sizes)]
    fence = Check("/EPOCH", 3)
    # When they are split into multis
    batches = split_batches(ops, fence)
    # Then every multi starts with the fence, stays under the limit, and order is kept
    assert all(b[0] is fence for b in batches)
    assert all(sum(op_size(op) for op in b) <= MAX_MULTI for b in batches)
    assert [op for b in batches for op in b[1:]] == ops


def test_split_batches_rejects_a_single_op_over_the_multi_limit() -> None:
    with pytest.raises(ValueError, match="/huge"):
        split_batches([Create("/huge", b"x" * MAX_MULTI)], Check("/EPOCH", 1))


def test_a_100k_task_context_splits_into_fixed_chunks_within_limits() -> None:
    # Given a job of 100,000 fresh task records
    tasks = [TaskContextInfo(task_id=str(p)) for p in range(100_000)]
    ops = job_context_ops(Paths("c"), "w", "j", {"state": "NOT_STARTED"}, tasks, None, create=True)
    # Then it is a header plus ceil(100000/CONTEXT_CHUNK) chunks, each under the limit
    assert len(ops) == 1 + num_chunks(100_000) == 1 + -(-100_000 // CONTEXT_CHUNK)
    assert max(op_size(op) for op in ops) <= MAX_PAYLOAD
    batches = split_batches(ops, Check("/EPOCH", 1))
    assert all(sum(op_size(op) for op in b) <= MAX_MULTI for b in batches)


@given(st.recursive(st.text() | st.integers() | st.none(), lambda c: st.lists(c, max_size=4)))
def test_any_text_is_stored_and_read_back_unchanged(value: object) -> None:
    # Given any str (lone surrogates included: UTF-8 cannot encode them, escapes can)
    # Then the store's encoding never raises for it and decodes to the same value
    assert decode(encode({"v": value})) == {"v": value}
