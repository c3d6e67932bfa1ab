"""What a pass writes of a workflow's CONTEXT.

A workflow of at most ``JOB_STATES_CHUNK`` jobs keeps its jobs' states in its CONTEXT, which
a pass rewrites whole when the workflow or one of its jobs changed. A bigger one (a long
queue) keeps them in ``CONTEXT/<i>`` chunks by position in its order: a pass rewrites the
chunks holding the jobs it changed, plus the header only when the workflow itself changed
or the chunk count did. Before, a queue of 20,000 jobs rewrote (and encoded, and
compressed) 20,000 states on every pass that finished one of them.
"""

from __future__ import annotations

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.controller.runtime import WorkflowRuntime, extends, workflow_context
from helixpy.store.codec import encode
from helixpy.store.ops import Op, SetData
from helixpy.store.paths import JOB_STATES_CHUNK, Paths
from helixpy.store.records import job_states_chunks, workflow_context_ops


def context_ops(zk: KazooClient, paths: Paths, wf: WorkflowRuntime) -> tuple[list[Op], int]:
    """The ops writing what changed of ``wf``'s CONTEXT, and the chunk count it has once
    they landed (record it with :func:`written`)."""
    order = wf.order
    count = job_states_chunks(len(order))
    changed = [job.name for job in wf.hot.values() if job.header_dirty]
    if wf.ctx_chunks < 0:
        wf.ctx_chunks, wf.ctx_order = stored_chunks(zk, paths, wf.name), None
    if count == 0 and wf.ctx_chunks == 0:
        if not (wf.context_dirty or changed):
            return [], 0
        path = paths.workflow_context(wf.name)
        return [SetData(path, encode(workflow_context(wf), path=path))], 0
    old = wf.ctx_order
    dirty: set[int]
    if old is not None and extends(order, old):
        # Only the chunks of changed jobs, and those an enqueue appended into.
        dirty = {wf.position(name) // JOB_STATES_CHUNK for name in changed}
        dirty.update(range(len(old) // JOB_STATES_CHUNK, count))
    else:
        dirty = set(range(count))  # first write of this term, or the order was reshaped
    header = (
        workflow_context(wf, with_jobs=False)
        if wf.context_dirty or count != wf.ctx_chunks
        else None
    )
    ops = workflow_context_ops(
        paths,
        wf.name,
        header,
        order,
        lambda name: wf.jobs[name].state.value,
        dirty,
        wf.ctx_chunks,
    )
    return ops, count


def written(wf: WorkflowRuntime, count: int) -> None:
    """``wf``'s CONTEXT ops (of :func:`context_ops`, ``count`` chunks) landed."""
    wf.ctx_chunks = count
    wf.ctx_order = wf.order if count else None


def stored_chunks(zk: KazooClient, paths: Paths, name: str) -> int:
    """How many CONTEXT chunks workflow ``name`` has in ZooKeeper (one past the highest:
    chunks are created and deleted from the end, so there is no gap)."""
    try:
        children = zk.get_children(paths.workflow_context(name))
    except NoNodeError:
        return 0
    return max((int(c) + 1 for c in children if c.isdigit()), default=0)
