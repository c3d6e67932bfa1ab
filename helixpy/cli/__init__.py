"""``helixpy``: the command line (click).

Every command takes ``--zk`` and ``--cluster`` (environment: ``HELIXPY_ZK``,
``HELIXPY_CLUSTER``). Daemons log to stderr and stop cleanly on SIGTERM / Ctrl-C.

This package holds the ``main`` group and the helpers its commands share; the commands
live in submodules (``daemons``, ``workflows``, ``queues``, ``instances``), imported at
the bottom so they register on ``main``.
"""

from __future__ import annotations

import faulthandler
import functools
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar, cast

import click

from helixpy.errors import HelixpyError, InvalidConfig

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
    from helixpy.participant.registry import load_registry

    try:
        return load_registry(spec)
    except InvalidConfig as exc:
        raise click.BadParameter(exc.rule, param_hint="--tasks") from None


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
@click.option(
    "--zk-auth",
    envvar="HELIXPY_ZK_AUTH",
    default=None,
    help="ZooKeeper identity digest:USER:PASSWORD (env HELIXPY_ZK_AUTH); znodes created "
    "are then writable by it only.",
)
@click.option(
    "--token",
    envvar="HELIXPY_TOKEN",
    default=None,
    help="Bearer token (env HELIXPY_TOKEN): sent by clients, required by a controller.",
)
@click.option(
    "--tls-ca", default=None, help="Clients: talk TLS to the controller, trusting this CA."
)
@click.option("--tls-client-cert", default=None, help="Clients: certificate for mutual TLS...")
@click.option("--tls-client-key", default=None, help="...and its private key.")
@click.option("--log-level", default="INFO", show_default=True)
@click.pass_context
def main(
    ctx: click.Context,
    zk: str,
    cluster: str,
    zk_auth: str | None,
    token: str | None,
    tls_ca: str | None,
    tls_client_cert: str | None,
    tls_client_key: str | None,
    log_level: str,
) -> None:
    """helixpy: a cluster task framework on ZooKeeper."""
    ctx.obj = {
        "zk": zk,
        "cluster": cluster,
        "zk_auth": zk_auth,
        "token": token,
        "tls": (tls_ca, tls_client_cert, tls_client_key) if tls_ca else None,
        "log_level": log_level,
        "zk_explicit": False,
    }


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


def _wait_for_signal(stop: threading.Event) -> None:
    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            os._exit(1)  # a second signal: exit at once
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop.wait(1.0):
        pass


def make_driver(obj: dict[str, Any]) -> Any:
    """A TaskDriver with every connection option given to the CLI (ZooKeeper identity,
    TLS, token)."""
    from helixpy.driver import TaskDriver
    from helixpy.security import ClientTls

    tls = ClientTls.from_files(*obj["tls"]) if obj.get("tls") else None
    return TaskDriver(
        obj["zk"], obj["cluster"], zk_auth=obj.get("zk_auth"), tls=tls, token=obj.get("token")
    )


def driver_call(obj: dict[str, Any], fn: Callable[[Any], str | None]) -> None:
    """Run ``fn(driver)`` and echo what it returns; helixpy errors become clean CLI errors."""
    try:
        with make_driver(obj) as driver:
            out = fn(driver)
    except HelixpyError as exc:
        raise click.ClickException(str(exc)) from exc
    if out:
        click.echo(out)


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


def _explicit(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name != "DEFAULT"


# Imported last, and only for their side effect: each submodule's decorators register its
# commands and groups on ``main`` (they import ``main`` and the helpers above from here).
from helixpy.cli import daemons, instances, jobs, locks, queues, workflows  # noqa: E402,F401
