"""Security: ZooKeeper ACLs for a cluster run with an identity; task code stays local."""

from __future__ import annotations

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import Permissions

from helixpy import JobConfig, TaskState, Workflow
from helixpy.model.locks import LockType
from helixpy.store.client import connect
from helixpy.store.locks import LockBox
from helixpy.testing import LocalCluster
from tests.integration.helpers import wait_final

pytestmark = pytest.mark.cluster
AUTH = "digest:helix:s3cret"


def _walk(zk: KazooClient, path: str) -> list[str]:
    out = [path]
    for child in zk.get_children(path):
        out += _walk(zk, f"{path.rstrip('/')}/{child}")
    return out


def test_with_zk_auth_only_the_cluster_identity_can_change_its_znodes(zk_address: str) -> None:
    with LocalCluster(participants=1, zk=zk_address, zk_auth=AUTH) as cluster:
        driver = cluster.driver
        # Given a cluster run with an identity, doing a bit of everything
        driver.start(
            Workflow.builder("acl").add_job("j", JobConfig(command="Record", num_tasks=2)).build()
        )
        assert wait_final(driver, "acl") is TaskState.COMPLETED
        driver.set_partition_state(cluster.instances[0], "db", "db_0", "MASTER")
        owner = connect(cluster.zk_address, auth=AUTH)
        anon = connect(cluster.zk_address)
        try:
            assert (
                LockBox(owner, cluster.cluster, "locker")
                .try_acquire("r", (0, 1), LockType.EXCLUSIVE)
                .ok
            )
            # Then every znode of the cluster grants writes to that identity only
            nodes = _walk(owner, cluster.paths.root)
            assert len(nodes) > 40
            for path in nodes:
                acls, _ = owner.get_acls(path)
                for acl in acls:
                    if acl.id.scheme == "world":
                        assert acl.perms == Permissions.READ, path
                    else:
                        assert (acl.id.scheme, acl.id.id.split(":")[0]) == ("digest", "helix")
            # and a client without it can read, but not change, delete or add anything
            config = cluster.paths.workflow_config("acl")
            assert anon.get(config)[0]
            with pytest.raises(NoAuthError):
                anon.set(config, b"{}")
            with pytest.raises(NoAuthError):
                anon.delete(cluster.paths.workflow("acl"), recursive=True)
            with pytest.raises(NoAuthError):
                anon.create(f"{cluster.paths.workflows}/evil", b"")
            assert owner.exists(cluster.paths.workflow("acl")) is not None
        finally:
            for zk in (owner, anon):
                zk.stop()
                zk.close()


def test_a_bad_zk_auth_is_refused_with_the_rule() -> None:
    from helixpy.errors import InvalidConfig

    with pytest.raises(InvalidConfig, match="digest:<user>:<password>"):
        connect("127.0.0.1:1", auth="sasl:whatever")


def test_nothing_in_zookeeper_makes_a_participant_import_or_run_other_code(
    zk_address: str, tmp_path: object
) -> None:
    from pathlib import Path

    marker = Path(str(tmp_path)) / "pwned"
    evil = [
        f"os:system('touch {marker}')",
        "os:system",
        "helixpy.testing.tasks:registry",
        f"__import__('os').system('touch {marker}')",
        "subprocess.run",
    ]
    with LocalCluster(participants=1, zk=zk_address) as cluster:
        from helixpy import WorkflowConfig

        # (a threshold above the job count: every job gets its chance to run)
        b = Workflow.builder("evil").set_config(WorkflowConfig(failure_threshold=100))
        for i, command in enumerate(evil):
            for isolation in ("thread", "process"):
                b.add_job(
                    f"j{i}{isolation[0]}",
                    JobConfig(
                        command=command,
                        num_tasks=1,
                        isolation=isolation,
                        command_config={"module": "os", "cmd": f"touch {marker}"},
                    ),
                )
        cluster.driver.start(b.build())
        # Then each such command is just an unknown name in the registry: ERROR, not run
        assert wait_final(cluster.driver, "evil") is TaskState.COMPLETED
        for name in cluster.driver.get_workflow_context("evil").job_states:
            task = cluster.driver.get_job_context("evil", name).tasks[0]
            assert task.state is not None and task.state.value == "ERROR", (name, task)
            assert task.info.startswith("unknown command"), task.info
        assert not marker.exists()


def test_writes_without_the_identity_are_refused_with_a_clear_error(zk_address: str) -> None:
    from helixpy.driver import TaskDriver
    from helixpy.errors import AccessDenied

    with LocalCluster(participants=0, zk=zk_address, zk_auth=AUTH) as cluster:
        cluster.driver.create_queue(__import__("helixpy").JobQueue.builder("q").build())
        with TaskDriver(cluster.zk_address, cluster.cluster) as anon:
            assert "q" in anon.get_workflows()  # reads are open
            with pytest.raises(AccessDenied, match="--zk-auth"):
                anon.delete("q", force=True)
        assert "q" in cluster.driver.get_workflows()


def test_a_stream_append_without_the_identity_is_access_denied(zk_address: str) -> None:
    from helixpy import JobConfig, Workflow
    from helixpy.driver import TaskDriver
    from helixpy.errors import AccessDenied

    # Given a streaming job in a cluster whose znodes only its identity may write
    job = JobConfig(command="Sum", num_tasks=1, stream=True)
    with LocalCluster(participants=0, zk=zk_address, zk_auth=AUTH) as cluster:
        cluster.driver.start(Workflow.builder("st").add_job("s", job).build())
        with TaskDriver(cluster.zk_address, cluster.cluster) as anon:
            # When a client without it appends, requests a barrier or ends the stream
            # Then it hears AccessDenied naming --zk-auth (not kazoo's RolledBackError)
            with pytest.raises(AccessDenied, match="--zk-auth"):
                anon.add_splits("st", "s", [{"v": 1}])
            with pytest.raises(AccessDenied, match="--zk-auth"):
                anon.request_barrier("st", "s")
            with pytest.raises(AccessDenied, match="--zk-auth"):
                anon.end_stream("st", "s")
        # And the cluster's own driver still appends
        assert cluster.driver.add_splits("st", "s", [{"v": 1}]) >= 0
