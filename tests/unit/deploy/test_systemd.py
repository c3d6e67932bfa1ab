"""deploy/systemd: units' ExecStart lines, privileges, restart, stop, environment files."""

from __future__ import annotations

import re

from tests.unit.deploy.cli_lines import SYSTEMD, envvar_problems, global_envvars, seconds
from tests.unit.deploy.systemd import read_env_file, systemd_units, unit_values

# --- systemd ------------------------------------------------------------------------------


def test_systemd_units_run_cli_commands_that_exist() -> None:
    units = systemd_units()
    assert set(units) == {"helixpy-controller.service", "helixpy-participant@.service"}
    problems = []
    roles = []
    for _name, (_unit, lines, more) in units.items():
        problems += more
        for line in lines:
            problems += [f"{line.where}: {p}" for p in line.problems]
            roles.append(line.role)
    assert problems == []
    assert sorted(r for r in roles if r) == ["controller", "participant"]


def test_systemd_units_are_unprivileged_restart_and_stop_in_time() -> None:
    for name, (unit, lines, _) in systemd_units().items():

        def one(key: str, unit: dict[str, list[tuple[str, str]]] = unit, name: str = name) -> str:
            values = unit_values(unit, "Service", key)
            assert len(values) == 1, f"{name}: {key}={values}"
            return values[0]

        assert one("User") not in ("root", "0", ""), name
        assert one("Restart") == "on-failure", name
        assert one("KillSignal") == "SIGTERM", name
        files = [f.lstrip("-") for f in unit_values(unit, "Service", "EnvironmentFile")]
        assert "/etc/helixpy/helixpy.env" in files, name
        assert unit_values(unit, "Install", "WantedBy"), name
        [daemon] = lines
        if daemon.role == "participant":
            assert name.endswith("@.service"), "participants: a template unit"
            raw = unit_values(unit, "Service", "ExecStart")[0]
            assert re.search(r"--instance %[iI](\s|$)", raw), f"{name}: --instance %i"
            assert one("KillMode") == "mixed", f"{name}: SIGTERM to the participant only"
            grace = float(daemon.value("--grace") or 0)
            assert seconds(one("TimeoutStopSec")) > grace, f"{name}: TimeoutStopSec <= --grace"


def test_systemd_env_files_set_only_what_is_read() -> None:
    known = global_envvars()
    units = " ".join(p.read_text() for p in SYSTEMD.glob("*.service"))
    ports = {}
    for path in sorted(SYSTEMD.glob("*.env")):
        env = read_env_file(path)
        assert envvar_problems(env, path.name) == []
        for name in env:
            if name.startswith("HELIXPY_"):
                assert name in known or re.search(rf"\$\{{?{name}\b", units), (
                    f"{path.name}: {name} is read by neither the CLI nor a unit"
                )
        if "HELIXPY_METRICS_PORT" in env:
            ports[path.name] = env["HELIXPY_METRICS_PORT"]
    [controller] = systemd_units()["helixpy-controller.service"][1]
    assert ports and controller.value("--metrics-port") not in ports.values(), (
        "a participant on a controller's host needs another metrics port"
    )
