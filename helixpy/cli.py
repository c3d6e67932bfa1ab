"""``helixpy``: the command line (click).

Every command takes ``--zk`` and ``--cluster`` (environment: ``HELIXPY_ZK``,
``HELIXPY_CLUSTER``). Daemons log to stderr and stop cleanly on SIGTERM / Ctrl-C.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar, cast

import click

from helixpy.errors import HelixpyError
from helixpy.model import TaskState, Workflow

F = TypeVar("F", bound=Callable[..., Any])


def _setup_logging(name: str, level: str) -> None:
    # SIGUSR1 dumps every thread's stack to stderr: how to see what a stuck daemon waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("kazoo").setLevel(logging.WARNING)


def _load_registry(spec: str) -> Any:
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise click.BadParameter("must be MODULE:ATTR", param_hint="--tasks")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec}: {exc}", param_hint="--tasks") from exc
    return obj() if callable(obj) and not hasattr(obj, "get") else obj


@click.group()
@click.option(
    "--zk",
    envvar="HELIXPY_ZK",
    default="127.0.0.1:2181",
    show_default=True,
    help="ZooKeeper connection string (env HELIXPY_ZK).",
)
@click.option(
    "--cluster",
    envvar="HELIXPY_CLUSTER",
    default="helixpy",
    show_default=True,
    help="Cluster name (env HELIXPY_CLUSTER).",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def main(ctx: click.Context, zk: str, cluster: str, log_level: str) -> None:
    """helixpy: a cluster task framework on ZooKeeper."""
    ctx.obj = {"zk": zk, "cluster": cluster, "log_level": log_level, "zk_explicit": False}


def cluster_options(fn: F) -> F:
    """``--zk`` and ``--cluster`` on a command too, overriding the group's (and the env)."""

    @click.option(
        "--cluster",
        "cluster_override",
        default=None,
        help="Cluster name (overrides HELIXPY_CLUSTER).",
    )
    @click.option(
        "--zk",
        "zk_override",
        default=None,
        help="ZooKeeper connection string (overrides HELIXPY_ZK).",
    )
    @functools.wraps(fn)
    def wrapper(
        *args: Any, zk_override: str | None, cluster_override: str | None, **kwargs: Any
    ) -> Any:
        obj = click.get_current_context().find_object(dict)
        assert obj is not None
        if zk_override:
            obj["zk"], obj["zk_explicit"] = zk_override, True
        if cluster_override:
            obj["cluster"] = cluster_override
        return fn(*args, **kwargs)

    return cast(F, wrapper)


@main.group()
def zk() -> None:
    """A ZooKeeper server for people (tests start their own)."""


@zk.command("start")
@click.option("--port", type=int, default=2181, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False), required=True)
def zk_start(port: int, data_dir: str) -> None:
    """Run a standalone ZooKeeper server in the foreground."""
    from helixpy.testing.zookeeper import run_foreground

    Path(data_dir).mkdir(parents=True, exist_ok=True)
    sys.exit(run_foreground(port, data_dir))


