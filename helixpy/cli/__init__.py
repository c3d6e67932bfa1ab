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
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TypeVar, cast

import click

from helixpy.errors import HelixpyError, InvalidConfig

F = TypeVar("F", bound=Callable[..., Any])


#: fields a log record about a task carries (``extra=task_fields(...)``), as JSON keys
TASK_FIELDS = ("workflow", "job", "task", "attempt")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, process name, logger, message, the task's
    workflow / job / task / attempt when the record is about one, and the traceback."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self._process = process

    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "process": self._process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in TASK_FIELDS:
            if key in record.__dict__:
                body[key] = record.__dict__[key]
        if record.exc_info:
            body["exc"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str)


def _setup_logging(name: str, level: str, fmt: str = "human") -> None:
    # SIGUSR1 dumps every thread's stack to stderr: how to see what a stuck daemon waits on.
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(name))
    else:
        handler.setFormatter(
            logging.Formatter(f"%(asctime)s {name} %(levelname)s %(name)s: %(message)s")
        )
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    logging.getLogger("kazoo").setLevel(logging.WARNING)


class CliError(click.ClickException):
    """An error for people: one red line on stderr, exit 1, no traceback."""

    def show(self, file: Any = None) -> None:
        click.echo(click.style(f"Error: {self.format_message()}", fg="red"), err=True)


class HelixpyGroup(click.Group):
    """The root group: helixpy errors, and anything unexpected, become one clear line;
    ``--debug`` (or ``HELIXPY_DEBUG=1``) shows the traceback instead."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except HelixpyError as exc:
            if ctx.params.get("debug"):
                raise
            raise CliError(str(exc)) from exc
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            raise CliError(
                f"{type(exc).__name__}: {exc} (run with --debug for the traceback)"
            ) from exc


def _load_registry(spec: str) -> Any:
    from helixpy.participant.registry import load_registry

    # As with `python -m` (and `celery -A`): a module in the working directory is found.
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())

    try:
        return load_registry(spec)
    except InvalidConfig as exc:
        raise click.BadParameter(exc.rule, param_hint="--tasks") from None


@click.group(cls=HelixpyGroup)
@click.version_option(package_name="helixpy", prog_name="helixpy")
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
@click.option(
    "--tls-server-name",
    envvar="HELIXPY_TLS_SERVER_NAME",
    default=None,
    help="Clients: the name to check in the controller's certificate instead of the address "
    "it advertises (env HELIXPY_TLS_SERVER_NAME; e.g. when controllers advertise pod IPs).",
)
@click.option("--log-level", default="INFO", show_default=True)
@click.option(
    "--log-format",
    type=click.Choice(["human", "json"]),
    envvar="HELIXPY_LOG_FORMAT",
    default="human",
    show_default=True,
    help="Daemon logs: text, or one JSON object per line (env HELIXPY_LOG_FORMAT).",
)
@click.option(
    "--debug",
    is_flag=True,
    envvar="HELIXPY_DEBUG",
    help="Show tracebacks instead of one-line errors (env HELIXPY_DEBUG).",
)
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
    tls_server_name: str | None,
    log_level: str,
    log_format: str,
    debug: bool,
) -> None:
    """helixpy: a cluster task framework on ZooKeeper.

    Shell completion: eval "$(_HELIXPY_COMPLETE=bash_source helixpy)" (zsh_source,
    fish_source for those shells)."""
    # A client command has no log handler: kazoo's reconnect warnings would reach stderr
    # through logging's last resort. Daemons set their own levels (_setup_logging).
    logging.getLogger("kazoo").setLevel(logging.DEBUG if debug else logging.ERROR)
    ctx.obj = {
        "log_format": log_format,
        "zk": zk,
        "cluster": cluster,
        "zk_auth": zk_auth,
        "token": token,
        "tls": (tls_ca, tls_client_cert, tls_client_key, tls_server_name) if tls_ca else None,
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
    """Run ``fn(driver)`` and echo what it returns."""
    # A helixpy error becomes one clear line in HelixpyGroup (the root), like every other.
    with make_driver(obj) as driver:
        out = fn(driver)
    if out:
        click.echo(out)


def output_option(fn: F) -> F:
    """``--output table|json`` on a read command (json: for scripts, stable keys)."""
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="table for people, json for scripts.",
    )(fn)


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def workflow_status(driver: Any, name: str) -> dict[str, Any]:
    """A workflow's state and its jobs' progress, as plain data."""
    ctx = driver.get_workflow_context(name)
    progress = []
    for job, state in ctx.job_states.items():
        jctx = driver.get_job_context(name, job)
        done = sum(
            1 for t in jctx.tasks.values() if t.state is not None and t.state.value == "COMPLETED"
        )
        progress.append(
            {"job": job, "state": state.value, "completed": done, "tasks": len(jctx.tasks)}
        )
    return {"workflow": name, "state": ctx.state.value, "jobs": progress}


def _status_text(driver: Any, name: str) -> str:
    return status_lines(workflow_status(driver, name))


def status_lines(status: dict[str, Any]) -> str:
    """The text of a :func:`workflow_status` for people."""
    lines = [f"workflow {status['workflow']}: {status['state']}"]
    for j in status["jobs"]:
        lines.append(
            f"  {j['job']:<20} {j['state']:<12} {j['completed']}/{j['tasks']} tasks completed"
        )
    return "\n".join(lines)


def _explicit(ctx: click.Context, param: str) -> bool:
    source = ctx.get_parameter_source(param)
    return source is not None and source.name != "DEFAULT"


# Imported last, and only for their side effect: each submodule's decorators register its
# commands and groups on ``main`` (they import ``main`` and the helpers above from here).
from helixpy.cli import daemons, instances, jobs, locks, queues, workflows  # noqa: E402,F401
