"""A participant behind a cut network: its own network namespace, a veth link we cut.

The namespace, the veth pair and their addresses exist only for the test (created and
removed here); ZooKeeper listens on the host side of the link, so every daemon's traffic
crosses it or loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from helixpy import TaskPartitionState, TaskState, Workflow
from helixpy.testing import LocalCluster
from helixpy.testing.zookeeper import ZooKeeperServer
from tests.integration.helpers import count, record_job, task_records, wait_for_line, wait_job

pytestmark = [
    pytest.mark.cluster,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("ip") is None,
        reason="needs root and iproute2 to make a network namespace",
    ),
]
P = TaskPartitionState


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


class Link:
    """A network namespace joined to the host by a veth pair: host side ``host_ip``."""

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.ns, self.host_if, self.ns_if = f"hpy{tag}", f"hpyh{tag}", f"hpyn{tag}"
        octet = int(tag[:2], 16) % 200 + 20
        self.host_ip, self.ns_ip = f"10.231.{octet}.1", f"10.231.{octet}.2"

    def create(self) -> None:
        _ip("netns", "add", self.ns)
        _ip("link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if)
        _ip("link", "set", self.ns_if, "netns", self.ns)
        _ip("addr", "add", f"{self.host_ip}/30", "dev", self.host_if)
        _ip("link", "set", self.host_if, "up")
        _ip("netns", "exec", self.ns, "ip", "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if)
        _ip("netns", "exec", self.ns, "ip", "link", "set", self.ns_if, "up")
        _ip("netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def cut(self) -> None:
        _ip("link", "set", self.host_if, "down")

    def heal(self) -> None:
        _ip("link", "set", self.host_if, "up")

    def remove(self) -> None:
        # Deleting the namespace deletes its end of the pair, and with it the host end.
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, timeout=30)


@contextmanager
def link() -> Iterator[Link]:
    net = Link()
    try:
        net.create()
        yield net
    finally:
        net.remove()


def test_a_participant_behind_a_cut_link_fences_itself_and_rejoins_when_healed() -> None:
    with (
        link() as net,
        ZooKeeperServer(host=net.host_ip, tick_time=0.5) as server,
        LocalCluster(participants=0, zk=server.connection_string, session_timeout=4.0) as cluster,
    ):
        driver = cluster.driver
        inside = cluster.add_participant(prefix=["ip", "netns", "exec", net.ns])
        outside = cluster.add_participant()
        driver.set_instance_enabled(outside, False)  # the task starts inside
        driver.start(Workflow.builder("cut").add_job("j", record_job(1, 6.0)).build())
        wait_job(cluster, "cut", "j", lambda c: count(c, P.RUNNING) == 1, "running inside")
        driver.set_instance_enabled(outside, True)
        first = cluster.incarnation(inside)
        # When its link is cut while its task runs
        net.cut()
        try:
            # Then it notices within the session timeout and cancels its attempt, and the
            # task runs again on the other participant, as attempt 2
            wait_for_line(cluster.log_dir / f"{inside}.log", "fences itself", timeout=15)
            ctx = wait_job(
                cluster,
                "cut",
                "j",
                lambda c: c.tasks[0].state is P.COMPLETED,
                "rerun outside",
                timeout=60,
            )
        finally:
            net.heal()
        task = ctx.tasks[0]
        assert (task.num_attempts, task.assigned_participant) == (2, outside)
        # and nothing from the cut-off attempt was written: the record is attempt 2's
        assert task_records(driver, "cut", "j")[0] == {
            **task_records(driver, "cut", "j")[0],
            "attempt": "2",
            "instance": outside,
        }
        # When the link heals it rejoins under a new incarnation and takes work again
        assert cluster.wait_registered(inside, other_than=first, timeout=60) != first
        driver.set_instance_enabled(outside, False)
        driver.start(Workflow.builder("healed").add_job("j", record_job(1)).build())
        assert (
            driver.poll_for_workflow_state("healed", TaskState.COMPLETED, timeout=60)
            is TaskState.COMPLETED
        )
        assert driver.get_job_context("healed", "j").tasks[0].assigned_participant == inside
