"""deploy/docker/zookeeper: the stand-in for the official image reads compose's environment.

Without a container engine: the entrypoint runs on this host with its directories pointed
at a temporary one, fed each ZooKeeper service's environment from docker-compose.yml.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.unit.deploy.cli_lines import DEPLOY
from tests.unit.deploy.compose import load_compose, service_env

ZK_IMAGE_DIR = DEPLOY / "docker" / "zookeeper"


def _entrypoint(env: dict[str, str], tmp: Path) -> tuple[str, str]:
    conf, data = tmp / "conf", tmp / "data"
    conf.mkdir()
    data.mkdir()
    subprocess.run(
        [str(ZK_IMAGE_DIR / "docker-entrypoint.sh"), "true"],
        env={
            **env,
            "PATH": os.environ["PATH"],
            "ZOO_CONF_DIR": str(conf),
            "ZOO_DATA_DIR": str(data),
            "ZOO_DATA_LOG_DIR": "/datalog",
        },
        check=True,
        timeout=30,
    )
    return (conf / "zoo.cfg").read_text(), (data / "myid").read_text().strip()


def test_the_entrypoint_writes_each_servers_config_and_id_from_the_compose_environment(
    tmp_path: Path,
) -> None:
    services = load_compose()["services"]
    for name in ("zk1", "zk2", "zk3"):
        # Given a ZooKeeper service's environment in docker-compose.yml
        env = service_env(services[name])
        where = tmp_path / name
        where.mkdir()
        # When the image's entrypoint runs with it
        cfg, myid = _entrypoint(env, where)
        # Then the config names the whole ensemble, its 4lw whitelist, and this server's id
        lines = cfg.splitlines()
        assert myid == env["ZOO_MY_ID"] == name.removeprefix("zk")
        assert [ln for ln in lines if ln.startswith("server.")] == env["ZOO_SERVERS"].split()
        assert f"4lw.commands.whitelist={env['ZOO_4LW_COMMANDS_WHITELIST']}" in lines
        assert f"dataDir={where / 'data'}" in lines


def test_the_image_serves_the_compose_healthcheck_and_runs_the_configured_server() -> None:
    # Given the compose file's ZooKeeper healthcheck and the stand-in image's files
    compose = load_compose()
    anchor = compose["x-zookeeper"]
    dockerfile = (ZK_IMAGE_DIR / "Dockerfile").read_text()
    zkserver = (ZK_IMAGE_DIR / "zkServer.sh").read_text()
    # Then the healthcheck's command is the image's zkServer.sh (on its PATH) ...
    assert anchor["healthcheck"]["test"] == ["CMD", "zkServer.sh", "status"]
    assert "ENV PATH=/opt/zookeeper/bin:$PATH" in dockerfile
    assert 'CMD ["zkServer.sh", "start-foreground"]' in dockerfile
    # ... which answers `status` from `srvr`, a command the compose file whitelists
    assert 'sendall(b"srvr")' in zkserver
    whitelist = anchor["environment"]["ZOO_4LW_COMMANDS_WHITELIST"].split(",")
    assert "srvr" in whitelist
    # and both scripts are executable (the image runs them as they are copied)
    for script in ("docker-entrypoint.sh", "zkServer.sh"):
        assert os.access(ZK_IMAGE_DIR / script, os.X_OK), script
