"""Hypothesis strategies that generate valid helixpy model objects, and shared helpers.

Every strategy here produces values the model must accept, so a property test can build
them, encode them and decode them without expecting an error.
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from helixpy.errors import InvalidConfig
from helixpy.model import (
    JobConfig,
    TaskConfig,
    TaskContextInfo,
    TaskPartitionState,
    TaskState,
    Workflow,
    WorkflowConfig,
    WorkflowContext,
)

#: Settings for every property test: modest, so the unit suite stays fast; no deadline,
#: so a slow CI machine cannot make a correct test flaky.
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def expect_invalid(field: str, *rule_words: str) -> Iterator[pytest.ExceptionInfo[InvalidConfig]]:
    """Expect ``InvalidConfig`` whose ``field`` is exactly ``field`` and whose rule (and
    message) contains every one of ``rule_words``."""
    with pytest.raises(InvalidConfig) as info:
        yield info
    exc = info.value
    assert exc.field == field, f"field {exc.field!r} != {field!r} (rule: {exc.rule!r})"
    for word in rule_words:
        assert word in exc.rule, f"rule {exc.rule!r} does not mention {word!r}"
        assert word in str(exc), f"message {str(exc)!r} does not mention {word!r}"


#: The characters a name may use.
NAME_ALPHABET = string.ascii_letters + string.digits + "._-"

#: Names that are valid: 1-128 characters of the alphabet, never "." or "..".
names = st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=128).filter(
    lambda s: s not in (".", "..")
)

#: Short valid names (for job names, so DAGs stay readable when a test fails).
short_names = st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)

#: Arbitrary user text (commands, config keys and values, types), lone surrogates included.
_any_char = st.characters(exclude_categories=())
texts = st.text(_any_char, max_size=20)
non_empty_texts = st.text(_any_char, min_size=1, max_size=20)
str_maps = st.dictionaries(texts, texts, max_size=4)

#: Durations in seconds: non-negative ints or finite floats.
durations = st.one_of(
    st.integers(min_value=0, max_value=10**9),
    st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
)
optional_durations = st.none() | durations

#: Fixed-offset time zones, including odd offsets (whole seconds, negative). Sub-second
#: offsets are left out: CPython 3.11's ``datetime.fromisoformat`` drops them.
fixed_timezones = st.one_of(
    st.just(UTC),
    st.builds(
        lambda seconds: timezone(timedelta(seconds=seconds)),
        st.integers(min_value=-(24 * 3600 - 1), max_value=24 * 3600 - 1),
    ),
)

#: Timezone-aware datetimes, as ``execution_start`` requires.
aware_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1),
    max_value=datetime(2999, 12, 31),
    timezones=fixed_timezones,
)

#: Aware datetimes a context stores (as epoch seconds, so microseconds must survive a float).
context_datetimes = st.datetimes(
    min_value=datetime(2000, 1, 1),
    max_value=datetime(2100, 1, 1),
    timezones=fixed_timezones,
)


@st.composite
def task_configs(
    draw: st.DrawFn, *, needs_command: bool = False, targeted: bool = False
) -> TaskConfig:
    command = draw(non_empty_texts) if needs_command else draw(st.none() | non_empty_texts)
    return TaskConfig(
        command=command,
        id=draw(names),
        target_partition=draw(names) if targeted else None,
        config=draw(str_maps),
    )


@st.composite
def job_configs(draw: st.DrawFn) -> JobConfig:
    command = draw(st.none() | non_empty_texts)
    # targeted: a resource, with tasks naming partitions (a started job) or target_partitions
    targeted = command is not None and draw(st.booleans())
    target_partitions: list[str] = []
    if command is None or draw(st.booleans()):
        tasks = draw(
            st.lists(
                task_configs(needs_command=command is None, targeted=targeted),
                min_size=1,
                max_size=4,
                unique_by=lambda t: t.id,
            )
        )
        num_tasks = 0 if targeted else draw(st.sampled_from([0, len(tasks)]))
    elif targeted:
        tasks = []
        num_tasks = 0
        target_partitions = draw(st.lists(names, max_size=4, unique=True))
    else:
        tasks = []
        num_tasks = draw(st.integers(min_value=1, max_value=1000))
    return JobConfig(
        command=command,
        num_tasks=num_tasks,
        tasks=tasks,
        target_resource=draw(names) if targeted else None,
        target_partitions=target_partitions,
        target_partition_states=draw(st.lists(names, max_size=3, unique=True)) if targeted else [],
        command_config=draw(str_maps),
        max_attempts_per_task=draw(st.integers(min_value=1, max_value=100)),
        num_concurrent_tasks_per_instance=draw(st.integers(min_value=1, max_value=100)),
        failure_threshold=draw(st.integers(min_value=0, max_value=100)),
        timeout_per_task=draw(durations),
        timeout=draw(optional_durations),
        task_retry_delay=draw(optional_durations),
        ignore_dependent_job_failure=draw(st.booleans()),
        execution_delay=draw(optional_durations),
        execution_start=draw(st.none() | aware_datetimes),
        instance_group_tag=draw(st.none() | names),
        job_type=draw(st.none() | st.sampled_from(["realtime", "batch", "compaction"]) | texts),
        priority=draw(st.none() | st.integers(min_value=0, max_value=1000)),
        expiry=draw(optional_durations),
        terminal_state_expiry=draw(optional_durations),
        isolation=draw(st.sampled_from(["thread", "process"])),
    )


@st.composite
def workflow_configs(draw: st.DrawFn, *, min_capacity: int = 1) -> WorkflowConfig:
    return WorkflowConfig(
        failure_threshold=draw(st.integers(min_value=0, max_value=100)),
        expiry=draw(durations),
        timeout=draw(optional_durations),
        parallel_jobs=draw(st.integers(min_value=1, max_value=100)),
        capacity=draw(st.none() | st.integers(min_value=min_capacity, max_value=10_000)),
        terminable=draw(st.booleans()),
        job_purge_interval=draw(durations),
        workflow_type=draw(st.none() | texts),
        target_state=draw(st.sampled_from(["START", "STOP", "DELETE"])),
    )


@st.composite
def workflows(draw: st.DrawFn, *, max_jobs: int = 6) -> Workflow:
    """A valid workflow: unique job names and edges only from earlier to later jobs."""
    job_names = draw(st.lists(short_names, min_size=0, max_size=max_jobs, unique=True))
    builder = Workflow.builder(draw(names))
    builder.set_config(draw(workflow_configs(min_capacity=max(1, len(job_names)))))
    for name in job_names:
        builder.add_job(name, draw(job_configs()))
    for child_index in range(1, len(job_names)):
        parent_indexes = draw(
            st.lists(st.integers(min_value=0, max_value=child_index - 1), max_size=3, unique=True)
        )
        for parent_index in parent_indexes:
            builder.add_parent_child_dependency(job_names[parent_index], job_names[child_index])
    return builder.build()


@st.composite
def task_context_infos(draw: st.DrawFn) -> TaskContextInfo:
    return TaskContextInfo(
        task_id=draw(names),
        state=draw(st.none() | st.sampled_from(TaskPartitionState)),
        num_attempts=draw(st.integers(min_value=0, max_value=1000)),
        assigned_participant=draw(st.none() | names),
        incarnation=draw(st.none() | st.integers(min_value=0, max_value=2**53)),
        info=draw(texts),
        start_time=draw(st.none() | context_datetimes),
        finish_time=draw(st.none() | context_datetimes),
        next_retry_time=draw(st.none() | context_datetimes),
    )


@st.composite
def workflow_contexts(draw: st.DrawFn) -> WorkflowContext:
    return WorkflowContext(
        state=draw(st.sampled_from(TaskState)),
        job_states=draw(st.dictionaries(short_names, st.sampled_from(TaskState), max_size=5)),
        start_time=draw(st.none() | context_datetimes),
        finish_time=draw(st.none() | context_datetimes),
        info=draw(texts),
    )
