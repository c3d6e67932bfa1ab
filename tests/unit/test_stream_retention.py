"""Which barriers a stream's publish prunes (pure: no ZooKeeper)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from helixpy.store.ops import Delete
from helixpy.store.paths import Paths
from helixpy.store.streams import PRUNE_PER_PUBLISH, checkpoints_keep, prunable, prune_ops


def test_the_newest_keep_barriers_up_to_the_published_one_stay() -> None:
    # Given barriers 3, 7, 9 stored and 12 being published (its directory is not listed yet)
    # When three are kept
    # Then 3 goes (7, 9, 12 stay) and nothing after 12 is ever touched
    assert prunable([3, 7, 9, 20], 12, 3) == [3]
    assert prunable([3, 7, 9, 12, 20], 12, 1) == [3, 7, 9]
    assert prunable([12], 12, 1) == []


@given(
    st.sets(st.integers(0, 500), max_size=60),
    st.integers(0, 500),
    st.integers(1, 50),
)
def test_pruning_never_takes_the_published_barrier_or_newer_ones(
    stored: set[int], seq: int, keep: int
) -> None:
    old = prunable(stored, seq, keep)
    assert all(b < seq for b in old) and old == sorted(old)
    assert len(old) <= PRUNE_PER_PUBLISH
    # what stays up to seq is at least `keep` barriers (or everything there was)
    done = {b for b in stored if b <= seq} | {seq}
    assert len(done) - len(old) >= min(keep, len(done))


def test_prune_ops_delete_acks_before_their_directory_and_the_checkpoint() -> None:
    paths = Paths("c")
    ops = prune_ops(paths, "w", "j", [5], lambda _b: ["0", "1"], lambda _b: True)
    barrier = paths.stream_barrier("w", "j", 5)
    assert [op.path for op in ops] == [
        f"{barrier}/0",
        f"{barrier}/1",
        barrier,
        paths.stream_checkpoint("w", "j", 5),
    ]
    assert all(isinstance(op, Delete) for op in ops)
    assert [op.path for op in prune_ops(paths, "w", "j", [5], lambda _b: [], lambda _b: False)] == [
        barrier
    ]


def test_the_setting_defaults_to_a_hundred() -> None:
    assert checkpoints_keep({}) == 100
    assert checkpoints_keep({"stream_checkpoints_keep": 7}) == 7
