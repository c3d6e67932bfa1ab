"""An example task module of your own, for the compose cluster.

./tasks is mounted read-only at /app/tasks in every participant, and /app/tasks is on
PYTHONPATH, so this module is ``mytasks`` there. Run the participants with it:

    HELIXPY_TASKS=mytasks:registry docker compose up -d

and start workflows/hello.yaml (its jobs use the commands below). A participant runs only
the commands in the registry it loaded; a job naming any other command ends ERROR
``unknown command``.
"""

from __future__ import annotations

from helixpy import TaskRegistry, TaskResult, TaskStatus
from helixpy.participant.registry import TaskContext

registry = TaskRegistry()


@registry.task("Hello")
def hello(ctx: TaskContext) -> TaskResult:
    """Greets ``who`` (task config) and records the greeting in the task's user content."""
    greeting = f"hello, {ctx.task_config.get('who', 'world')}"
    ctx.put_user_content("greeting", greeting)
    return TaskResult(TaskStatus.COMPLETED, greeting)


@registry.task("Shout")
def shout(ctx: TaskContext) -> TaskResult:
    """Upper-cases ``text`` (task config); FAILED when there is none."""
    text = ctx.task_config.get("text", "")
    if not text:
        return TaskResult(TaskStatus.FAILED, "no text to shout")
    return TaskResult(TaskStatus.COMPLETED, text.upper())
