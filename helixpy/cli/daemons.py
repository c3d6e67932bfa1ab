"""Long-running commands: ``zk start``, ``controller``, ``participant``, ``up`` and ``demo``."""

from __future__ import annotations

import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import click

from helixpy.cli import (
    F,
    _explicit,
    _load_registry,
    _setup_logging,
    _status_text,
    _wait_for_signal,
    cluster_options,
    main,
)
from helixpy.errors import InvalidConfig
from helixpy.model import TaskState, Workflow


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


def metrics_options(fn: F) -> F:
    """``--metrics-host`` / ``--metrics-port``: serve /metrics and /healthz over HTTP."""
    fn = click.option(
        "--metrics-port",
        type=click.IntRange(0, 65535),
        default=None,
        help="Serve Prometheus /metrics and /healthz on this port (0: a free one, logged).",
    )(fn)
    return click.option(
        "--metrics-host", default="127.0.0.1", show_default=True, help="Address for /metrics."
    )(fn)


def health_command(group: click.Group, what: str) -> None:
    """``helixpy <group> health``: probe a running daemon's /healthz; exit 0 or 1."""

    @group.command(
        "health", help=f"Exit 0 if the {what} at --host/--port is healthy, else 1 (probes)."
    )
    @click.option("--host", default="127.0.0.1", show_default=True)
    @click.option(
        "--port", type=click.IntRange(1, 65535), required=True, help=f"The {what}'s --metrics-port."
    )
    @click.option("--timeout", type=float, default=2.0, show_default=True)
    def health(host: str, port: int, timeout: float) -> None:
        from helixpy.telemetry import probe

        ok, said = probe(host, port, timeout)
        click.echo(said.strip())
        sys.exit(0 if ok else 1)


@main.group(invoke_without_command=True)
@cluster_options
@click.option("--id", "controller_id", default=None, help="Controller id (default: host-pid).")
@click.option("--session-timeout", type=float, default=10.0, show_default=True)
@click.option("--grpc-host", default="127.0.0.1", show_default=True)
@click.option("--grpc-port", type=int, default=0, help="0 picks a free port.")
@click.option("--tls-cert", default=None, help="Serve TLS: this certificate chain (PEM)...")
@click.option("--tls-key", default=None, help="...and its private key (PEM).")
@click.option(
    "--tls-client-ca", default=None, help="Mutual TLS: require client certificates from this CA."
)
@metrics_options
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve the web dashboard and the HTTP API (/api/v1, /openapi.json) on this port "
    "(0: a free one, logged). With --token every /api request needs it; with --tls-cert "
    "it serves HTTPS.",
)
@click.option(
    "--http-host",
    default="127.0.0.1",
    show_default=True,
    help="Address for the dashboard and HTTP API; without --token only a loopback address "
    "is accepted unless --http-insecure.",
)
@click.option(
    "--http-insecure",
    is_flag=True,
    help="Serve the HTTP API without --token on a non-loopback --http-host (anyone who "
    "reaches it can change the cluster).",
)
@click.pass_context
def controller(
    ctx: click.Context,
    controller_id: str | None,
    session_timeout: float,
    grpc_host: str,
    grpc_port: int,
    tls_cert: str | None,
    tls_key: str | None,
    tls_client_ca: str | None,
    metrics_host: str,
    metrics_port: int | None,
    http_port: int | None,
    http_host: str,
    http_insecure: bool,
) -> None:
    """Run a controller (leader or standby). With --token (global) every call must carry
    that bearer token, over gRPC and HTTP alike. A standby forwards HTTP mutations to the
    leader; under TLS it needs the global --tls-ca (and --tls-client-cert/--tls-client-key
    for mutual TLS) to do so. `helixpy controller health` probes a running one."""
    if ctx.invoked_subcommand is not None:
        return
    obj = ctx.obj
    from helixpy.controller import Controller
    from helixpy.security import ClientTls, ServerTls

    cid = controller_id or f"{os.uname().nodename}-{os.getpid()}"
    _setup_logging(cid, obj["log_level"], obj["log_format"])
    if (tls_cert is None) != (tls_key is None):
        raise click.BadParameter("give --tls-cert and --tls-key together", param_hint="--tls-key")
    if tls_client_ca is not None and tls_cert is None:
        raise click.BadParameter("mutual TLS needs --tls-cert", param_hint="--tls-client-ca")
    try:
        tls = (
            ServerTls.from_files(tls_cert, tls_key, tls_client_ca) if tls_cert and tls_key else None
        )
        # The global client TLS options: how a standby reaches the leader to forward.
        client_tls = ClientTls.from_files(*obj["tls"]) if obj.get("tls") else None
    except InvalidConfig as exc:
        raise click.BadParameter(exc.rule, param_hint=f"--{exc.field.replace('_', '-')}") from None
    if http_port is not None:
        from helixpy.controller.api import check_binding

        try:
            check_binding(http_host, obj.get("token"), http_insecure)
        except InvalidConfig as exc:
            raise click.BadParameter(exc.rule, param_hint="--http-host") from None
    ctl = Controller(
        obj["zk"],
        obj["cluster"],
        cid,
        grpc_host=grpc_host,
        grpc_port=grpc_port,
        session_timeout=session_timeout,
        zk_auth=obj.get("zk_auth"),
        tls=tls,
        token=obj.get("token"),
        metrics_host=metrics_host,
        metrics_port=metrics_port,
        http_host=http_host,
        http_port=http_port,
        http_insecure=http_insecure,
        client_tls=client_tls,
    )
    ctl.start()
    stop = threading.Event()
    try:
        _wait_for_signal(stop)
    finally:
        ctl.stop()