def _wait_for_signal(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(1)  # a second signal: exit at once
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(1.0):
        pass


@main.command()
@cluster_options
@click.option("--id", "controller_id", default=None, help="Controller id (default: host-pid).")
@click.option("--session-timeout", type=float, default=10.0, show_default=True)
@click.option("--grpc-host", default="127.0.0.1", show_default=True)
@click.option("--grpc-port", type=int, default=0, help="0 picks a free port.")
@click.pass_obj
def controller(
    obj: dict[str, str],
    controller_id: str | None,
    session_timeout: float,
    grpc_host: str,
    grpc_port: int,
) -> None:
    """Run a controller (leader or standby)."""
    from helixpy.controller import Controller

    cid = controller_id or f"{os.uname().nodename}-{os.getpid()}"
    _setup_logging(cid, obj["log_level"])
    ctl = Controller(
        obj["zk"],
        obj["cluster"],
        cid,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        session_timeout=session_timeout,
    )
    ctl.start()
    stop = threading.Event()
    try:
        _wait_for_signal(stop)
    finally:
        ctl.stop()


@main.command()
@cluster_options
@click.option("--tasks", "tasks_spec", required=True, help="MODULE:ATTR of a TaskRegistry.")
@click.option("--instance", required=True, help="Instance id (stable across restarts).")
@click.option("--tags", default="", help="Comma-separated instance group tags.")
@click.option("--capacity", type=int, default=None, help="Concurrent tasks (default 40).")
@click.option("--session-timeout", type=float, default=10.0, show_default=True)
@click.option(
    "--grace",
    type=float,
    default=30.0,
    show_default=True,
    help="Seconds running tasks get to finish on SIGTERM.",
)
@click.pass_obj
def participant(
    obj: dict[str, str],
    tasks_spec: str,
    instance: str,
    tags: str,
    capacity: int | None,
    session_timeout: float,
    grace: float,
) -> None:
    """Run a participant that executes tasks from a registry."""
    from helixpy.participant import Participant

    _setup_logging(instance, obj["log_level"])
    registry = _load_registry(tasks_spec)
    tag_list = tuple(t for t in tags.split(",") if t)
    part = Participant(
        obj["zk"],
        obj["cluster"],
        instance,
        registry,
        tags=tag_list,
        capacity=capacity,
        session_timeout=session_timeout,
    )
    part.start()
    stop = threading.Event()
    try:
        _wait_for_signal(stop)
    finally:
        # SIGTERM: no new work, running tasks get --grace seconds, then cancel and leave.
        part.shutdown(grace)


@main.group()
def workflow() -> None:
    """Start and inspect workflows."""


@workflow.command("start")
@cluster_options
@click.argument("file", type=click.File("r"))
@click.pass_obj
def workflow_start(obj: dict[str, str], file: Any) -> None:
    """Start the workflow described by a YAML FILE."""
    from helixpy.driver import TaskDriver

    try:
        wf = Workflow.from_yaml(file.read())
        with TaskDriver(obj["zk"], obj["cluster"]) as driver:
            driver.start(wf)
    except HelixpyError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"started {wf.name}")


@workflow.command("status")
@cluster_options
@click.argument("name")
@click.pass_obj
def workflow_status(obj: dict[str, str], name: str) -> None:
    """Show a workflow's state and its jobs' progress."""
    from helixpy.driver import TaskDriver

    try:
        with TaskDriver(obj["zk"], obj["cluster"]) as driver:
            click.echo(_status_text(driver, name))
    except HelixpyError as exc:
        raise click.ClickException(str(exc)) from exc


def _driver_call(obj: dict[str, Any], fn: Callable[[Any], str | None]) -> None:
    """Run ``fn(driver)`` and echo what it returns; helixpy errors become clean CLI errors."""
    from helixpy.driver import TaskDriver

    try:
        with TaskDriver(obj["zk"], obj["cluster"]) as driver:
            out = fn(driver)
    except HelixpyError as exc:
        raise click.ClickException(str(exc)) from exc
    if out:
        click.echo(out)


@workflow.command("stop")
@cluster_options
@click.argument("name")
@click.option("--wait", "wait", type=float, default=None, help="Wait up to SECONDS for STOPPED.")
@click.pass_obj
def workflow_stop(obj: dict[str, Any], name: str, wait: float | None) -> None:
    """Stop a workflow: running tasks are cancelled, nothing new starts."""

    def run(driver: Any) -> str:
        if wait is None:
            driver.stop(name)
            return f"stopping {name}"
        driver.wait_to_stop(name, timeout=wait)
        return f"stopped {name}"

    _driver_call(obj, run)


@workflow.command("resume")
@cluster_options
@click.argument("name")
@click.pass_obj
def workflow_resume(obj: dict[str, Any], name: str) -> None:
    """Resume a stopped workflow."""
    _driver_call(obj, lambda d: d.resume(name) or f"resumed {name}")


