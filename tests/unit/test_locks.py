"""Lock decisions as pure logic (Druid semantics): conflicts, posses, priorities."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helixpy.errors import InvalidConfig
from helixpy.model.locks import (
    Decision,
    Holder,
    Interval,
    LockType,
    Posse,
    Request,
    decide,
    release,
)

SH, EX = LockType.SHARED, LockType.EXCLUSIVE


class Table:
    """The posses of one resource, updated by decisions as a store would."""

    def __init__(self) -> None:
        self.posses: list[Posse] = []
        self.token = 0
        self.dead: set[str] = set()

    def ask(
        self,
        holder: str,
        start: float,
        end: float,
        type_: LockType,
        *,
        group: str = "",
        priority: int = 50,
    ) -> Decision:
        self.token += 1
        r = Request(Interval.of(start, end), type_, group or holder, priority, Holder(holder))
        d = decide(self.posses, r, lambda h: h not in self.dead, self.token)
        self.posses = d.posses
        return d

    def drop(self, holder: str) -> None:
        self.posses = release(self.posses, holder)


def test_intervals_are_half_open_and_normalise_instants_to_utc() -> None:
    a, b = Interval.of(0, 10), Interval.of(10, 20)
    assert not a.overlaps(b) and a.overlaps(Interval.of(9.5, 11))
    paris = timezone(timedelta(hours=1))
    t = Interval.of(datetime(2026, 1, 1, 1, tzinfo=paris), "2026-01-02T00:00:00Z")
    assert t.kind == "time" and t.start == datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert str(t) == "[2026-01-01T00:00:00+00:00, 2026-01-02T00:00:00+00:00)"


@pytest.mark.parametrize(
    ("start", "end", "rule"),
    [
        (5, 5, "before end"),
        (0, datetime(2026, 1, 1, tzinfo=UTC), "both be numbers or instants"),
        (datetime(2026, 1, 1), datetime(2026, 1, 2), "timezone-aware"),
        ("yesterday", 3, "not an ISO-8601 instant"),
        (True, 3, "number or an aware"),
        (0, float("inf"), "finite"),
    ],
)
def test_bad_intervals_name_the_rule(start: object, end: object, rule: str) -> None:
    with pytest.raises(InvalidConfig, match=rule):
        Interval.of(start, end)


def test_exclusive_is_granted_and_an_overlapping_one_from_another_group_denied() -> None:
    t = Table()
    assert t.ask("a", 0, 10, EX).result == "granted"
    denied = t.ask("b", 5, 15, EX)
    assert denied.result == "denied" and "priority 50 >= 50" in denied.reason
    assert t.ask("b", 10, 20, EX).result == "granted"  # abutting: no conflict
    t.drop("a")
    assert t.ask("b", 5, 9, EX).result == "granted"


def test_shared_coexist_and_equal_priority_shared_vs_exclusive_is_denied() -> None:
    t = Table()
    assert t.ask("a", 0, 10, SH).result == "granted"
    assert t.ask("b", 0, 10, SH).result == "granted"
    assert t.ask("c", 5, 6, EX).result == "denied"


def test_higher_priority_revokes_all_lower_and_still_higher_revokes_again() -> None:
    t = Table()
    t.ask("low1", 0, 10, SH, priority=25)
    t.ask("low2", 5, 15, SH, priority=25)
    high = t.ask("high", 0, 20, EX, priority=50)
    assert high.result == "granted"
    assert sorted(h for p in high.revoked for h in p.members) == ["low1", "low2"]
    top = t.ask("top", 0, 1, SH, priority=75)
    assert top.result == "granted" and [p.token for p in top.revoked] == [high.posse.token]  # type: ignore[union-attr]


def test_preemption_is_all_or_nothing() -> None:
    t = Table()
    t.ask("low", 0, 10, SH, priority=25)
    t.ask("peer", 10, 20, SH, priority=50)
    d = t.ask("x", 5, 15, EX, priority=50)  # would need to revoke an equal-priority lock
    assert d.result == "denied" and not d.revoked
    assert not any(p.revoked for p in t.posses)


def test_revocation_is_sticky_until_the_owner_releases() -> None:
    t = Table()
    t.ask("victim", 0, 10, EX, priority=25)
    t.ask("preemptor", 0, 10, EX, priority=50)
    t.drop("preemptor")
    again = t.ask("victim", 0, 10, EX, priority=25)
    assert again.result == "revoked"
    t.drop("victim")
    assert t.ask("victim", 0, 10, EX, priority=25).result == "granted"


def test_a_lock_in_a_critical_section_makes_the_preemptor_wait() -> None:
    t = Table()
    t.ask("victim", 0, 10, EX, priority=25)
    t.posses[0].critical.append("victim")
    assert t.ask("preemptor", 0, 10, EX, priority=50).result == "wait"
    t.posses[0].critical.clear()
    assert t.ask("preemptor", 0, 10, EX, priority=50).result == "granted"


def test_a_group_shares_one_posse_and_members_are_counted() -> None:
    t = Table()
    first = t.ask("m1", 0, 10, EX, group="g")
    second = t.ask("m2", 2, 8, EX, group="g")  # contained, same type: the same lock
    assert second.result == "joined" and second.posse.token == first.posse.token  # type: ignore[union-attr]
    t.drop("m1")
    assert t.ask("other", 0, 10, EX).result == "denied"  # m2 still holds it
    t.drop("m2")
    assert t.ask("other", 0, 10, EX).result == "granted"


def test_overlapping_but_not_contained_requests_conflict_even_in_one_group() -> None:
    t = Table()
    t.ask("m1", 0, 10, EX, group="g")
    assert t.ask("m2", 5, 15, EX, group="g").result == "denied"


def test_acquisition_is_idempotent_and_dead_holders_are_reclaimed() -> None:
    t = Table()
    first = t.ask("a", 0, 10, EX)
    again = t.ask("a", 2, 3, EX)
    assert again.result == "held" and again.posse.token == first.posse.token  # type: ignore[union-attr]
    t.dead.add("a")
    taken = t.ask("b", 0, 10, EX)
    assert taken.result == "granted" and [h for _, h in taken.reclaimed] == ["a"]


def test_mixed_locks_over_three_days_with_low_and_high_priorities() -> None:
    day = 86400.0
    t = Table()
    assert t.ask("ingest", 0, 3 * day, SH, priority=25).result == "granted"
    assert t.ask("query", day, 2 * day, SH, priority=25).result == "granted"
    assert t.ask("compact", 0, day, EX, priority=25).result == "denied"
    rt = t.ask("realtime", 2 * day, 3 * day, EX, priority=75)
    assert rt.result == "granted" and len(rt.revoked) == 1  # the ingest lock only
    assert t.ask("query2", day, 2 * day, SH, priority=25).result == "granted"


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.integers(0, 9),
            st.integers(1, 4),
            st.sampled_from([SH, EX]),
            st.sampled_from([0, 25, 50, 75]),
            st.booleans(),
        ),
        max_size=40,
    )
)
def test_no_two_conflicting_unrevoked_locks_ever_coexist(
    steps: list[tuple[int, int, int, LockType, int, bool]],
) -> None:
    t = Table()
    for holder, start, length, type_, priority, drop in steps:
        if drop:
            t.drop(f"h{holder}")
        else:
            t.ask(
                f"h{holder}",
                start,
                start + length,
                type_,
                group=f"g{holder % 3}",
                priority=priority,
            )
        live = [p for p in t.posses if not p.revoked]
        for i, p in enumerate(live):
            for q in live[i + 1 :]:
                if p.interval.overlaps(q.interval) and not (p.type is SH and q.type is SH):
                    # only one holder's own locks may overlap (it widened or upgraded)
                    assert set(p.members) == set(q.members) and len(p.members) == 1, (p, q)


def test_a_holder_may_upgrade_or_widen_its_own_lock() -> None:
    t = Table()
    assert t.ask("a", 0, 10, SH).result == "granted"
    assert t.ask("a", 0, 10, EX).result == "granted"  # upgrade: its shared lock alone
    assert t.ask("a", 0, 20, EX).result == "granted"  # widen
    assert not any(p.revoked for p in t.posses)
    assert t.ask("b", 15, 16, SH).result == "denied"
    t.ask("c", 30, 40, SH)
    assert t.ask("c2", 30, 40, SH).result == "granted"
    assert t.ask("c", 30, 40, EX).result == "denied"  # shared with someone else: no upgrade


@pytest.mark.parametrize("bad", [-7, -1, True, 1.5, "3", None])
def test_one_priority_rule_for_jobs_and_lock_boxes(bad: object) -> None:
    # Given the priority a job or a lock request may have: an integer >= 0
    from helixpy import JobConfig, LockBox
    from helixpy.errors import InvalidConfig

    # When a lock box or a job is given a negative or non-integer one, Then both refuse it
    # by the same rule (a job's None means "its job type's default", so it is allowed there)
    with pytest.raises(InvalidConfig, match=r"priority: must be"):
        LockBox(None, "c", "holder", priority=bad)  # type: ignore[arg-type]
    if bad is not None:
        with pytest.raises(InvalidConfig, match=r"job\.priority: must be"):
            JobConfig(command="Noop", num_tasks=1, priority=bad)  # type: ignore[arg-type]
