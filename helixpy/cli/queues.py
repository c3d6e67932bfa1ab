"""``helixpy queue ...``: create job queues and manage their jobs."""

from __future__ import annotations

from typing import Any

import click

from helixpy.cli import cluster_options, driver_call, main


@main.group()
def queue() -> None:
    """Create job queues and manage their jobs."""


@queue.command("create")
@cluster_options
@click.argument("name")
@click.option("--parallel-jobs", type=int, default=1, show_default=True)
@click.option("--capacity", type=int, default=None, help="Most jobs the queue may hold.")
@click.option(
    "--allow-overlap-job-assignment",
    is_flag=True,
    help="Let its active jobs share participants (Helix's default: they do not).",
)
@click.option(
    "--recurrence",
    type=float,
    default=None,
    metavar="SECONDS",
    help="A recurring queue: every SECONDS its jobs run, in order, as NAME_<timestamp>.",
)
@click.option(
    "--start-time",
    type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z"]),
    default=None,
    help="With --recurrence: the first run (ISO time with offset; default: now).",
)
@click.pass_obj
def queue_create(
    obj: dict[str, Any],
    name: str,
    parallel_jobs: int,
    capacity: int | None,
    allow_overlap_job_assignment: bool,
    recurrence: float | None,
    start_time: Any,
) -> None:
    """Create and start a job queue."""
    from helixpy.model import JobQueue, ScheduleConfig, WorkflowConfig

    if start_time is not None and recurrence is None:
        raise click.BadParameter("needs --recurrence", param_hint="--start-time")

    def run(driver: Any) -> str:
        schedule = (
            ScheduleConfig(start_time=start_time, recurrence_interval=recurrence)
            if recurrence is not None
            else None
        )
        cfg = WorkflowConfig(
            parallel_jobs=parallel_jobs,
            capacity=capacity,
            allow_overlap_job_assignment=allow_overlap_job_assignment,
            schedule=schedule,
        )
        driver.create_queue(JobQueue.builder(name).set_config(cfg).build())
        return f"created queue {name}" + (f", recurring every {recurrence:g}s" if schedule else "")

    driver_call(obj, run)


@queue.command("enqueue")
@cluster_options
@click.argument("name")
@click.argument("file", type=click.File("r"))
@click.pass_obj
def queue_enqueue(obj: dict[str, Any], name: str, file: Any) -> None:
    """Append the jobs of a YAML FILE (a mapping of job name to job fields), in order."""
    import yaml

    from helixpy.errors import InvalidConfig
    from helixpy.model import JobConfig

    def run(driver: Any) -> str:
        raw = yaml.safe_load(file.read())
        if not isinstance(raw, dict) or not raw:
            raise InvalidConfig("jobs", "the file must map job names to job fields")
        jobs = {str(n): JobConfig.from_dict(j, f"jobs.{n}") for n, j in raw.items()}
        driver.enqueue_jobs(name, jobs)
        return f"enqueued {', '.join(jobs)} to {name}"

    driver_call(obj, run)


@queue.command("delete-job")
@cluster_options
@click.argument("name")
@click.argument("job")
@click.option("--force", is_flag=True, help="Delete even while the queue runs.")
@click.pass_obj
def queue_delete_job(obj: dict[str, Any], name: str, job: str, force: bool) -> None:
    """Remove a job from a queue."""
    driver_call(obj, lambda d: d.delete_job(name, job, force=force) or f"deleted {job}")


@queue.command("flush")
@cluster_options
@click.argument("name")
@click.pass_obj
def queue_flush(obj: dict[str, Any], name: str) -> None:
    """Remove a queue's COMPLETED, FAILED and ABORTED jobs."""
    driver_call(obj, lambda d: d.flush_queue(name) or f"flushed {name}")


@queue.command("cleanup")
@cluster_options
@click.argument("name")
@click.pass_obj
def queue_cleanup(obj: dict[str, Any], name: str) -> None:
    """Helix's cleanupQueue: the same as `queue flush`."""
    driver_call(obj, lambda d: d.cleanup_queue(name) or f"cleaned up {name}")
