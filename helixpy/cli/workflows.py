"""``helixpy workflow ...``: start, inspect, stop, resume and delete workflows."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import click

from helixpy.cli import _status_text, cluster_options, driver_call, main, make_driver
from helixpy.errors import HelixpyError
from helixpy.model import TaskState, Workflow


@main.group()
def workflow() -> None:
    """Start and inspect workflows."""


@workflow.command("start")
@cluster_options
@click.argument("file", type=click.File("r"))
@click.pass_obj
def workflow_start(obj: dict[str, Any], file: Any) -> None:
    """Start the workflow described by a YAML FILE."""
    try:
        wf = Workflow.from_yaml(file.read())
        with make_driver(obj) as driver:
            driver.start(wf)
    except HelixpyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"started {wf.name}")


@workflow.command("status")
@cluster_options
@click.argument("name")
@click.pass_obj
def workflow_status(obj: dict[str, Any], name: str) -> None:
    """Show a workflow's state and its jobs' progress."""
    try:
        with make_driver(obj) as driver:
            click.echo(_status_text(driver, name))
    except HelixpyError as exc:
        raise click.ClickException(str(exc)) from exc


@workflow.command("stop")
@cluster_options
@click.argument("name")
@click.option("--wait", "wait", type=float, default=None, help="Wait up to SECONDS for STOPPED.")
@click.pass_obj
def workflow_stop(obj: dict[str, Any], name: str, wait: float | None) -> None:
    """Stop a workflow: running tasks are cancelled, nothing new starts."""

    def run(driver: Any) -> str:
        if wait is None:
            driver.stop(name)
            return f"stopping {name}"
        driver.wait_to_stop(name, timeout=wait)
        return f"stopped {name}"

    driver_call(obj, run)


@workflow.command("resume")
@cluster_options
@click.argument("name")
@click.pass_obj
def workflow_resume(obj: dict[str, Any], name: str) -> None:
    """Resume a stopped workflow."""
    driver_call(obj, lambda d: d.resume(name) or f"resumed {name}")


@workflow.command("delete")
@cluster_options
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it from ZooKeeper directly (no controller).")
@click.pass_obj
def workflow_delete(obj: dict[str, Any], name: str, force: bool) -> None:
    """Delete a workflow and everything it stored."""
    driver_call(obj, lambda d: d.delete(name, force=force) or f"deleted {name}")


@workflow.command("list")
@cluster_options
@click.pass_obj
def workflow_list(obj: dict[str, Any]) -> None:
    """List workflows with their states."""

    def run(driver: Any) -> str:
        rows = []
        for name in sorted(driver.get_workflows()):
            try:
                state = driver.get_workflow_context(name).state.value
            except HelixpyError:
                state = "?"
            rows.append(f"{name:<40} {state}")
        return "\n".join(rows) or "(no workflows)"

    driver_call(obj, run)


@workflow.command("watch")
@cluster_options
@click.argument("name")
@click.option("--timeout", type=float, default=3600.0, show_default=True)
@click.pass_obj
def workflow_watch(obj: dict[str, Any], name: str, timeout: float) -> None:
    """Show a workflow's progress as it changes, until it finishes."""

    def run(driver: Any) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            text = _status_text(driver, name)
            if text != last:
                click.echo(text)
                last = text
            state = driver.get_workflow_context(name).state
            if state.is_final or time.monotonic() >= deadline:
                return
            others = [s for s in TaskState if s is not state]
            # Wakes on a workflow state change; the 1 s bound refreshes task progress.
            with contextlib.suppress(TimeoutError):
                driver.poll_for_workflow_state(name, *others, timeout=1.0)

    driver_call(obj, run)
