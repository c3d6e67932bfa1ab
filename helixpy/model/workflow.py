"""Workflows: a DAG of named jobs plus a ``WorkflowConfig``.

``Workflow.builder(name)`` mirrors Helix's ``Workflow.Builder``; ``build()`` validates the
DAG (known job names, no cycles, capacity). The YAML schema is documented in
``docs/workflow-yaml.md`` and implemented in :mod:`helixpy.model.yaml_codec`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from helixpy.errors import InvalidConfig
from helixpy.model.config import JobConfig, ScheduleConfig, WorkflowConfig
from helixpy.model.names import check_name


@dataclass(frozen=True, kw_only=True)
class Workflow:
    """A validated workflow: name, config, jobs and their parents."""

    name: str
    config: WorkflowConfig = field(default_factory=WorkflowConfig)
    jobs: Mapping[str, JobConfig] = field(default_factory=dict)
    parents: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_name("workflow.name", self.name)
        if not isinstance(self.config, WorkflowConfig):
            raise InvalidConfig("workflow.config", "must be a WorkflowConfig")
        jobs = dict(self.jobs)
        for job_name, job in jobs.items():
            check_name("job.name", job_name)
            if not isinstance(job, JobConfig):
                raise InvalidConfig(f"jobs.{job_name}", "must be a JobConfig")
        parents: dict[str, frozenset[str]] = {name: frozenset() for name in jobs}
        for child, ps in self.parents.items():
            if child not in jobs:
                raise InvalidConfig("dependency.child", f"unknown job {child!r}")
            for parent in ps:
                if parent not in jobs:
                    raise InvalidConfig("dependency.parent", f"unknown job {parent!r}")
            parents[child] = frozenset(ps)
        for job_name, job in jobs.items():
            if job.expand is not None and job.expand not in parents[job_name]:
                raise InvalidConfig(
                    f"jobs.{job_name}.expand",
                    f"must name a parent job of {job_name} (got {job.expand!r})",
                )
        cycle = find_cycle(parents)
        if cycle:
            raise InvalidConfig("dependencies", "form a cycle: " + " -> ".join(cycle))
        if self.config.capacity is not None and len(jobs) > self.config.capacity:
            raise InvalidConfig(
                "workflow.capacity",
                f"the workflow has {len(jobs)} jobs, more than its capacity {self.config.capacity}",
            )
        object.__setattr__(self, "jobs", jobs)
        object.__setattr__(self, "parents", parents)

    @staticmethod
    def builder(name: str) -> WorkflowBuilder:
        """Start building a workflow called ``name``."""
        return WorkflowBuilder(name)

    def children(self) -> dict[str, frozenset[str]]:
        """Each job's direct children."""
        out: dict[str, set[str]] = {name: set() for name in self.jobs}
        for child, ps in self.parents.items():
            for parent in ps:
                out[parent].add(child)
        return {k: frozenset(v) for k, v in out.items()}

    def topological_order(self) -> list[str]:
        """Jobs in an order where every parent precedes its children (ties by name)."""
        return topological_order(self.parents)

    def to_dict(self) -> dict[str, Any]:
        jobs: dict[str, Any] = {}
        for name in self.topological_order():
            entry = self.jobs[name].to_dict()
            if self.parents[name]:
                entry["parents"] = sorted(self.parents[name])
            jobs[name] = entry
        out: dict[str, Any] = {"name": self.name}
        cfg = self.config.to_dict()
        if cfg:
            out["config"] = cfg
        out["jobs"] = jobs
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Workflow:
        if not isinstance(data, Mapping):
            raise InvalidConfig("workflow", "must be a mapping")
        for key in data:
            if key not in ("name", "config", "jobs"):
                raise InvalidConfig(str(key), "unknown field (expected name, config, jobs)")
        if "name" not in data:
            raise InvalidConfig("name", "is required")
        # Names and parents are checked here, against document paths, so a YAML error can
        # point at the line (the builder's own errors name builder arguments instead).
        builder = cls.builder(check_name("name", data["name"]))
        builder.set_config(WorkflowConfig.from_dict(data.get("config") or {}, "config"))
        jobs = data.get("jobs") or {}
        if not isinstance(jobs, Mapping):
            raise InvalidConfig("jobs", "must be a mapping of job name to job")
        deps: list[tuple[str, str]] = []
        for job_name, raw in jobs.items():
            prefix = f"jobs.{job_name}"
            if not isinstance(raw, Mapping):
                raise InvalidConfig(prefix, "must be a mapping")
            check_name(prefix, job_name)
            body = dict(raw)
            parents = body.pop("parents", None) or []
            if isinstance(parents, str) or not isinstance(parents, list):
                raise InvalidConfig(f"{prefix}.parents", "must be a list of job names")
            for parent in parents:
                if parent not in jobs:
                    raise InvalidConfig(f"{prefix}.parents", f"unknown job {parent!r}")
            builder.add_job(str(job_name), JobConfig.from_dict(body, prefix))
            deps.extend((str(p), str(job_name)) for p in parents)
        for parent, child in deps:
            builder.add_parent_child_dependency(parent, child)
        return builder.build()

    @classmethod
    def from_yaml(cls, text: str) -> Workflow:
        """Parse the documented YAML schema; errors name the line or the field."""
        from helixpy.model.yaml_codec import workflow_from_yaml

        return workflow_from_yaml(text)

    def to_yaml(self) -> str:
        """Serialize to the YAML schema ``from_yaml`` reads."""
        from helixpy.model.yaml_codec import workflow_to_yaml

        return workflow_to_yaml(self)


