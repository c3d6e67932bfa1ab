"""``helixpy workflow ...``: start, inspect, stop, resume and delete workflows."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import click

from helixpy.cli import (
    _status_text,
    as_json,
    cluster_options,
    driver_call,
    main,
    make_driver,
    output_option,
    status_lines,
)
from helixpy.cli import workflow_status as status_of
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
    wf = Workflow.from_yaml(file.read())
    with make_driver(obj) as driver:
        driver.start(wf)
    click.echo(f"started {wf.name}")


@workflow.command("status")
@cluster_options
@click.argument("name")
@output_option
@click.pass_obj
def workflow_status(obj: dict[str, Any], name: str, output: str) -> None:
    """Show a workflow's state and its jobs' progress."""
    driver_call(
        obj,
        lambda d: as_json(status_of(d, name)) if output == "json" else _status_text(d, name),
    )


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


@workflow.command("rerun")
@cluster_options
@click.argument("name")
@click.pass_obj
def workflow_rerun(obj: dict[str, Any], name: str) -> None:
    """Run what did not complete of a FAILED, TIMED_OUT or STOPPED workflow again.

    Its failed, timed-out, aborted, stopped and never-run jobs start over (attempts from
    1); completed jobs keep their results, and every job its user content.
    """
    driver_call(obj, lambda d: d.rerun_failed(name) or f"rerunning what failed of {name}")


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
@output_option
@click.pass_obj
def workflow_list(obj: dict[str, Any], output: str) -> None:
    """List workflows with their states."""

    def run(driver: Any) -> str:
        found = []
        for name in sorted(driver.get_workflows()):
            try:
                state = driver.get_workflow_context(name).state.value
            except HelixpyError:
                state = "?"
            found.append({"workflow": name, "state": state})
        if output == "json":
            return as_json(found)
        return "\n".join(f"{w['workflow']:<40} {w['state']}" for w in found) or "(no workflows)"

    driver_call(obj, run)


@workflow.command("watch")
@cluster_options
@click.argument("name")
@click.option("--timeout", type=float, default=3600.0, show_default=True)
@click.pass_obj
def workflow_watch(obj: dict[str, Any], name: str, timeout: float) -> None:
    """Show a workflow's progress as it changes, until it finishes: a progress bar per job
    on a terminal, a status block per change otherwise."""

    def changes(driver: Any) -> Iterator[dict[str, Any]]:
        """The workflow's status each time it may have changed, until it is final."""
        deadline = time.monotonic() + timeout
        while True:
            status = status_of(driver, name)
            yield status
            state = TaskState(status["state"])
            if state.is_final or time.monotonic() >= deadline:
                return
            others = [s for s in TaskState if s is not state]
            # Wakes on a workflow state change; the 1 s bound refreshes task progress.
            with contextlib.suppress(TimeoutError):
                driver.poll_for_workflow_state(name, *others, timeout=1.0)

    def text(driver: Any) -> None:
        last = ""
        for status in changes(driver):
            now = status_lines(status)
            if now != last:
                click.echo(now)
                last = now

    def bars(driver: Any) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        columns = (
            TextColumn("{task.description:<24}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
        )
        with Progress(*columns) as progress:
            ids: dict[str, Any] = {}
            head = progress.add_task(f"workflow {name}", total=None, state="")
            for status in changes(driver):
                progress.update(head, state=status["state"])
                for job in status["jobs"]:
                    if job["job"] not in ids:
                        ids[job["job"]] = progress.add_task(
                            f"  {job['job']}", total=job["tasks"], state=""
                        )
                    progress.update(
                        ids[job["job"]],
                        completed=job["completed"],
                        total=job["tasks"],
                        state=job["state"],
                    )

    # Live bars on a terminal; plain lines (one per change) when piped or captured.
    driver_call(obj, lambda d: (bars if sys.stdout.isatty() else text)(d))
