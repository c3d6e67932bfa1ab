"""Bad STATE reports are skipped one by one: a pass that failed on them would fail forever
(the pass restores what it drained and reads the same node again)."""

from __future__ import annotations

from types import SimpleNamespace

from helixpy.controller import rules
from helixpy.controller.membership import Membership
from helixpy.model import JobConfig, TaskPartitionState, Workflow
from helixpy.store.codec import encode
from helixpy.store.paths import Paths
from tests.unit.test_rules import NOW, inst, run_all, runtime


def members_with_one_running_task() -> tuple[Membership, SimpleNamespace]:
    wf = runtime(Workflow.builder("w").add_job("j", JobConfig(command="x", num_tasks=1)).build())
    rules.evaluate_workflow(wf, NOW)
    run_all(wf.jobs["j"], {"i": inst("i")})
    pipeline = SimpleNamespace(paths=Paths("c"), workflows={"w": wf}, metrics=None)
    return Membership(pipeline), pipeline  # type: ignore[arg-type]


def test_a_state_node_that_is_not_a_mapping_is_ignored() -> None:
    members, pipeline = members_with_one_running_task()
    members._apply_reports("i", 1, encode([1, 2, 3]), NOW)
    assert pipeline.workflows["w"].jobs["j"].tasks[0].state is TaskPartitionState.INIT


def test_a_bad_entry_is_skipped_and_the_good_one_beside_it_is_folded() -> None:
    # Given a report whose start time cannot be a date, beside a good report
    members, pipeline = members_with_one_running_task()
    job = pipeline.workflows["w"].jobs["j"]
    reports = {
        "w/j/0": {"a": 1, "s": "COMPLETED", "st": 1e20},
        "w/j/zz": {"a": 1, "s": "COMPLETED"},
    }
    # When they are folded, nothing raises; then the good one goes through
    members._apply_reports("i", 1, encode(reports), NOW)
    members._apply_reports("i", 1, encode({"w/j/0": {"a": 1, "s": "COMPLETED"}}), NOW)
    assert job.tasks[0].state is TaskPartitionState.COMPLETED