health_command(controller, "controller")


@main.group(invoke_without_command=True)
@cluster_options
@click.option("--tasks", "tasks_spec", default=None, help="MODULE:ATTR of a TaskRegistry.")
@click.option(
    "--instance",
    envvar="HELIXPY_INSTANCE",
    default=None,
    help="Instance id, stable across restarts (env HELIXPY_INSTANCE).",
)
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
@metrics_options
@click.pass_context
def participant(
    ctx: click.Context,
    tasks_spec: str | None,
    instance: str | None,
    tags: str,
    capacity: int | None,
    session_timeout: float,
    grace: float,
    metrics_host: str,
    metrics_port: int | None,
) -> None:
    """Run a participant that executes tasks from a registry (--tasks and --instance are
    required). `helixpy participant health` probes a running one."""
    if ctx.invoked_subcommand is not None:
        return
    for value, name in ((tasks_spec, "--tasks"), (instance, "--instance")):
        if not value:
            raise click.UsageError(f"Missing option '{name}'.", ctx)
    assert tasks_spec is not None and instance is not None
    obj = ctx.obj
    from helixpy.participant import Participant

    _setup_logging(instance, obj["log_level"], obj["log_format"])
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
        tasks_spec=tasks_spec,
        zk_auth=obj.get("zk_auth"),
        metrics_host=metrics_host,
        metrics_port=metrics_port,
    )
    part.start()
    stop = threading.Event()
    try:
        _wait_for_signal(stop)
    finally:
        # SIGTERM: no new work, running tasks get --grace seconds, then cancel and leave.
        part.shutdown(grace)


health_command(participant, "participant")


@main.command()
@cluster_options
@click.option("--participants", type=int, default=3, show_default=True)
@click.option("--tasks", "tasks_spec", default="helixpy.testing.tasks:registry", show_default=True)
@click.option(
    "--http-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="The controller serves the dashboard on this port (0: a free one, printed).",
)
@click.pass_obj
def up(obj: dict[str, Any], participants: int, tasks_spec: str, http_port: int | None) -> None:
    """Run a whole local cluster (ZooKeeper unless --zk is given) until Ctrl-C."""
    from helixpy.testing.cluster import LocalCluster

    _setup_logging("up", obj["log_level"], obj["log_format"])
    group = click.get_current_context().parent
    explicit = obj.get("zk_explicit") or (group is not None and _explicit(group, "zk"))
    zk_arg = obj["zk"] if explicit else None
    extra = ["--http-port", str(http_port)] if http_port is not None else []
    with LocalCluster(
        tasks=tasks_spec,
        participants=participants,
        zk=zk_arg,
        cluster=obj["cluster"],
        controller_args=extra,
    ) as cluster:
        click.echo(
            f"cluster {cluster.cluster} up: zk={cluster.zk_address} "
            f"participants={','.join(cluster.instances)}"
        )
        if http_port is not None:
            click.echo(f"dashboard: {_dashboard_url(cluster.log_dir / 'controller-0.log')}")
        click.echo(
            f"export HELIXPY_ZK={cluster.zk_address} HELIXPY_CLUSTER={cluster.cluster}", nl=True
        )
        sys.stdout.flush()
        _wait_for_signal(threading.Event())
        click.echo("stopping")


def _dashboard_url(log: Path, timeout: float = 10.0) -> str:
    """The dashboard address the controller logged (it picks the port when given 0)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"dashboard on (http://\S+)", log.read_text(errors="replace"))
        if found:
            return found.group(1) + "/"
        threading.Event().wait(0.05)  # polling a log file: there is no event to wait on
    return "(not reported yet; see the controller's log)"


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
