"""The ZooKeeper path layout (see docs/architecture.md)."""

from __future__ import annotations

import hashlib

from helixpy.model.names import check_name
from helixpy.model.values import TASKS_PER_CHUNK

#: How many tasks one job-context chunk holds. Fixed, and small enough that a chunk of
#: worst-case records (128-character ids and instance names, a full ``info``) stays under
#: the payload limit even uncompressed; tests/unit/test_store_limits.py checks it.
CONTEXT_CHUNK = 160
#: a job of at most this many tasks keeps its task records in its context header
INLINE_TASKS = 8
#: How many task configs one task-config chunk holds.
TASKCONFIG_CHUNK = TASKS_PER_CHUNK  # (the model bounds a chunk's bytes)
#: Job states per workflow-CONTEXT chunk. A workflow of at most this many jobs keeps its
#: jobs' states in its CONTEXT; a bigger one (a long queue) in ``CONTEXT/<i>`` children,
#: chunk i holding the jobs at positions i*JOB_STATES_CHUNK.. of its order, so a pass that
#: changes a few jobs rewrites one chunk, not every job's state.
JOB_STATES_CHUNK = 1000


def task_key(workflow: str, job: str, partition: int) -> str:
    """The key naming one task in assignments and state reports."""
    return f"{workflow}/{job}/{partition}"


def parse_task_key(key: str) -> tuple[str, str, int]:
    workflow, job, partition = key.split("/")
    return workflow, job, int(partition)


def content_shard(task_id: str) -> str:
    """The shard (two hex digits) under which a task's user content lives."""
    return hashlib.sha1(task_id.encode(), usedforsecurity=False).hexdigest()[:2]


