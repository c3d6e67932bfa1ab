"""Reading the systemd units and environment files under deploy/systemd."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from pathlib import Path

from tests.unit.deploy.cli_lines import SYSTEMD, Parsed, is_helixpy, parse

# --- systemd ------------------------------------------------------------------------------


def read_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as (key, value) lists (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    pending = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped[0] in "#;"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        text, pending = pending + stripped, ""
        if text.startswith("[") and text.endswith("]"):
            current = sections.setdefault(text[1:-1], [])
            continue
        key, _, value = text.partition("=")
        current.append((key.strip(), value.strip()))
    return sections


def unit_values(unit: Mapping[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        env[key.strip()] = value
    return env


#: What the template's example instance is called (participant-worker-1.env).
EXAMPLE_INSTANCE = "worker-1"
EXAMPLE_HOST = "host1"


def systemd_envs(
    unit: Mapping[str, list[tuple[str, str]]],
) -> tuple[list[dict[str, str]], list[str]]:
    """The environments a unit gets from the example files of its EnvironmentFile= lines:
    layered in order, as systemd does, and in reverse, so that a default a later file
    overrides in the example (helixpy.env's, under participant-worker-1.env) is checked
    too."""
    layers: list[dict[str, str]] = []
    problems = []
    for raw in unit_values(unit, "Service", "EnvironmentFile"):
        optional = raw.startswith("-")
        path = raw.lstrip("-").replace("%i", EXAMPLE_INSTANCE).replace("%I", EXAMPLE_INSTANCE)
        example = SYSTEMD / Path(path).name
        if example.exists():
            layers.append(read_env_file(example))
        elif not optional:
            problems.append(f"EnvironmentFile={raw} has no example deploy/systemd/{example.name}")
    inline: dict[str, str] = {}
    for raw in unit_values(unit, "Service", "Environment"):
        for word in shlex.split(raw):
            key, _, value = word.partition("=")
            inline[key] = value
    envs = []
    for order in (layers, layers[::-1]):
        env: dict[str, str] = {}
        for layer in order:
            env.update(layer)
        envs.append({**env, **inline})
    return envs, problems


def systemd_exec(line: str, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """ExecStart= as systemd runs it: specifiers, then ``${VAR}`` as one word and ``$VAR``
    split at whitespace (unset: empty / no words). Returns (argv, problems)."""
    problems: list[str] = []
    line = line.lstrip("@-:+!")
    line = line.replace("%i", EXAMPLE_INSTANCE).replace("%I", EXAMPLE_INSTANCE)
    line = line.replace("%H", EXAMPLE_HOST).replace("%%", "%")
    argv: list[str] = []
    for word in shlex.split(line):
        whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if whole:
            if whole.group(1) not in env:
                problems.append(f"${whole.group(1)} is set by no EnvironmentFile example")
            argv.extend(env.get(whole.group(1), "").split())
            continue
        for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", word):
            if name not in env:
                problems.append(f"${{{name}}} is set by no EnvironmentFile example")
        argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m[1], ""), word))
    return argv, problems


def systemd_units() -> dict[str, tuple[dict[str, list[tuple[str, str]]], list[Parsed], list[str]]]:
    out = {}
    for path in sorted(SYSTEMD.glob("*.service")):
        unit = read_unit(path)
        envs, problems = systemd_envs(unit)
        lines = []
        for exec_start in unit_values(unit, "Service", "ExecStart"):
            for n, env in enumerate(envs):
                argv, more = systemd_exec(exec_start, env)
                found = [f"{path.name}: {p}" for p in more]
                problems += [p for p in found if p not in problems]
                if not argv or not is_helixpy(argv[0]):
                    problems.append(f"{path.name}: ExecStart does not run helixpy: {exec_start}")
                    break
                if not argv[0].startswith("/"):
                    problems.append(f"{path.name}: ExecStart needs an absolute path: {argv[0]}")
                parsed = parse(argv[1:], f"systemd {path.name}")
                if n == 0:
                    lines.append(parsed)
                else:  # the defaults a later file overrides: only their problems count
                    problems += [f"{parsed.where} (defaults): {p}" for p in parsed.problems]
        out[path.name] = (unit, lines, problems)
    return out
