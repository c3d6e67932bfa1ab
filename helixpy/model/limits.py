"""How big one request may make the controller's work: the cluster's size limits.

The leader keeps every active workflow's job and task records in memory, so one request
naming ten million tasks would have it build ten million records (and, under a memory cap,
fail every pass until it runs out of memory, taking its standby down the same way when it
takes over). These limits are checked before anything is built, in the leader's request
handler: the request's bytes (:meth:`Limits.check_request`) before it is parsed, its jobs
and tasks (:meth:`Limits.check_jobs`) right after (so a refusal costs at most the parse,
never a pass); and anywhere a client wants to check first. They are cluster
settings (``set_cluster_config``), with the defaults below; raising them is the operator's
call, and the benches show what the defaults have been measured at (a 100,000-task job,
stored in chunks, runs and survives a failover; a 20,000-job queue runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from helixpy.errors import InvalidConfig
from helixpy.model.config import JobConfig

#: The most bytes the controller's gRPC server receives in one message, whatever the
#: setting: a message is read whole before any check can run.
HARD_MAX_REQUEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """The cluster's limits (cluster settings of the same names)."""

    #: tasks of one job (``num_tasks``, or its ``tasks`` list)
    max_tasks_per_job: int = 100_000
    #: jobs of one workflow, or of one queue start or enqueue request
    max_jobs_per_workflow: int = 10_000
    #: bytes of one gRPC request (at most HARD_MAX_REQUEST_BYTES)
    max_request_bytes: int = 4 * 1024 * 1024

    @classmethod
    def of(cls, cluster_config: Mapping[str, Any]) -> Limits:
        """The limits a cluster config sets (defaults for the ones it leaves out)."""
        given = {k: cluster_config[k] for k in SETTINGS if k in cluster_config}
        return cls(**given)

    def check_request(self, size: int) -> None:
        if size > self.max_request_bytes:
            raise InvalidConfig(
                "request",
                f"is {size} bytes, over the cluster's max_request_bytes={self.max_request_bytes}",
            )

    def check_job(self, where: str, job: JobConfig) -> None:
        count = job.task_count
        if count > self.max_tasks_per_job:
            name = "tasks" if job.tasks else "num_tasks"
            raise InvalidConfig(
                f"{where}.{name}",
                f"{count} tasks is over the cluster's max_tasks_per_job={self.max_tasks_per_job}",
            )

    def check_job_count(self, where: str, count: int) -> None:
        if count > self.max_jobs_per_workflow:
            raise InvalidConfig(
                f"{where}.jobs",
                f"{count} jobs is over the cluster's "
                f"max_jobs_per_workflow={self.max_jobs_per_workflow}",
            )

    def check_jobs(self, where: str, jobs: Mapping[str, JobConfig]) -> None:
        """Check a workflow's (or a queue's, or an enqueue's) jobs, before anything is built."""
        self.check_job_count(where, len(jobs))
        for name, job in jobs.items():
            self.check_job(f"{where}.jobs.{name}", job)


#: The cluster settings that are limits, and their rule.
SETTINGS: Mapping[str, str] = {
    "max_tasks_per_job": "an integer >= 1: the most tasks of one job",
    "max_jobs_per_workflow": "an integer >= 1: the most jobs of one workflow or request",
    "max_request_bytes": (
        f"an integer from 1 to {HARD_MAX_REQUEST_BYTES}: the most bytes of one request"
    ),
}


def valid_setting(key: str, value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return False
    return key != "max_request_bytes" or value <= HARD_MAX_REQUEST_BYTES


#: The most concurrent attempts one participant may advertise (its capacity).
MAX_CAPACITY = 100


def check_capacity(capacity: int, field: str = "capacity") -> int:
    """A participant capacity (worker threads): an integer from 1 to :data:`MAX_CAPACITY`."""
    # The STATE node holds one entry per running or unpruned attempt; the bound keeps it
    # under the payload limit.
    if (
        isinstance(capacity, bool)
        or not isinstance(capacity, int)
        or not 1 <= capacity <= MAX_CAPACITY
    ):
        raise InvalidConfig(field, f"must be an integer from 1 to {MAX_CAPACITY}")
    return capacity
