"""The pipeline's pending-work box: what a failed pass drained must come back."""

from __future__ import annotations

from helixpy.controller.signals import Command, Signals


def test_a_failed_pass_puts_back_everything_it_drained_and_unanswered_commands_go_first() -> None:
    # Given pending reports from two instances, a membership change and two commands
    signals = Signals()
    signals.drain()  # the initial "read everything" flags
    signals.mark_instance("a")
    signals.mark_instance("b")
    signals.mark_membership()
    answered, unanswered = Command("start", "r1", None), Command("start", "r2", None)
    signals.submit(answered)
    signals.submit(unanswered)
    pending = signals.drain()
    answered.future.set_result({"code": "OK"})
    # and new work that arrives while the pass runs
    later = Command("delete", "r3", None)
    signals.submit(later)
    signals.mark_instance("c")
    # When the pass fails and restores what it drained
    signals.restore(pending)
    # Then the next drain has all of it, the unanswered command ahead of the later one
    again = signals.drain()
    assert again.instances == {"a", "b", "c"}
    assert again.membership
    assert [c.request_id for c in again.commands] == ["r2", "r3"]
    assert signals.drain().instances == set()


def test_a_reconnect_asks_for_every_instance_and_the_membership() -> None:
    signals = Signals()
    signals.drain()
    # When the session reconnects
    signals.mark_all_instances()
    # Then the next pass re-reads the members and every instance's reports, once
    pending = signals.drain()
    assert pending.all_instances and pending.membership
    assert not signals.drain().all_instances
