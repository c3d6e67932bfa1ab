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


def test_a_config_sent_along_is_read_with_its_entry_and_a_bad_one_is_skipped() -> None:
    # Given an entry carrying its job's CONFIG payload and one whose "c" is not a mapping
    head = {"command": "Noop", "num_tasks": 1, "task_chunks": 0}
    body = {
        "inc": 1,
        "tasks": {
            "wf/j/0": {"a": 1, "t": "RUN", "u": "uid.0", "c": head},
            "wf/j/1": {"a": 1, "t": "RUN", "u": "uid.0", "c": "Noop"},
        },
    }
    # When the assignment is read
    entries, problems = readable_entries(body, 1)
    # Then the first keeps its config and the second is named as unreadable
    assert entries == {"wf/j/0": Entry(1, "RUN", "uid.0", head)}
    assert problems == ["'wf/j/1': config is a str"]


def test_a_small_job_config_rides_in_the_assignment_and_a_large_one_does_not() -> None:
    # Given jobs with a small config, a large command_config and explicit task configs
    from helixpy.controller.runtime import ASSIGNMENT_CONFIG_BYTES, JobRuntime
    from helixpy.model import JobConfig, TaskConfig
    from helixpy.store.records import job_config_from_head

    small = JobConfig(command="Noop", num_tasks=1, max_attempts_per_task=1)
    big = JobConfig(
        command="Noop", num_tasks=1, command_config={"k": "x" * ASSIGNMENT_CONFIG_BYTES}
    )
    tasks = JobConfig(command="Noop", tasks=[TaskConfig(id="t0")])
    job = JobRuntime(workflow="wf", name="j", config=small, tasks=[])
    # When the pass asks each for what its entries carry
    head = job.assignment_config()
    # Then the small one gives its CONFIG payload (the same dict each time, and the config
    # read back from it is the job's), the others nothing
    assert head is not None and head["task_chunks"] == 0
    assert job.assignment_config() is head
    assert job_config_from_head(None, None, "wf", "j", head) == small  # type: ignore[arg-type]
    assert JobRuntime(workflow="wf", name="j", config=big, tasks=[]).assignment_config() is None
    assert JobRuntime(workflow="wf", name="j", config=tasks, tasks=[]).assignment_config() is None
    # And a replaced config (add_task, targeting) is computed again
    job.config = big
    assert job.assignment_config() is None