class WorkflowBuilder:
    """Helix-style builder; every method returns the builder."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._config = WorkflowConfig()
        self._jobs: dict[str, JobConfig] = {}
        self._parents: dict[str, set[str]] = {}
        self._pending_deps: list[tuple[str, str]] = []

    def add_job(self, name: str, job_config: JobConfig) -> WorkflowBuilder:
        check_name("job.name", name)
        if name in self._jobs:
            raise InvalidConfig("job.name", f"duplicate job {name!r}")
        if not isinstance(job_config, JobConfig):
            raise InvalidConfig(f"jobs.{name}", "must be a JobConfig")
        self._jobs[name] = job_config
        self._parents.setdefault(name, set())
        return self

    def add_parent_child_dependency(self, parent: str, child: str) -> WorkflowBuilder:
        # Names are checked in build(): Helix allows declaring edges before the jobs.
        self._pending_deps.append((parent, child))
        return self

    def set_config(self, workflow_config: WorkflowConfig) -> WorkflowBuilder:
        if not isinstance(workflow_config, WorkflowConfig):
            raise InvalidConfig("workflow.config", "must be a WorkflowConfig")
        self._config = workflow_config
        return self

    def set_schedule_config(self, schedule: ScheduleConfig) -> WorkflowBuilder:
        """Run the workflow on ``schedule`` (kept in its config; the DAG is untouched)."""
        if not isinstance(schedule, ScheduleConfig):
            raise InvalidConfig("workflow.schedule", "must be a ScheduleConfig")
        self._config = replace(self._config, schedule=schedule)
        return self

    def build(self) -> Workflow:
        parents = {name: set(ps) for name, ps in self._parents.items()}
        for parent, child in self._pending_deps:
            if parent not in self._jobs:
                raise InvalidConfig("dependency.parent", f"unknown job {parent!r}")
            if child not in self._jobs:
                raise InvalidConfig("dependency.child", f"unknown job {child!r}")
            parents[child].add(parent)
        return Workflow(
            name=self._name,
            config=self._config,
            jobs=dict(self._jobs),
            parents={k: frozenset(v) for k, v in parents.items()},
        )


def find_cycle(parents: Mapping[str, frozenset[str]]) -> list[str]:
    """A cycle in the parent graph as a list of names (first repeated last), or []."""
    white, grey, black = 0, 1, 2
    color = dict.fromkeys(parents, white)
    for start in sorted(parents):
        if color[start] != white:
            continue
        # Iterative DFS: workflows may be deep, and Python's stack must not grow with them.
        stack: list[tuple[str, list[str]]] = [(start, sorted(parents[start]))]
        path = [start]
        color[start] = grey
        while stack:
            node, todo = stack[-1]
            if todo:
                nxt = todo.pop()
                if color.get(nxt, black) == grey:
                    idx = path.index(nxt)
                    return [*path[idx:], nxt][::-1]
                if color.get(nxt) == white:
                    color[nxt] = grey
                    path.append(nxt)
                    stack.append((nxt, sorted(parents[nxt])))
            else:
                color[node] = black
                path.pop()
                stack.pop()
    return []


def topological_order(parents: Mapping[str, Iterable[str]]) -> list[str]:
    """Names ordered so every parent precedes its children; among ready ones, by name.

    Kahn's algorithm with a heap: O((V + E) log V), so large DAGs stay cheap to order.
    Names that only appear as parents are ignored; a cycle's members are left out.
    """
    pending = {name: 0 for name in parents}
    children: dict[str, list[str]] = {name: [] for name in parents}
    for child, ps in parents.items():
        for parent in ps:
            if parent in pending:
                pending[child] += 1
                children[parent].append(child)
    ready = [name for name, n in pending.items() if n == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            pending[child] -= 1
            if pending[child] == 0:
                heapq.heappush(ready, child)
    return order
