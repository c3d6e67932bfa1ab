"""The AsyncTaskDriver offers every public method of the TaskDriver, with its parameters."""

from __future__ import annotations

import inspect

from helixpy.driver import TaskDriver
from helixpy.driver.aio import AsyncTaskDriver


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_")
    }


def test_every_task_driver_method_has_an_async_namesake_with_its_parameters() -> None:
    # Given both drivers' public methods
    sync, aio = _public(TaskDriver), _public(AsyncTaskDriver)
    # Then the async driver has each of the sync driver's, taking the same parameters
    assert sorted(set(sync) - set(aio)) == []
    for name, signature in sync.items():
        assert list(aio[name].parameters) == list(signature.parameters), name
    # and each is a coroutine, but for the future-returning background starts and watch
    plain = {"start_async", "enqueue_job_async", "watch", "open"}
    for name in set(aio) - plain - {"close", "connect"}:
        assert inspect.iscoroutinefunction(getattr(AsyncTaskDriver, name)), name
