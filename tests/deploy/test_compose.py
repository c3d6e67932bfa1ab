"""The compose stack for real: deploy/compose/docker-compose.yml survives losing its leader.

3 ZooKeeper servers, 2 controllers and 3 participants from the project's own images
(``scripts/helixpy-image.sh``: a Debian base made by debootstrap, no registry), on a
private container network this test creates and removes. A workflow is submitted from the
host through the ``helixpy`` CLI; the leading controller's container and a participant's
container that runs a task are killed mid-run; the workflow completes.

``make test`` provides the engine and the images (``scripts/with-docker.sh``); without
them this module skips with the reason, except under ``CI=true``, where it must run.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from helixpy import TaskPartitionState, TaskState
from helixpy.driver import TaskDriver

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"
HELIXPY = Path(sys.executable).with_name("helixpy")
HELIXPY_IMAGE = "helixpy:local"
ZOOKEEPER_IMAGE = "helixpy/zookeeper-compose:local"
CLUSTER = "deploytest"
T = TypeVar("T")


def compose_command() -> list[str] | None:
    """``docker compose`` (the CLI plugin) or a ``docker-compose`` binary (v2+), else None.

    ``scripts/with-docker.sh`` installs the latter into the venv when neither is there.
    """
    if shutil.which("docker") is None:
        return None
    plugin = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, text=True, timeout=30, check=False
    )
    if plugin.returncode == 0:
        return ["docker", "compose"]
    for candidate in (
        Path(sys.executable).with_name("docker-compose"),
        shutil.which("docker-compose"),
    ):
        if candidate and Path(candidate).exists():
            return [str(candidate)]
    return None


def _problem() -> str | None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        # The host-side CLI resolves the controllers' names in a private mount namespace.
        return "needs root and unshare(1)"
    try:
        import docker  # type: ignore[import-untyped]

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no engine: the reason is the answer
        return f"no container engine: {exc}"
    if compose_command() is None:
        return "neither `docker compose` nor a docker-compose binary is installed"
    for image in (HELIXPY_IMAGE, ZOOKEEPER_IMAGE):
        try:
            client.images.get(image)
        except Exception as exc:  # not built: scripts/helixpy-image.sh builds them
            return f"image {image} is not built (scripts/helixpy-image.sh): {exc}"
    return None


_problem_now = _problem()
if _problem_now is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true requires the compose test to run: {_problem_now}")
pytestmark = [
    pytest.mark.deploy,
    pytest.mark.cluster,
    pytest.mark.skipif(_problem_now is not None, reason=str(_problem_now)),
]


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """``check()``'s first truthy value, polled against a monotonic deadline."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: a bounded pause between polls, not a sync point
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        pause.wait(0.25)


def free_loopback_ports(n: int) -> list[int]:
    """``n`` distinct ports free on 127.0.0.1 now (held together, so they differ)."""
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in socks]


