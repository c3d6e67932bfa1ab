"""``helixpy job ...``: add tasks to and delete tasks from a running job; a task's error;
its tasks' results."""

from __future__ import annotations

import json
from typing import Any

import click

from helixpy.cli import as_json, cluster_options, driver_call, main, output_option


@main.group()
def job() -> None:
    """Change the tasks of a running job; read a task's full error or its results."""


@job.command("add-task")
@cluster_options
@click.argument("workflow")
@click.argument("job_name")
@click.argument("task_id")
@click.option("--command", default=None, help="Only when the job has no command.")
@click.option(
    "--config",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Task config entries (repeatable): KEY=VALUE sets a string, KEY:=JSON any JSON "
    "value (KEY:=3, KEY:='[1, 2]', KEY:=true).",
)
@click.pass_obj
def job_add_task(
    obj: dict[str, Any],
    workflow: str,
    job_name: str,
    task_id: str,
    command: str | None,
    pairs: tuple[str, ...],
) -> None:
    """Add task TASK_ID to JOB_NAME of WORKFLOW."""
    from helixpy.model import TaskConfig

    config: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise click.BadParameter(
                f"{pair!r} is not KEY=VALUE or KEY:=JSON", param_hint="--config"
            )
        if key.endswith(":"):  # KEY:=JSON, a typed value
            key = key[:-1]
            try:
                config[key] = json.loads(value)
            except ValueError as exc:
                raise click.BadParameter(
                    f"{pair!r}: not JSON ({exc})", param_hint="--config"
                ) from None
        else:
            config[key] = value

    def run(driver: Any) -> str:
        driver.add_task(workflow, job_name, TaskConfig(id=task_id, command=command, config=config))
        return f"added task {task_id} to {workflow}/{job_name}"

    driver_call(obj, run)


@job.command("delete-task")
@cluster_options
@click.argument("workflow")
@click.argument("job_name")
@click.argument("task_id")
@click.pass_obj
def job_delete_task(obj: dict[str, Any], workflow: str, job_name: str, task_id: str) -> None:
    """Delete task TASK_ID from JOB_NAME of WORKFLOW (a running attempt is cancelled)."""
    driver_call(
        obj,
        lambda d: (
            d.delete_task(workflow, job_name, task_id)
            or f"deleted task {task_id} from {workflow}/{job_name}"
        ),
    )


@job.command("task-error")
@cluster_options
@click.argument("workflow")
@click.argument("job_name")
@click.argument("task_id")
@click.option("--attempt", type=int, default=None, help="That attempt's (default: the newest).")
@click.pass_obj
def job_task_error(
    obj: dict[str, Any], workflow: str, job_name: str, task_id: str, attempt: int | None
) -> None:
    """Print the full error (traceback included) of TASK_ID's newest failed attempt."""

    def run(driver: Any) -> str:
        text = driver.get_task_error(workflow, job_name, task_id, attempt=attempt)
        if text is None:
            which = f"attempt {attempt} of " if attempt is not None else ""
            return f"no error stored for {which}task {task_id} of {workflow}/{job_name}"
        return str(text)

    driver_call(obj, run)


#: How much of a value a table row shows.
_SHOWN = 100


@job.command("results")
@cluster_options
@click.argument("workflow")
@click.argument("job_name")
@click.argument("task_id", required=False)
@output_option
@click.pass_obj
def job_results(
    obj: dict[str, Any], workflow: str, job_name: str, task_id: str | None, output: str
) -> None:
    """Print the values the job's COMPLETED tasks returned (or TASK_ID's alone).

    A table shows each task's value as compact JSON, cut at 100 characters; ``-o json``
    prints every value whole (a mapping of task id to value, or TASK_ID's value).
    """

    def run(driver: Any) -> str:
        if task_id is not None:
            value = driver.get_task_result(workflow, job_name, task_id)
            return as_json(value) if output == "json" else _compact(value, None)
        results = driver.get_job_results(workflow, job_name)
        if output == "json":
            return as_json(results)
        if not results:
            return f"no task of {workflow}/{job_name} has completed yet"
        width = max(len(t) for t in results)
        return "\n".join(f"{t:<{width}}  {_compact(v, _SHOWN)}" for t, v in results.items())

    driver_call(obj, run)


def _compact(value: Any, cut: int | None) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if cut is None or len(text) <= cut else text[: cut - 3] + "..."


@job.command("content")
@cluster_options
@click.argument("workflow")
@click.argument("job_name", required=False)
@click.argument("task_id", required=False)
@click.option(
    "--set",
    "pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Helix's addOrUpdate*UserContentMap: set KEY first (repeatable; other keys stay).",
)
@output_option
@click.pass_obj
def job_content(
    obj: dict[str, Any],
    workflow: str,
    job_name: str | None,
    task_id: str | None,
    pairs: tuple[str, ...],
    output: str,
) -> None:
    """Print the user content of WORKFLOW, of its job JOB_NAME, or of that job's task
    TASK_ID (after setting each --set KEY=VALUE there)."""
    content: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        content[key] = value

    def run(driver: Any) -> str:
        if job_name is None:
            if content:
                driver.add_or_update_workflow_user_content_map(workflow, content)
            found = driver.get_workflow_user_content_map(workflow)
        elif task_id is None:
            if content:
                driver.add_or_update_job_user_content_map(workflow, job_name, content)
            found = driver.get_job_user_content_map(workflow, job_name)
        else:
            if content:
                driver.add_or_update_task_user_content_map(workflow, job_name, task_id, content)
            found = driver.get_task_user_content_map(workflow, job_name, task_id)
        if output == "json":
            return as_json(found)
        return "\n".join(f"{k}={v}" for k, v in sorted(found.items())) or "(no user content)"

    driver_call(obj, run)


@job.command("last-scheduled")
@cluster_options
@click.argument("workflow")
@output_option
@click.pass_obj
def job_last_scheduled(obj: dict[str, Any], workflow: str, output: str) -> None:
    """Helix's getLastScheduledTaskExecutionInfo: the task of WORKFLOW scheduled last."""

    def run(driver: Any) -> str:
        info = driver.get_last_scheduled_task_execution_info(workflow)
        if output == "json":
            return as_json(
                None
                if info is None
                else {
                    "job": info.job,
                    "partition": info.partition,
                    "task_id": info.task_id,
                    "state": info.state.value if info.state is not None else None,
                    "start_time": info.start_time.isoformat(),
                }
            )
        if info is None:
            return f"no task of {workflow} has been scheduled yet"
        state = info.state.value if info.state is not None else "-"
        return (
            f"{info.job} task {info.task_id} (partition {info.partition}) {state} "
            f"started {info.start_time.isoformat()}"
        )

    driver_call(obj, run)