class Paths:
    """Every path of one cluster. Pure string building; validates names on the way in."""

    def __init__(self, cluster: str) -> None:
        self.cluster = check_name("cluster", cluster)
        self.root = f"/{cluster}"

    # cluster-wide
    @property
    def config(self) -> str:
        return f"{self.root}/CONFIG"

    @property
    def controller(self) -> str:
        return f"{self.root}/CONTROLLER"

    @property
    def leader(self) -> str:
        return f"{self.root}/CONTROLLER/LEADER"

    @property
    def epoch(self) -> str:
        return f"{self.root}/CONTROLLER/EPOCH"

    @property
    def layout(self) -> str:
        """Present once the ACTIVE and EXPIRY indexes cover every stored workflow."""
        return f"{self.root}/CONTROLLER/LAYOUT"

    @property
    def requests(self) -> str:
        return f"{self.root}/CONTROLLER/REQUESTS"

    def request(self, request_id: str) -> str:
        return f"{self.requests}/{request_id}"

    @property
    def live_instances(self) -> str:
        return f"{self.root}/LIVEINSTANCES"

    def live_instance(self, inst: str) -> str:
        return f"{self.live_instances}/{inst}"

    @property
    def instances(self) -> str:
        return f"{self.root}/INSTANCES"

    def instance(self, inst: str) -> str:
        return f"{self.instances}/{inst}"

    def instance_config(self, inst: str) -> str:
        return f"{self.instance(inst)}/CONFIG"

    def incarnation(self, inst: str) -> str:
        return f"{self.instance(inst)}/INCARNATION"

    def assignment(self, inst: str) -> str:
        return f"{self.instance(inst)}/ASSIGNMENT"

    def partitions(self, inst: str) -> str:
        return f"{self.instance(inst)}/PARTITIONS"

    def partition_resource(self, inst: str, resource: str) -> str:
        return f"{self.partitions(inst)}/{resource}"

    def partition(self, inst: str, resource: str, partition: str) -> str:
        return f"{self.partition_resource(inst, resource)}/{partition}"

    def states(self, inst: str) -> str:
        return f"{self.instance(inst)}/STATE"

    def state(self, inst: str, incarnation: int) -> str:
        return f"{self.states(inst)}/{incarnation}"

    # indexes: which workflows are active, and when finished ones expire
    @property
    def active(self) -> str:
        """One child per workflow that is not retired (see docs/architecture.md)."""
        return f"{self.root}/ACTIVE"

    def active_entry(self, wf: str) -> str:
        return f"{self.active}/{wf}"

    @property
    def expiry(self) -> str:
        """Buckets of finished workflows by due time: ``EXPIRY/<bucket>/<entry>``."""
        return f"{self.root}/EXPIRY"

    def expiry_bucket(self, bucket: int) -> str:
        return f"{self.expiry}/{bucket:012d}"

    def expiry_entry(self, bucket: int, entry: str) -> str:
        return f"{self.expiry_bucket(bucket)}/{entry}"

    # workflows
    @property
    def workflows(self) -> str:
        return f"{self.root}/WORKFLOWS"

    def workflow(self, wf: str) -> str:
        return f"{self.workflows}/{wf}"

    def workflow_config(self, wf: str) -> str:
        return f"{self.workflow(wf)}/CONFIG"

    def workflow_context(self, wf: str) -> str:
        return f"{self.workflow(wf)}/CONTEXT"

    def workflow_context_chunk(self, wf: str, chunk: int) -> str:
        return f"{self.workflow_context(wf)}/{chunk}"

    def workflow_content(self, wf: str) -> str:
        return f"{self.workflow(wf)}/CONTENT"

    def jobs(self, wf: str) -> str:
        return f"{self.workflow(wf)}/JOBS"

    def job(self, wf: str, job: str) -> str:
        return f"{self.jobs(wf)}/{job}"

    def job_config(self, wf: str, job: str) -> str:
        return f"{self.job(wf, job)}/CONFIG"

    def task_configs(self, wf: str, job: str) -> str:
        return f"{self.job(wf, job)}/TASKCONFIGS"

    def task_config_chunk(self, wf: str, job: str, chunk: int) -> str:
        return f"{self.task_configs(wf, job)}/{chunk}"

    def job_context(self, wf: str, job: str) -> str:
        return f"{self.job(wf, job)}/CONTEXT"

    def job_context_chunk(self, wf: str, job: str, chunk: int) -> str:
        return f"{self.job_context(wf, job)}/{chunk}"

    # streaming jobs: one total order of split batches and barriers, and their outcome
    def stream(self, wf: str, job: str) -> str:
        return f"{self.job(wf, job)}/STREAM"

    def stream_state(self, wf: str, job: str) -> str:
        """Version 0 while the stream takes entries; bumped by its end or the job's end."""
        return f"{self.stream(wf, job)}/STATE"

    def stream_log(self, wf: str, job: str) -> str:
        return f"{self.stream(wf, job)}/LOG"

    def stream_barriers(self, wf: str, job: str) -> str:
        return f"{self.stream(wf, job)}/BARRIERS"

    def stream_barrier(self, wf: str, job: str, seq: int) -> str:
        return f"{self.stream_barriers(wf, job)}/{seq:010d}"

    def stream_ack(self, wf: str, job: str, seq: int, slot: int) -> str:
        return f"{self.stream_barrier(wf, job, seq)}/{slot}"

    def stream_checkpoints(self, wf: str, job: str) -> str:
        return f"{self.stream(wf, job)}/CHECKPOINTS"

    def stream_checkpoint(self, wf: str, job: str, seq: int) -> str:
        return f"{self.stream_checkpoints(wf, job)}/{seq:010d}"

    def job_content(self, wf: str, job: str) -> str:
        return f"{self.job(wf, job)}/CONTENT"

    def task_contents(self, wf: str, job: str) -> str:
        return f"{self.job_content(wf, job)}/TASKS"

    def task_content_shard(self, wf: str, job: str, task_id: str) -> str:
        return f"{self.task_contents(wf, job)}/{content_shard(task_id)}"

    def task_content(self, wf: str, job: str, task_id: str) -> str:
        return f"{self.task_content_shard(wf, job, task_id)}/{task_id}"

    def task_errors(self, wf: str, job: str) -> str:
        """Full error texts of failed attempts, sharded like task content."""
        return f"{self.job(wf, job)}/ERRORS"

    def task_error(self, wf: str, job: str, task_id: str) -> str:
        return f"{self.task_errors(wf, job)}/{content_shard(task_id)}/{task_id}"

    def task_results(self, wf: str, job: str) -> str:
        """Result values of completed attempts, sharded like task content."""
        return f"{self.job(wf, job)}/RESULTS"

    def task_result_shard(self, wf: str, job: str, task_id: str) -> str:
        return f"{self.task_results(wf, job)}/{content_shard(task_id)}"

    def task_result(self, wf: str, job: str, task_id: str, attempt: int) -> str:
        """The result of attempt ``attempt`` of the task (``@`` is not in any name, so
        ``<task>@<attempt>`` and its chunks ``<task>@<attempt>+<i>`` never collide)."""
        return f"{self.task_result_shard(wf, job, task_id)}/{task_id}@{attempt}"
