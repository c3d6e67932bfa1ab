"""deploy/compose: files, command lines, healthchecks, ports, ensemble, environment."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from helixpy import Workflow
from helixpy.participant.registry import load_registry
from tests.unit.deploy.cli_lines import (
    COMPOSE_DIR,
    DOCKERFILE,
    LOOPBACK,
    ROOT,
    SERVES_LOOPBACK,
    UNDIALABLE,
    envvar_problems,
    global_envvars,
    seconds,
)
from tests.unit.deploy.compose import _as_argv, compose_services, load_compose, service_env
from tests.unit.deploy.dockerfile import Dockerfile

# --- the compose file --------------------------------------------------------------------


def test_compose_file_parses_and_names_files_that_exist() -> None:
    compose = load_compose()
    services = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, spec in services.items():
        build = spec.get("build")
        if build is not None:
            context = COMPOSE_DIR / (build if isinstance(build, str) else build["context"])
            assert context.resolve() == ROOT, f"{name}: build context is the repository root"
            dockerfile = (
                build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else ("Dockerfile")
            )
            assert (context / dockerfile).resolve() == DOCKERFILE, name
        for volume in spec.get("volumes") or []:
            source = volume.split(":")[0] if isinstance(volume, str) else volume["source"]
            if source.startswith((".", "/")):
                assert (COMPOSE_DIR / source).exists(), f"{name}: mounts missing {source}"
            else:
                assert source in declared_volumes, f"{name}: undeclared volume {source}"
        for env_file in _as_argv(spec.get("env_file")):
            assert (COMPOSE_DIR / env_file).exists(), f"{name}: no env_file {env_file}"
        depends = spec.get("depends_on") or []
        for other in depends:
            assert other in services, f"{name} depends on unknown service {other}"


def test_compose_command_lines_and_healthchecks_exist_in_the_cli() -> None:
    services = compose_services()
    problems = []
    for svc in services.values():
        problems += svc.exec_problems
        problems += [f"{line.where}: {p}" for line in svc.main + svc.health for p in line.problems]
    assert problems == []
    roles = [line.role for svc in services.values() for line in svc.main if line.role]
    assert roles.count("controller") == 2 and roles.count("participant") == 1, roles


def test_compose_healthchecks_ask_each_daemon_on_its_metrics_port() -> None:
    checked = 0
    for svc in compose_services().values():
        daemons = [line for line in svc.main if line.role]
        if not daemons:
            if svc.main:  # a CLI service: no daemon would ever answer its healthcheck
                assert svc.health_disabled, f"{svc.name}: disable the healthcheck"
            continue
        [daemon] = daemons
        port = daemon.value("--metrics-port")
        assert port is not None, f"{svc.name}: give --metrics-port (healthchecks use it)"
        assert svc.health, f"{svc.name}: no healthcheck"
        assert daemon.role in {h.health_of for h in svc.health}, f"{svc.name}: {svc.health}"
        for health in svc.health:
            assert health.health_of is not None, f"{svc.name}: {health.argv}"
            assert health.value("--port") == port, f"{svc.name}: health port is not {port}"
            host = health.value("--host")
            assert host in LOOPBACK | {None}, host
            assert daemon.value("--metrics-host") in SERVES_LOOPBACK, svc.name
        checked += 1
    assert checked == 3


def test_compose_controllers_publish_their_grpc_endpoints() -> None:
    services = compose_services()
    controllers = [
        (s, line) for s in services.values() for line in s.main if line.role == "controller"
    ]
    ports, ids = set(), set()
    for svc, line in controllers:
        port = line.value("--grpc-port")
        host = line.value("--grpc-host")
        assert port is not None and int(port) > 0, f"{svc.name}: a fixed --grpc-port"
        # the leader publishes host:port in ZooKeeper: a name that resolves on the network
        assert host not in UNDIALABLE, f"{svc.name}: --grpc-host {host} cannot be dialled"
        assert host in {svc.name, svc.spec.get("hostname")}, f"{svc.name}: --grpc-host {host}"
        published = [str(p).split(":") for p in svc.spec.get("ports") or []]
        assert published, f"{svc.name}: publish the gRPC port for drivers on the host"
        for parts in published:
            assert parts[-1] == port and parts[-2] == port, f"{svc.name}: {parts} vs {port}"
        ports.add(port)
        ids.add(line.value("--id"))
    assert len(ports) == len(ids) == len(controllers) == 2


def test_compose_participants_scale_with_unique_ids_and_a_long_enough_stop() -> None:
    services = compose_services()
    image = Dockerfile.read(DOCKERFILE)
    installed = {
        dest if not dest.endswith("/") else dest + Path(src).name
        for sources, dest in image.copies()
        for src in sources
    }
    participants = [
        (s, line) for s in services.values() for line in s.main if line.role == "participant"
    ]
    assert participants
    for svc, line in participants:
        assert "container_name" not in svc.spec and "hostname" not in svc.spec, (
            f"{svc.name}: a fixed name or hostname breaks --scale"
        )
        assert svc.spec.get("deploy", {}).get("replicas") == 3
        instance = line.value("--instance") or ""
        assert instance.startswith("$(") and instance.endswith(")"), (
            f"{svc.name}: --instance {instance!r} is the same in every replica"
        )
        for command in svc.substitutions:
            program = command.split()[0]
            assert any(Path(d).name == program for d in installed), (
                f"{svc.name}: $({command}) is not installed by the Dockerfile"
            )
        grace = float(line.value("--grace") or 0)
        stop = seconds(svc.spec.get("stop_grace_period", "10s"))
        assert stop > grace, f"{svc.name}: stop_grace_period {stop}s <= --grace {grace}s"


def test_compose_zookeeper_ensemble_has_three_servers_named_by_helixpy_zk() -> None:
    compose = load_compose()
    zk = {
        n: s
        for n, s in compose["services"].items()
        if str(s.get("image", "")).startswith("zookeeper")
    }
    assert len(zk) == 3, sorted(zk)
    assert {s["image"] for s in zk.values()} == {"zookeeper:3.8"}
    ids = {}
    servers_seen = set()
    for name, spec in zk.items():
        env = service_env(spec)
        ids[int(env["ZOO_MY_ID"])] = {name, spec.get("hostname", name)}
        servers_seen.add(env["ZOO_SERVERS"])
    assert sorted(ids) == [1, 2, 3]
    assert len(servers_seen) == 1, "every server needs the same ZOO_SERVERS"
    entries = re.findall(r"server\.(\d+)=([^:\s]+):(\d+):(\d+)(?:;(\d+))?", servers_seen.pop())
    assert len(entries) == 3, entries
    for number, host, _peer, _election, _client in entries:
        assert host in ids[int(number)], f"server.{number}={host} is not that service"
    zk_hosts = {(h, p) for _, h, _, _, c in entries for p in [c or "2181"]}
    for name, spec in compose["services"].items():
        if "build" not in spec:
            continue
        value = service_env(spec).get("HELIXPY_ZK")
        assert value, f"{name}: no HELIXPY_ZK"
        named = {tuple(s.rsplit(":", 1)) for s in value.split(",")}
        assert named == zk_hosts, f"{name}: HELIXPY_ZK {value} vs the ensemble {zk_hosts}"


def test_compose_environment_names_options_the_cli_reads() -> None:
    known = global_envvars()
    for svc in compose_services().values():
        if "build" not in svc.spec:
            continue
        env = service_env(svc.spec)
        assert env.get("HELIXPY_CLUSTER"), svc.name
        assert envvar_problems(env, svc.name) == []
        script = " ".join(_as_argv(svc.spec.get("command")))
        for name in env:
            if name.startswith("HELIXPY_"):
                assert name in known or f"${name}" in script, (
                    f"{svc.name}: {name} is read by neither the CLI nor the command"
                )


def test_compose_task_modules_and_workflows_load(monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose_services()
    registries: dict[str, list[str]] = {}
    for svc in services.values():
        for line in svc.main:
            if line.role == "participant":
                spec = line.value("--tasks") or ""
                registries[spec] = load_registry(spec).commands()
        for volume in svc.spec.get("volumes") or []:
            source, target = volume.split(":")[:2]
            if target.startswith("/app/tasks") and source.startswith("."):
                assert target in service_env(svc.spec).get("PYTHONPATH", "").split(":")
                monkeypatch.syspath_prepend(str(COMPOSE_DIR / source))
                for module in sorted((COMPOSE_DIR / source).glob("*.py")):
                    spec = f"{module.stem}:registry"
                    try:
                        registries[spec] = load_registry(spec).commands()
                    finally:  # leave no example module behind for other tests
                        sys.modules.pop(module.stem, None)
    assert "helixpy.testing.tasks:registry" in registries and len(registries) >= 2
    workflows = sorted((COMPOSE_DIR / "workflows").glob("*.yaml"))
    assert workflows
    for path in workflows:
        wf = Workflow.from_yaml(path.read_text())
        commands = {job.command for job in wf.jobs.values()}
        assert any(commands <= set(c) for c in registries.values()), (
            f"{path.name}: {commands} are in no participant registry"
        )
