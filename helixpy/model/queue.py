"""Job queues: non-terminable workflows whose jobs run in enqueue order (Helix's JobQueue)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from helixpy.errors import InvalidConfig
from helixpy.model.config import JobConfig, WorkflowConfig
from helixpy.model.names import check_name


@dataclass(frozen=True, kw_only=True)
class JobQueue:
    """A queue: a name, a config (``parallel_jobs``, ``capacity``, expiries) and jobs in order.

    A queue never completes or fails and ignores its timeout and failure threshold, so
    ``config.terminable`` is always False. A queue job becomes ready once the job before it
    has started and fewer than ``parallel_jobs`` of the queue's jobs are running.
    """

    name: str
    config: WorkflowConfig = field(default_factory=WorkflowConfig)
    jobs: Mapping[str, JobConfig] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("queue.name", self.name)
        if not isinstance(self.config, WorkflowConfig):
            raise InvalidConfig("queue.config", "must be a WorkflowConfig")
        object.__setattr__(self, "config", replace(self.config, terminable=False))
        jobs = dict(self.jobs)
        for name, job in jobs.items():
            check_name("job.name", name)
            if not isinstance(job, JobConfig):
                raise InvalidConfig(f"jobs.{name}", "must be a JobConfig")
        check_capacity(self.config, 0, len(jobs))
        object.__setattr__(self, "jobs", jobs)

    @staticmethod
    def builder(name: str) -> JobQueueBuilder:
        return JobQueueBuilder(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        cfg = self.config.to_dict()
        if cfg:
            out["config"] = cfg
        out["jobs"] = {name: job.to_dict() for name, job in self.jobs.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobQueue:
        if not isinstance(data, Mapping):
            raise InvalidConfig("queue", "must be a mapping")
        for key in data:
            if key not in ("name", "config", "jobs"):
                raise InvalidConfig(str(key), "unknown field (expected name, config, jobs)")
        jobs = data.get("jobs") or {}
        if not isinstance(jobs, Mapping):
            raise InvalidConfig("jobs", "must be a mapping of job name to job")
        return cls(
            name=check_name("name", data.get("name")),
            config=WorkflowConfig.from_dict(data.get("config") or {}, "config"),
            jobs={
                check_name(f"jobs.{n}", n): JobConfig.from_dict(j, f"jobs.{n}")
                for n, j in jobs.items()
            },
        )


def check_capacity(config: WorkflowConfig, current: int, adding: int) -> None:
    """Refuse to grow a queue past its ``capacity`` (nothing is written on refusal)."""
    if config.capacity is not None and current + adding > config.capacity:
        raise InvalidConfig(
            "queue.capacity",
            f"the queue is full: it holds {current} of {config.capacity} jobs, "
            f"no room for {adding} more",
        )


class JobQueueBuilder:
    """Builder mirroring Helix's ``JobQueue.Builder``; every method returns the builder."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._config = WorkflowConfig(terminable=False)
        self._jobs: dict[str, JobConfig] = {}

    def set_config(self, config: WorkflowConfig) -> JobQueueBuilder:
        self._config = config
        return self

    def enqueue_job(self, name: str, job: JobConfig) -> JobQueueBuilder:
        if name in self._jobs:
            raise InvalidConfig("job.name", f"duplicate job {name!r}")
        self._jobs[name] = job
        return self

    def build(self) -> JobQueue:
        return JobQueue(name=self._name, config=self._config, jobs=dict(self._jobs))