@workflow.command("delete")
@cluster_options
@click.argument("name")
@click.option("--force", is_flag=True, help="Remove it from ZooKeeper directly (no controller).")
@click.pass_obj
def workflow_delete(obj: dict[str, Any], name: str, force: bool) -> None:
    """Delete a workflow and everything it stored."""
    _driver_call(obj, lambda d: d.delete(name, force=force) or f"deleted {name}")


@workflow.command("list")
@cluster_options
@click.pass_obj
def workflow_list(obj: dict[str, Any]) -> None:
    """List workflows with their states."""

    def run(driver: Any) -> str:
        rows = []
        for name in sorted(driver.get_workflows()):
            try:
                state = driver.get_workflow_context(name).state.value
            except HelixpyError:
                state = "?"
            rows.append(f"{name:<40} {state}")
        return "\n".join(rows) or "(no workflows)"

    _driver_call(obj, run)


@workflow.command("watch")
@cluster_options
@click.argument("name")
@click.option("--timeout", type=float, default=3600.0, show_default=True)
@click.pass_obj
def workflow_watch(obj: dict[str, Any], name: str, timeout: float) -> None:
    """Show a workflow's progress as it changes, until it finishes."""

    def run(driver: Any) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            text = _status_text(driver, name)
            if text != last:
                click.echo(text)
                last = text
            state = driver.get_workflow_context(name).state
            if state.is_final or time.monotonic() >= deadline:
                return
            others = [s for s in TaskState if s is not state]
            # Wakes on a workflow state change; the 1 s bound refreshes task progress.
            with contextlib.suppress(TimeoutError):
                driver.poll_for_workflow_state(name, *others, timeout=1.0)

    _driver_call(obj, run)


@main.group()
def queue() -> None:
    """Create job queues and manage their jobs."""


@queue.command("create")
@cluster_options
@click.argument("name")
@click.option("--parallel-jobs", type=int, default=1, show_default=True)
@click.option("--capacity", type=int, default=None, help="Most jobs the queue may hold.")
@click.pass_obj
def queue_create(obj: dict[str, Any], name: str, parallel_jobs: int, capacity: int | None) -> None:
    """Create and start a job queue."""
    from helixpy.model import JobQueue, WorkflowConfig

    def run(driver: Any) -> str:
        cfg = WorkflowConfig(parallel_jobs=parallel_jobs, capacity=capacity)
        driver.create_queue(JobQueue.builder(name).set_config(cfg).build())
        return f"created queue {name}"

    _driver_call(obj, run)


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

    _driver_call(obj, run)


@queue.command("delete-job")
@cluster_options
@click.argument("name")
@click.argument("job")
@click.option("--force", is_flag=True, help="Delete even while the queue runs.")
@click.pass_obj
def queue_delete_job(obj: dict[str, Any], name: str, job: str, force: bool) -> None:
    """Remove a job from a queue."""
    _driver_call(obj, lambda d: d.delete_job(name, job, force=force) or f"deleted {job}")


@queue.command("flush")
@cluster_options
@click.argument("name")
@click.pass_obj
def queue_flush(obj: dict[str, Any], name: str) -> None:
    """Remove a queue's COMPLETED, FAILED and ABORTED jobs."""
    _driver_call(obj, lambda d: d.flush_queue(name) or f"flushed {name}")


@main.group()
def instance() -> None:
    """List, enable and disable participant instances."""


@instance.command("list")
@cluster_options
@click.pass_obj
def instance_list(obj: dict[str, Any]) -> None:
    """List instances: live, enabled, tags, capacity."""

    def run(driver: Any) -> str:
        rows = [
            f"{name:<24} {'live' if i['live'] else 'down':<5} "
            f"{'enabled' if i['enabled'] else 'disabled':<9} cap={i['capacity']} "
            f"tags={','.join(i['tags'])}"
            for name, i in driver.get_instances().items()
        ]
        return "\n".join(rows) or "(no instances)"

    _driver_call(obj, run)


@instance.command("enable")
@cluster_options
@click.argument("instance_id")
@click.pass_obj
def instance_enable(obj: dict[str, Any], instance_id: str) -> None:
    """Let an instance take work again."""
    _driver_call(
        obj, lambda d: d.set_instance_enabled(instance_id, True) or f"enabled {instance_id}"
    )


