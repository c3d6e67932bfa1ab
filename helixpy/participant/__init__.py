"""Participants: registration and self-fencing, task runner, task registry."""

from helixpy.participant.daemon import Participant, RunState
from helixpy.participant.registry import Task, TaskContext, TaskRegistry

__all__ = ["Participant", "RunState", "Task", "TaskContext", "TaskRegistry"]
