"""Reading an ASSIGNMENT: stale ones yield nothing, unreadable entries are skipped by name."""

from __future__ import annotations

from helixpy.participant.assignment import Entry, readable_entries


def test_good_entries_are_read_and_bad_ones_named_and_skipped() -> None:
    body = {
        "inc": 3,
        "tasks": {
            "wf/j/0": {"a": 2, "t": "RUN", "u": "uid.1"},
            "wf/j/1": {"a": 1, "t": "STOP"},
            "wf/j/2": "garbage",
            "wf/j/3": {"a": "1", "t": "RUN"},
            "wf/j/4": {"a": 1, "t": "EXPLODE"},
            "no-key": {"a": 1, "t": "RUN"},
            "wf/j/x": {"a": 1, "t": "RUN"},
            "wf/j/5": {"a": True, "t": "RUN"},
        },
    }
    entries, problems = readable_entries(body, 3)
    assert entries == {"wf/j/0": Entry(2, "RUN", "uid.1"), "wf/j/1": Entry(1, "STOP", "")}
    assert len(problems) == 6
    assert any("'wf/j/2': entry is a str" in p for p in problems)
    assert any("target 'EXPLODE'" in p for p in problems)


def test_a_stale_or_unreadable_assignment_yields_nothing() -> None:
    assert readable_entries({"inc": 2, "tasks": {"w/j/0": {"a": 1, "t": "RUN"}}}, 3) == ({}, [])
    assert readable_entries({}, 3) == ({}, [])
    assert readable_entries(None, 3) == ({}, [])
    assert readable_entries(["x"], 3)[1] == ["not a mapping: list"]
    assert readable_entries({"inc": 3, "tasks": [1]}, 3)[1] == ["tasks is not a mapping: list"]