@instance.command("disable")
@cluster_options
@click.argument("instance_id")
@click.pass_obj
def instance_disable(obj: dict[str, Any], instance_id: str) -> None:
    """Stop giving an instance work; its running tasks move elsewhere."""
    _driver_call(
        obj, lambda d: d.set_instance_enabled(instance_id, False) or f"disabled {instance_id}"
    )


def _status_text(driver: Any, name: str) -> str:
    ctx = driver.get_workflow_context(name)
    lines = [f"workflow {name}: {ctx.state.value}"]
    for job, state in ctx.job_states.items():
        jctx = driver.get_job_context(name, job)
        done = sum(
            1 for t in jctx.tasks.values() if t.state is not None and t.state.value == "COMPLETED"
        )
        lines.append(f"  {job:<20} {state.value:<12} {done}/{len(jctx.tasks)} tasks completed")
    return "\n".join(lines)


@main.command()
@cluster_options
@click.option("--participants", type=int, default=3, show_default=True)
@click.option("--tasks", "tasks_spec", default="helixpy.testing.tasks:registry", show_default=True)
@click.pass_obj
def up(obj: dict[str, Any], participants: int, tasks_spec: str) -> None:
    """Run a whole local cluster (ZooKeeper unless --zk is given) until Ctrl-C."""
    from helixpy.testing.cluster import LocalCluster

    _setup_logging("up", obj["log_level"])
    group = click.get_current_context().parent
    explicit = obj.get("zk_explicit") or (group is not None and _explicit(group, "zk"))
    zk_arg = obj["zk"] if explicit else None
    with LocalCluster(
        tasks=tasks_spec, participants=participants, zk=zk_arg, cluster=obj["cluster"]
    ) as cluster:
        click.echo(
            f"cluster {cluster.cluster} up: zk={cluster.zk_address} "
            f"participants={','.join(cluster.instances)}"
        )
        click.echo(
            f"export HELIXPY_ZK={cluster.zk_address} HELIXPY_CLUSTER={cluster.cluster}", nl=True
        )
        sys.stdout.flush()
        _wait_for_signal(threading.Event())
        click.echo("stopping")


def _explicit(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name != "DEFAULT"


DEMO_YAML = """\
name: demo
jobs:
  extract:
    command: Record
    num_tasks: 6
    num_concurrent_tasks_per_instance: 2
    command_config: {seconds: "0.3"}
  transform:
    command: Record
    num_tasks: 6
    num_concurrent_tasks_per_instance: 2
    command_config: {seconds: "0.2"}
    parents: [extract]
  report:
    command: Record
    num_tasks: 6
    num_concurrent_tasks_per_instance: 2
    command_config: {seconds: "0.2"}
    parents: [extract]
  publish:
    command: Noop
    num_tasks: 1
    parents: [transform, report]
config:
  parallel_jobs: 2
"""


@main.command()
@click.pass_obj
def demo(obj: dict[str, str]) -> None:
    """Run a sample DAG workflow on a local cluster, with live progress and a summary."""
    from helixpy.testing.cluster import LocalCluster

    wf = Workflow.from_yaml(DEMO_YAML)
    started = time.monotonic()
    with LocalCluster(participants=3) as cluster:
        driver = cluster.driver
        click.echo(
            f"local cluster {cluster.cluster}: zk {cluster.zk_address}, "
            f"participants {', '.join(cluster.instances)}"
        )
        driver.start(wf)
        last = ""
        while True:
            state = driver.poll_for_workflow_state(
                wf.name, TaskState.COMPLETED, TaskState.FAILED, TaskState.IN_PROGRESS, timeout=120.0
            )
            text = _status_text(driver, wf.name)
            if text != last:
                click.echo(text)
                last = text
            if state.is_final:
                break
            # Progress is shown as it changes; poll_for_job_state would block per job.
            time.sleep(0.3)
        ok = state is TaskState.COMPLETED
        click.echo(
            f"\nsummary: workflow {wf.name} {state.value} in {time.monotonic() - started:.1f}s"
        )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