def private_subnet() -> str:
    """A /24 in 10.200.0.0/13 that no route on this host overlaps: the stack's network."""
    routes = subprocess.run(
        ["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True, check=True
    ).stdout.split()
    taken = []
    for word in routes:
        try:
            taken.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            continue
    rng = random.Random()
    for _ in range(100):
        net = ipaddress.ip_network(f"10.{rng.randrange(200, 208)}.{rng.randrange(256)}.0/24")
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return str(net)
    raise AssertionError("no free 10.200.0.0/13 subnet for the stack's network")


@dataclass
class Stack:
    """A running compose project: its command line, ports and files."""

    compose: list[str]
    env: dict[str, str]
    zk: str  # the host's connect string: the published loopback ports
    workdir: Path

    def run(self, *args: str, timeout: float = 120.0) -> str:
        done = subprocess.run(
            [*self.compose, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"compose {args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done.stdout

    def container(self, service: str) -> str:
        [cid] = self.run("ps", "-q", service).split()
        return cid

    def helixpy(self, *args: str) -> str:
        """The host's ``helixpy`` CLI. The leader advertises ``controller-N:PORT`` (names on
        the compose network) and the host reaches PORT on its loopback, so the CLI runs in a
        private mount namespace whose /etc/hosts maps those names to 127.0.0.1: the README's
        hosts line, without touching this machine's /etc/hosts."""
        hosts = self.workdir / "hosts"
        hosts.write_text(Path("/etc/hosts").read_text() + "\n127.0.0.1 controller-1 controller-2\n")
        cli = shlex.join([str(HELIXPY), "--zk", self.zk, "--cluster", CLUSTER, *args])
        bind = shlex.join(["mount", "--bind", str(hosts), "/etc/hosts"])
        done = subprocess.run(
            ["unshare", "--mount", "--", "sh", "-c", f"{bind} && exec {cli}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, f"helixpy {args}: {done.stdout}{done.stderr}"
        return done.stdout


def _compose_env(ports: list[int]) -> dict[str, str]:
    zk1, zk2, zk3, grpc1, grpc2 = ports
    return {
        **os.environ,
        "ZOOKEEPER_IMAGE": ZOOKEEPER_IMAGE,
        "HELIXPY_IMAGE": HELIXPY_IMAGE,
        "HELIXPY_CLUSTER": CLUSTER,
        "HELIXPY_CAPACITY": "2",  # 6 task slots in all: every participant gets work
        "HELIXPY_ZK_PORT_1": str(zk1),
        "HELIXPY_ZK_PORT_2": str(zk2),
        "HELIXPY_ZK_PORT_3": str(zk3),
        "HELIXPY_GRPC_PORT_1": str(grpc1),
        "HELIXPY_GRPC_PORT_2": str(grpc2),
    }


def _down(cmd: list[str], env: dict[str, str], log: Path | None) -> None:
    if log is not None:
        logs = subprocess.run(
            [*cmd, "logs", "--no-color", "--timestamps"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        log.write_text(logs.stdout + logs.stderr)
    # Containers, the network and the ZooKeeper volumes: nothing of the stack is left.
    subprocess.run(
        [*cmd, "down", "-v", "--remove-orphans", "--timeout", "5"],
        env=env,
        capture_output=True,
        timeout=180,
        check=False,
    )


@contextmanager
def compose_stack(tmp: Path) -> Iterator[Stack]:
    compose = compose_command()
    assert compose is not None
    project = f"hpxdeploy{uuid.uuid4().hex[:6]}"
    # The test's own network (a subnet no route here uses) and faster ZooKeeper
    # healthchecks: compose starts helixpy only once all three servers report healthy.
    override = tmp / "override.yml"
    override.write_text(
        json.dumps(
            {
                "networks": {"default": {"ipam": {"config": [{"subnet": private_subnet()}]}}},
                "services": {
                    zk: {"healthcheck": {"interval": "1s", "retries": 60}}
                    for zk in ("zk1", "zk2", "zk3")
                },
            }
        )
    )
    cmd = [*compose, "-p", project, "-f", str(COMPOSE_FILE), "-f", str(override)]
    # The host ports are free when picked but not reserved: another process may take one
    # before docker-proxy binds it. Then compose says so, and new ports are picked.
    for _ in range(3):
        ports = free_loopback_ports(5)
        env = _compose_env(ports)
        up = subprocess.run(
            [*cmd, "up", "-d", "--no-build"],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        if up.returncode == 0:
            break
        _down(cmd, env, None)
        taken = ("address already in use", "port is already allocated")
        assert any(t in up.stderr for t in taken), f"compose up: {up.stdout}{up.stderr}"
    else:
        raise AssertionError(f"compose up: host ports taken three times: {up.stderr}")
    zk = ",".join(f"127.0.0.1:{port}" for port in ports[:3])
    try:
        yield Stack(cmd, env, zk, tmp)
    finally:
        _down(cmd, env, tmp / "compose.log")


def leader_id(driver: TaskDriver) -> str | None:
    """The id in the LEADER record (controller ids are the compose service names)."""
    try:
        data, _ = driver._zk.get(f"/{CLUSTER}/CONTROLLER/LEADER")
    except Exception:  # no leader elected (yet): the caller waits
        return None
    return str(json.loads(data)["id"])


def running_on(driver: TaskDriver, wf: str, job: str) -> dict[str, list[int]]:
    """{participant: its partitions RUNNING} for the job, as the store records them."""
    try:
        ctx = driver.get_job_context(wf, job)
    except Exception:  # no context before the first assignment
        return {}
    out: dict[str, list[int]] = {}
    for partition, info in ctx.tasks.items():
        if info.state is TaskPartitionState.RUNNING and info.assigned_participant:
            out.setdefault(info.assigned_participant, []).append(partition)
    return out


@pytest.mark.timeout(420)
def test_the_compose_stack_finishes_a_workflow_after_losing_its_leader_and_a_participant(
    tmp_path: Path,
) -> None:
    workflow = tmp_path / "failover.yaml"
    workflow.write_text(
        "name: failover\n"
        "jobs:\n"
        "  work:\n"
        "    command: Sleep\n"
        "    num_tasks: 12\n"
        '    command_config: {seconds: "6"}\n'
    )
    # Given the whole compose stack on its own container network
    with (
        compose_stack(tmp_path) as stack,
        TaskDriver(stack.zk, CLUSTER, timeout=30.0) as driver,
    ):
        first = wait_for("a leader controller", lambda: leader_id(driver), 120)
        wait_for(
            "3 live participants",
            lambda: sum(1 for i in driver.get_instances().values() if i.get("live")) == 3,
            120,
        )
        # When a workflow is submitted from the host through the CLI
        assert "started failover" in stack.helixpy("workflow", "start", str(workflow))
        busy = wait_for(
            "tasks running on 2 participants",
            lambda: r if len(r := running_on(driver, "failover", "work")) >= 2 else None,
            60,
        )
        victim, on_victim = sorted(busy.items())[0]
        # and the leading controller's container is killed mid-run
        subprocess.run(
            ["docker", "kill", stack.container(first)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        # and so is the container of a participant running a task (its instance id is
        # its container name, helixpy-instance-id)
        subprocess.run(["docker", "kill", victim], check=True, capture_output=True, timeout=60)
        killed_at = datetime.now(UTC)
        # Then the standby leads, and the workflow completes
        second = wait_for(
            "the standby to lead", lambda: c if (c := leader_id(driver)) != first else None, 90
        )
        state = driver.poll_for_workflow_state(
            "failover",
            TaskState.COMPLETED,
            TaskState.FAILED,
            TaskState.ABORTED,
            TaskState.TIMED_OUT,
            timeout=180,
        )
        assert state is TaskState.COMPLETED, f"see {tmp_path / 'compose.log'}"
        ctx = driver.get_job_context("failover", "work")
        assert len(ctx.tasks) == 12
        assert all(t.state is TaskPartitionState.COMPLETED for t in ctx.tasks.values())
        assert {first, second} == {"controller-1", "controller-2"}
        # and what ran on the dead participant finished before it died, or elsewhere
        for partition in on_victim:
            task = ctx.tasks[partition]
            finished = task.finish_time
            assert task.assigned_participant != victim or (
                finished is not None and finished <= killed_at
            ), (partition, task)
