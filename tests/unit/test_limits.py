"""The cluster's size limits as pure checks: defaults, settings, and the fields they name."""

from __future__ import annotations

import pytest

from helixpy import JobConfig, TaskConfig
from helixpy.errors import InvalidConfig
from helixpy.model.limits import HARD_MAX_REQUEST_BYTES, Limits, valid_setting


def test_defaults_and_settings() -> None:
    assert Limits.of({}) == Limits(100_000, 10_000, 4 * 1024 * 1024)
    assert Limits.of({"max_tasks_per_job": 5, "quota_types": {}}).max_tasks_per_job == 5
    for key in ("max_tasks_per_job", "max_jobs_per_workflow", "max_request_bytes"):
        assert valid_setting(key, 1)
        for bad in (0, -3, 2.0, True, "7", None):
            assert not valid_setting(key, bad)
    assert valid_setting("max_request_bytes", HARD_MAX_REQUEST_BYTES)
    assert not valid_setting("max_request_bytes", HARD_MAX_REQUEST_BYTES + 1)


def test_each_check_names_its_field_and_limit() -> None:
    limits = Limits(max_tasks_per_job=2, max_jobs_per_workflow=1, max_request_bytes=10)
    listed = JobConfig(command="Noop", tasks=[TaskConfig(id=str(i)) for i in range(3)])
    with pytest.raises(InvalidConfig, match="max_tasks_per_job=2") as exc:
        limits.check_jobs("workflow", {"a": listed})
    assert exc.value.field == "workflow.jobs.a.tasks"
    with pytest.raises(InvalidConfig, match="max_jobs_per_workflow=1") as exc:
        limits.check_jobs("queue", {"a": JobConfig(command="x", num_tasks=1)} | {"b": listed})
    assert exc.value.field == "queue.jobs"
    with pytest.raises(InvalidConfig, match="11 bytes") as exc:
        limits.check_request(11)
    assert exc.value.field == "request"
    limits.check_request(10)
    limits.check_jobs("workflow", {"a": JobConfig(command="x", num_tasks=2)})
