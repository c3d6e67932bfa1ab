"""Small shared helpers for cluster tests."""

from __future__ import annotations

from helixpy import JobConfig, TaskState
from helixpy.driver import TaskDriver

FINAL = (TaskState.COMPLETED, TaskState.FAILED, TaskState.TIMED_OUT, TaskState.ABORTED)


def record_job(n: int, seconds: float = 0.05, **kw: object) -> JobConfig:
    """A job of ``n`` Record tasks (they write instance, attempt, times to task content)."""
    return JobConfig(command="Record", num_tasks=n,
                     command_config={"seconds": str(seconds)}, **kw)  # type: ignore[arg-type]


def wait_final(driver: TaskDriver, name: str, timeout: float = 120.0) -> TaskState:
    return driver.poll_for_workflow_state(name, *FINAL, timeout=timeout)


def task_records(driver: TaskDriver, wf: str, job: str) -> list[dict[str, str]]:
    """The Record tasks' task-scope content, in partition order."""
    ctx = driver.get_job_context(wf, job)
    return [driver.get_task_user_content_map(wf, job, t.task_id)
            for _, t in sorted(ctx.tasks.items())]
