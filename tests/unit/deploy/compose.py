"""Reading deploy/compose/docker-compose.yml: its services and their helixpy command lines."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from tests.unit.deploy.cli_lines import COMPOSE, DOCKERFILE, Parsed, helixpy_lines
from tests.unit.deploy.dockerfile import Dockerfile

# --- the compose file ---------------------------------------------------------------------


def compose_interpolate(value: Any) -> Any:
    """Compose's interpolation with an empty environment: ``${X:-default}`` and
    ``${X-default}`` give the default, ``${X}`` and ``$X`` nothing, ``$$`` a ``$``."""
    if isinstance(value, dict):
        return {k: compose_interpolate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [compose_interpolate(v) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        inner = m.group(1) if m.group(1) is not None else m.group(2)
        _, sep, default = inner.partition(":-") if ":-" in inner else inner.partition("-")
        return default if sep else ""

    return re.sub(r"\$\$|\$\{([^}]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)", sub, value)


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    out = compose_interpolate(data)
    assert isinstance(out, dict)
    return out


def service_env(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(e.partition("=")[::2] for e in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


@dataclass
class Service:
    name: str
    spec: dict[str, Any]
    main: list[Parsed]  # the helixpy command lines it runs
    health: list[Parsed]  # ... and its healthcheck runs
    health_disabled: bool
    exec_problems: list[str]
    substitutions: list[str]


def _as_argv(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


def compose_services() -> dict[str, Service]:
    compose = load_compose()
    image = Dockerfile.read(DOCKERFILE)
    out = {}
    for name, spec in compose["services"].items():
        env = service_env(spec)
        built = "build" in spec
        if "entrypoint" in spec:
            argv = _as_argv(spec["entrypoint"]) + _as_argv(spec.get("command"))
        elif "command" in spec:
            argv = (image.entrypoint() if built else []) + _as_argv(spec["command"])
        else:
            argv = image.entrypoint() + image.cmd() if built else []
        where = f"compose {name}"
        lines, problems, subs = helixpy_lines(argv, env, where, daemon=True)
        check = spec.get("healthcheck")
        disabled = bool(check and check.get("disable"))
        health: list[Parsed] = []
        if check and not disabled:
            test = check["test"]
            if isinstance(test, str):
                test = ["CMD-SHELL", test]
            disabled = test[0] == "NONE"
            if test[0] == "CMD":
                health = helixpy_lines(test[1:], env, f"{where} healthcheck")[0]
            elif test[0] == "CMD-SHELL":
                health = helixpy_lines(["sh", "-c", test[1]], env, f"{where} healthcheck")[0]
        elif built and not disabled:
            inherited = image.healthcheck()
            assert inherited is not None
            health = helixpy_lines(inherited, env, f"{where} healthcheck (Dockerfile)")[0]
        out[name] = Service(name, spec, lines, health, disabled, problems, subs)
    return out
