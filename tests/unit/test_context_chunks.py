"""A big workflow's job states in CONTEXT chunks: which ops a write makes, in which order."""

from __future__ import annotations

import pytest

from helixpy.store.codec import decode
from helixpy.store.ops import Create, Delete, SetData
from helixpy.store.paths import JOB_STATES_CHUNK, Paths
from helixpy.store.records import job_states_chunks, workflow_context_ops

PATHS = Paths("c")
CTX = PATHS.workflow_context("q")


def names(n: int) -> tuple[str, ...]:
    return tuple(f"j{i:05d}" for i in range(n))


def test_up_to_one_chunk_of_jobs_stays_inline() -> None:
    assert job_states_chunks(0) == 0
    assert job_states_chunks(JOB_STATES_CHUNK) == 0
    assert job_states_chunks(JOB_STATES_CHUNK + 1) == 2
    assert job_states_chunks(3 * JOB_STATES_CHUNK) == 3


def test_growing_creates_the_new_chunks_before_the_header_that_names_them() -> None:
    # Given a queue written with 2 chunks that grew to 3
    order = names(2 * JOB_STATES_CHUNK + 1)
    # When its last old chunk and the new one are written
    ops = workflow_context_ops(
        PATHS, "q", {"state": "IN_PROGRESS"}, order, lambda _: "COMPLETED", {1, 2}, 2
    )
    # Then chunk 1 is rewritten, chunk 2 created, and the header comes last, naming 3
    assert [(type(op), op.path) for op in ops] == [
        (SetData, PATHS.workflow_context_chunk("q", 1)),
        (Create, PATHS.workflow_context_chunk("q", 2)),
        (SetData, CTX),
    ]
    header = decode(ops[-1].data)
    assert header["job_chunks"] == 3 and header["jobs"] == {} and header["state"] == "IN_PROGRESS"
    assert list(decode(ops[1].data)["jobs"]) == [order[-1]]
    assert len(decode(ops[0].data)["jobs"]) == JOB_STATES_CHUNK


def test_shrinking_writes_the_header_first_then_deletes_the_chunks_past_it() -> None:
    # Given a queue of 3 chunks flushed down to 5 jobs (inline again)
    order = names(5)
    ops = workflow_context_ops(PATHS, "q", {"state": "IN_PROGRESS"}, order, str.upper, (), 3)
    # Then the header holds the jobs inline, and chunks 0..2 are deleted after it
    assert [(type(op), op.path) for op in ops] == [
        (SetData, CTX),
        *[(Delete, PATHS.workflow_context_chunk("q", i)) for i in range(3)],
    ]
    header = decode(ops[0].data)
    assert "job_chunks" not in header and header["jobs"] == {n: n.upper() for n in order}


def test_a_changed_chunk_count_without_a_header_is_refused() -> None:
    with pytest.raises(ValueError, match="header"):
        workflow_context_ops(PATHS, "q", None, names(5), str, (), 3)
    # The same count: only the dirty chunk, no header
    order = names(2 * JOB_STATES_CHUNK)
    ops = workflow_context_ops(PATHS, "q", None, order, str, {0}, 2)
    assert [op.path for op in ops] == [PATHS.workflow_context_chunk("q", 0)]
