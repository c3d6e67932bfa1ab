"""The deployment files under deploy/, checked without a container engine or a cluster.

Every ``helixpy`` command line in them (the Dockerfile's CMD and HEALTHCHECK, compose
commands and healthchecks, Kubernetes args and probes, systemd ExecStart lines) is parsed
against the real click command tree of ``helixpy.cli.main``: the subcommand path must
exist, every option must belong to the command it follows (or to the global group before
it), literal values must convert to the option's type, and required options must be
there. Then what the files must agree on: healthcheck and probe ports against
``--metrics-port``, published and Service ports against ``--grpc-port``, stop grace
periods against the participant's ``--grace``, the ZooKeeper ensemble against
``HELIXPY_ZK``, secrets and TLS paths against what is mounted, and that every file the
compose file or the kustomization names exists.

The checker itself is tested first (``test_checker_*``), with command lines that are
wrong on purpose.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import re
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
import yaml

from helixpy import Workflow
from helixpy.cli import main
from helixpy.participant.registry import load_registry

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE_DIR = DEPLOY / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"
INSTANCE_ID_SCRIPT = DEPLOY / "docker" / "helixpy-instance-id"

#: The documented fixed ports inside containers (deploy/README.md).
METRICS_PORT = 9100
GRPC_PORT = 50051
BASE_IMAGE = "python:3.11-slim"
DAEMONS = ("controller", "participant")
#: Addresses a health command may ask, and what the daemon must bind for them to answer.
LOOPBACK = {"127.0.0.1", "localhost"}
SERVES_LOOPBACK = {"0.0.0.0", "::", "127.0.0.1", "localhost"}
#: A published gRPC endpoint must be dialable: never one of these.
UNDIALABLE = {"0.0.0.0", "::", "127.0.0.1", "localhost", ""}
#: Options a command checks for itself rather than through click's ``required`` (the
#: participant is a group, so that ``participant health`` needs neither).
REQUIRED: dict[tuple[str, ...], tuple[str, ...]] = {("participant",): ("--tasks", "--instance")}


# --- the click command tree -----------------------------------------------------------


@dataclass
class Parsed:
    """One ``helixpy`` command line, resolved against the CLI."""

    where: str
    argv: list[str]
    path: tuple[str, ...] = ()
    #: options by level: () the global group, ("controller",) ..., option name -> value
    levels: dict[tuple[str, ...], dict[str, str | None]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def options(self) -> dict[str, str | None]:
        """The options given to the innermost command."""
        return self.levels.get(self.path, {})

    def value(self, name: str) -> str | None:
        """``name``'s value at the innermost command, else its click default (as text)."""
        if name in self.options:
            return self.options[name]
        param = _option(_command(self.path), name)
        if param is None or param.default is None or callable(param.default):
            return None
        return str(param.default)

    @property
    def role(self) -> str | None:
        """``controller`` / ``participant`` for a daemon, else None."""
        return self.path[0] if self.path in {(d,) for d in DAEMONS} else None

    @property
    def health_of(self) -> str | None:
        """The daemon a ``... health`` command asks about, else None."""
        if len(self.path) == 2 and self.path[1] == "health" and self.path[0] in DAEMONS:
            return self.path[0]
        return None


def _context(cmd: click.Command) -> click.Context:
    return click.Context(cmd, info_name=cmd.name)


def _command(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = main
    for name in path:
        assert isinstance(cmd, click.Group)
        sub = cmd.get_command(_context(cmd), name)
        assert sub is not None
        cmd = sub
    return cmd


def _option(cmd: click.Command, name: str) -> click.Option | None:
    for param in cmd.params:
        if isinstance(param, click.Option) and name in (*param.opts, *param.secondary_opts):
            return param
    return None


def is_dynamic(value: str) -> bool:
    """A value only known at run time (an unexpanded variable or command substitution)."""
    return "$" in value or "%" in value


def parse(argv: list[str], where: str = "") -> Parsed:
    """Resolve ``argv`` (without the program name) against ``helixpy.cli.main``."""
    out = Parsed(where, list(argv))
    cmd: click.Command = main
    path: tuple[str, ...] = ()
    out.levels[path] = {}
    positional: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        i += 1
        label = " ".join(("helixpy", *path))
        if tok.startswith("--") or (tok.startswith("-") and len(tok) > 1 and tok != "-"):
            name, eq, inline = tok.partition("=")
            if name == "--help":
                out.levels[path][name] = None
                continue
            param = _option(cmd, name)
            if param is None:
                out.problems.append(f"`{label}` has no option {name}")
                continue
            if param.is_flag or param.count:
                if eq:
                    out.problems.append(f"`{label} {name}` is a flag and takes no value")
                out.levels[path][name] = None
                continue
            if eq:
                values = [inline]
            else:
                values = argv[i : i + param.nargs]
                i += param.nargs
            if len(values) < param.nargs:
                out.problems.append(f"`{label} {name}` needs a value")
                continue
            for value in values:
                if is_dynamic(value) or isinstance(param.type, click.File | click.Path):
                    continue
                try:
                    param.type.convert(value, param, _context(cmd))
                except click.BadParameter as exc:
                    out.problems.append(f"`{label} {name} {value}`: {exc.message}")
            out.levels[path][name] = values[0]
            continue
        if isinstance(cmd, click.Group) and not positional:
            sub = cmd.get_command(_context(cmd), tok)
            if sub is None:
                out.problems.append(f"`{label}` has no command {tok!r}")
                break
            cmd, path = sub, (*path, tok)
            out.levels[path] = {}
            continue
        positional.append(tok)
    out.path = path
    asked_for_help = any("--help" in opts or "--version" in opts for opts in out.levels.values())
    if out.problems or asked_for_help:
        return out
    label = " ".join(("helixpy", *path))
    if isinstance(cmd, click.Group) and not cmd.invoke_without_command:
        out.problems.append(f"`{label}` needs a subcommand")
    arguments = [p for p in cmd.params if isinstance(p, click.Argument)]
    most = None if any(a.nargs < 0 for a in arguments) else sum(a.nargs for a in arguments)
    if most is not None and len(positional) > most:
        out.problems.append(f"`{label}` takes {most} arguments, given {positional}")
    least = sum(max(a.nargs, 1) for a in arguments if a.required)
    if len(positional) < least:
        out.problems.append(f"`{label}` needs {least} arguments, given {positional}")
    given = out.options
    required = [
        p.opts for p in cmd.params if isinstance(p, click.Option) and p.required and not p.envvar
    ] + [[name] for name in REQUIRED.get(path, ())]
    for opts in required:
        if not any(opt in given for opt in opts):
            out.problems.append(f"`{label}` needs {opts[0]}")
    return out


def global_envvars() -> dict[str, click.Parameter]:
    """The environment variables the CLI reads: every ``envvar`` of the global group."""
    names: dict[str, click.Parameter] = {}
    for param in main.params:
        envvar = getattr(param, "envvar", None)
        for name in [envvar] if isinstance(envvar, str) else envvar or []:
            names[name] = param
    return names


def envvar_problems(env: Mapping[str, str | None], where: str) -> list[str]:
    """Values of the CLI's environment variables that its options would refuse."""
    problems = []
    for name, param in global_envvars().items():
        value = env.get(name)
        if value is None or is_dynamic(value):
            continue
        try:
            param.type.convert(value, param, _context(main))
        except click.BadParameter as exc:
            problems.append(f"{where}: {name}={value}: {exc.message}")
    return problems


# --- shell command lines ----------------------------------------------------------------

_SUBST = re.compile(r"\$\(([^()]*)\)")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
_OPERATORS = {";", "&&", "||", "|", "&"}


@dataclass
class ShellCommand:
    argv: list[str]
    exec: bool
    #: the commands of ``$(...)`` substitutions in its words
    substitutions: list[str]


def expand(word: str, env: Mapping[str, str]) -> str:
    """``$VAR`` / ``${VAR}`` replaced from ``env``; unknown variables stay as written."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return env[name] if name in env else m.group(0)

    return _VAR.sub(sub, word)


def shell_commands(script: str, env: Mapping[str, str]) -> list[ShellCommand]:
    """The simple commands of a POSIX shell line, their words expanded from ``env``."""
    subs: list[str] = []

    def keep(m: re.Match[str]) -> str:
        subs.append(m.group(1).strip())
        return f"__SUBST{len(subs) - 1}__"

    lexer = shlex.shlex(_SUBST.sub(keep, script), posix=True, punctuation_chars=";&|")
    lexer.whitespace_split = True
    segments: list[list[str]] = [[]]
    for tok in lexer:
        if tok in _OPERATORS:
            segments.append([])
        else:
            segments[-1].append(tok)
    out: list[ShellCommand] = []
    for words in segments:
        is_exec = bool(words) and words[0] == "exec"
        words = words[1:] if is_exec else words
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]  # VAR=value assignments before the command
        if not words:
            continue
        used = [subs[int(n)] for w in words for n in re.findall(r"__SUBST(\d+)__", w)]
        argv = [
            re.sub(r"__SUBST(\d+)__", lambda m: f"$({subs[int(m.group(1))]})", expand(w, env))
            for w in words
        ]
        out.append(ShellCommand(argv, is_exec, used))
    return out


def is_helixpy(program: str) -> bool:
    return Path(program).name == "helixpy"


# --- the Dockerfile ------------------------------------------------------------------


@dataclass
class Dockerfile:
    instructions: list[tuple[str, str]]
    args: dict[str, str]

    @classmethod
    def read(cls, path: Path) -> Dockerfile:
        logical: list[str] = []
        pending = ""
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if stripped.startswith("#") or (not stripped and pending):
                continue
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            if pending or stripped:
                logical.append(pending + stripped)
            pending = ""
        instructions = []
        for text in logical:
            keyword, _, rest = text.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
        args = {}
        for keyword, rest in instructions:
            if keyword == "FROM":
                break
            if keyword == "ARG":
                name, _, default = rest.partition("=")
                args[name] = default
        return cls(instructions, args)

    def final_stage(self) -> list[tuple[str, str]]:
        starts = [i for i, (k, _) in enumerate(self.instructions) if k == "FROM"]
        return self.instructions[starts[-1] :]

    def base_images(self) -> list[str]:
        return [
            expand(rest.split()[0], self.args)
            for keyword, rest in self.instructions
            if keyword == "FROM"
        ]

    def last(self, keyword: str) -> str | None:
        found = [rest for k, rest in self.final_stage() if k == keyword]
        return found[-1] if found else None

    @staticmethod
    def command_form(text: str) -> list[str]:
        """Exec form (JSON) as is; shell form as ``/bin/sh -c TEXT``."""
        if text.startswith("["):
            value = json.loads(text)
            assert isinstance(value, list)
            return [str(v) for v in value]
        return ["/bin/sh", "-c", text]

    def entrypoint(self) -> list[str]:
        text = self.last("ENTRYPOINT")
        return self.command_form(text) if text else []

    def cmd(self) -> list[str]:
        text = self.last("CMD")
        return self.command_form(text) if text else []

    def healthcheck(self) -> list[str] | None:
        """The argv of the HEALTHCHECK's command (shell form: ``/bin/sh -c TEXT``)."""
        text = self.last("HEALTHCHECK")
        if text is None or text.upper() == "NONE":
            return None
        found = re.fullmatch(r"(?:--\S+\s+)*CMD\s+(.*)", text, re.DOTALL)
        assert found, f"HEALTHCHECK without CMD: {text}"
        return self.command_form(found.group(1).strip())

    def copies(self) -> list[tuple[list[str], str]]:
        """(sources, destination) of every COPY/ADD from the build context (not --from)."""
        out = []
        for keyword, rest in self.instructions:
            if keyword not in ("COPY", "ADD"):
                continue
            words = rest.split()
            flags = [w for w in words if w.startswith("--")]
            if any(f.startswith("--from=") for f in flags):
                continue
            paths = [w for w in words if not w.startswith("--")]
            out.append((paths[:-1], paths[-1]))
        return out

    def exposed(self) -> set[int]:
        return {
            int(p.split("/")[0])
            for keyword, rest in self.instructions
            if keyword == "EXPOSE"
            for p in rest.split()
        }


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context (last matching pattern wins;
    a pattern matching a parent directory matches its contents)."""

    def regex(pattern: str) -> re.Pattern[str]:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out)

    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = (raw[1:] if negated else raw).strip().strip("/")
        if any(regex(pattern).fullmatch(c) for c in candidates):
            ignored = not negated
    return ignored


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]


# --- durations ------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def seconds(text: str | int | float) -> float:
    """``45s``, ``1m30s`` (compose), ``45``, ``1min 30s`` (systemd) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"([0-9.]+)\s*([a-z]*)", text.strip())
    assert parts, f"not a duration: {text!r}"
    return sum(float(n) * _UNITS[unit or "s"] for n, unit in parts)


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


def helixpy_lines(
    argv: list[str], env: Mapping[str, str], where: str, daemon: bool = False
) -> tuple[list[Parsed], list[str], list[str]]:
    """(helixpy command lines, problems, substitutions) of a process's argv, which is
    either helixpy itself or ``/bin/sh -c SCRIPT``. A ``daemon`` (a container's main
    process) run by a shell must be ``exec``ed, or SIGTERM stops at the shell."""
    if argv and is_helixpy(argv[0]):
        return [parse([expand(a, env) for a in argv[1:]], where)], [], []
    if len(argv) >= 3 and Path(argv[0]).name in ("sh", "bash") and argv[1] == "-c":
        lines, problems, subs = [], [], []
        commands = shell_commands(argv[2], env)
        for cmd in commands:
            subs.extend(cmd.substitutions)
            if is_helixpy(cmd.argv[0]):
                lines.append(parse(cmd.argv[1:], where))
                if daemon and not cmd.exec:
                    problems.append(f"{where}: `exec helixpy` so that helixpy gets SIGTERM")
        return lines, problems, subs
    return [], [], []


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


# --- Kubernetes ---------------------------------------------------------------------------


def kustomization() -> dict[str, Any]:
    data = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def k8s_documents() -> list[dict[str, Any]]:
    docs = []
    for resource in kustomization()["resources"]:
        for doc in yaml.safe_load_all((K8S / resource).read_text()):
            if doc is not None:
                docs.append(doc)
    return docs


def k8s_named(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == kind}


def secret_keys(secret: Mapping[str, Any]) -> set[str]:
    return set(secret.get("stringData") or {}) | set(secret.get("data") or {})


@dataclass
class Container:
    workload: str
    pod: dict[str, Any]
    spec: dict[str, Any]
    env: dict[str, str | None]  # name -> literal value, None when only known at run time
    sources: dict[str, dict[str, Any]]  # name -> its valueFrom
    main: list[Parsed]
    probes: dict[str, Parsed | dict[str, Any]]


_K8S_VAR = re.compile(r"(?<!\$)\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def k8s_containers() -> list[Container]:
    configmaps = k8s_named("ConfigMap")
    out = []
    for doc in k8s_documents():
        if doc["kind"] not in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for spec in pod["containers"]:
            env: dict[str, str | None] = {}
            sources: dict[str, dict[str, Any]] = {}
            for ref in spec.get("envFrom") or []:
                cm = configmaps.get(ref.get("configMapRef", {}).get("name", ""))
                if cm is not None:
                    env.update({k: str(v) for k, v in (cm.get("data") or {}).items()})
            for item in spec.get("env") or []:
                env[item["name"]] = None if "valueFrom" in item else str(item.get("value", ""))
                if "valueFrom" in item:
                    sources[item["name"]] = item["valueFrom"]
            where = f"k8s {doc['metadata']['name']}/{spec['name']}"

            def resolve(word: str, env: dict[str, str | None] = env) -> str:
                def sub(m: re.Match[str]) -> str:
                    value = env.get(m.group(1))
                    return value if value is not None else m.group(0)

                return _K8S_VAR.sub(sub, word)

            argv = [*(spec.get("command") or ["helixpy"]), *(spec.get("args") or [])]
            main_lines = (
                [parse([resolve(a) for a in argv[1:]], where)] if is_helixpy(argv[0]) else []
            )
            probes: dict[str, Parsed | dict[str, Any]] = {}
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                probe = spec.get(kind)
                if probe is None:
                    continue
                if "exec" in probe:
                    command = [str(c) for c in probe["exec"]["command"]]
                    assert is_helixpy(command[0]), f"{where} {kind}: {command}"
                    probes[kind] = parse(command[1:], f"{where} {kind}")
                else:
                    probes[kind] = probe
            out.append(
                Container(doc["metadata"]["name"], pod, spec, env, sources, main_lines, probes)
            )
    return out


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


# --- the checker, on command lines that are wrong on purpose --------------------------------


def test_checker_accepts_commands_that_exist() -> None:
    ok = parse(["--zk", "a:1", "participant", "--tasks", "m:r", "--instance", "w1", "--grace", "3"])
    assert ok.problems == []
    assert ok.path == ("participant",) and ok.role == "participant"
    assert ok.levels[()] == {"--zk": "a:1"} and ok.value("--grace") == "3"
    assert ok.value("--session-timeout") == "10.0"  # the click default
    assert parse(["workflow", "start", "wf.yaml"]).problems == []
    assert parse(["--help"]).problems == []


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["participant", "--tasks", "m:r", "--instance", "w", "--bogus", "1"], "no option --bogus"),
        (["participant", "--tasks", "m:r"], "needs --instance"),
        (["participant", "--tasks", "m:r", "--instance", "w", "--capacity", "eight"], "eight"),
        (["participant", "--tasks", "m:r", "--instance", "w", "--grace"], "needs a value"),
        (["controller", "--grpc-port", "50051", "--tags", "x"], "no option --tags"),
        (["--grpc-port", "1", "controller"], "`helixpy` has no option --grpc-port"),
        (["controllr"], "no command 'controllr'"),
        (["workflow"], "needs a subcommand"),
        (["workflow", "start"], "needs 1 arguments"),
        (["workflow", "status", "a", "b"], "takes 1 arguments"),
        (["instance", "list", "--zk=a:1", "--grace", "1"], "no option --grace"),
    ],
)
def test_checker_rejects_wrong_command_lines(argv: list[str], complaint: str) -> None:
    problems = parse(argv).problems
    assert any(complaint in p for p in problems), problems


def test_checker_reads_shell_lines_and_values() -> None:
    env = {"TASKS": "m:r", "CAP": "4"}
    [cmd] = shell_commands(
        'exec helixpy participant --tasks "$TASKS" --instance "$(id-of x)" --capacity ${CAP}',
        env,
    )
    assert cmd.exec and cmd.substitutions == ["id-of x"]
    assert cmd.argv == [
        "helixpy",
        "participant",
        "--tasks",
        "m:r",
        "--instance",
        "$(id-of x)",
        "--capacity",
        "4",
    ]
    either = shell_commands("helixpy a || helixpy b --x 1; B=2 helixpy c", {})
    assert [c.argv for c in either] == [
        ["helixpy", "a"],
        ["helixpy", "b", "--x", "1"],
        ["helixpy", "c"],
    ]
    bad = parse(
        shell_commands("helixpy participant --tasks m:r --instance w --capacity $C", {"C": "x"})[
            0
        ].argv[1:]
    )
    assert any("--capacity x" in p for p in bad.problems)
    assert compose_interpolate("a ${X:-d1} ${Y-d2} ${Z} $$W $V") == "a d1 d2  $W "
    assert seconds("1m30s") == 90 and seconds("45s") == 45 and seconds("1min 5s") == 65
    assert seconds("45") == 45


def test_checker_knows_dockerignore_semantics() -> None:
    patterns = ["*", "!helixpy", "!deploy/docker/x", "**/__pycache__"]
    assert dockerignored(".venv/bin/python", patterns)
    assert dockerignored("deploy/Dockerfile", patterns)
    assert not dockerignored("helixpy/cli/__init__.py", patterns)
    assert dockerignored("helixpy/cli/__pycache__/x.pyc", patterns)
    assert not dockerignored("deploy/docker/x", patterns)


# --- the Dockerfile ------------------------------------------------------------------------


def test_dockerfile_builds_a_non_root_helixpy_image_from_the_slim_base() -> None:
    image = Dockerfile.read(DOCKERFILE)
    bases = image.base_images()
    assert bases and all(b == BASE_IMAGE or b in {"build"} for b in bases), bases
    assert bases[-1] == BASE_IMAGE
    user = image.last("USER")
    assert user is not None and user.split(":")[0] not in ("root", "0")
    assert image.entrypoint() == ["helixpy"]
    runs = " ".join(rest for k, rest in image.instructions if k == "RUN")
    assert re.search(r"pip install (-\S+ \S+ )*\.(\s|$)", runs), "from the repo: pip install ."
    assert {METRICS_PORT, GRPC_PORT} <= image.exposed()


def test_dockerfile_copies_files_that_exist_and_are_in_the_build_context() -> None:
    image = Dockerfile.read(DOCKERFILE)
    patterns = dockerignore_patterns()
    copies = image.copies()
    assert copies
    for sources, _dest in copies:
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
            assert not dockerignored(source, patterns), f"COPY {source}: left out by dockerignore"
    for heavy in (".venv/bin/python", ".git/HEAD", "tests/unit/test_deploy.py"):
        assert dockerignored(heavy, patterns), f"{heavy} is sent to the builder"


def test_dockerfile_command_lines_exist_in_the_cli() -> None:
    image = Dockerfile.read(DOCKERFILE)
    lines, problems, _ = helixpy_lines(image.entrypoint() + image.cmd(), {}, "Dockerfile CMD")
    check = image.healthcheck()
    assert check is not None, "the Dockerfile has no HEALTHCHECK"
    health, more, _ = helixpy_lines(check, {}, "Dockerfile HEALTHCHECK")
    assert len(lines) == 1 and health
    problems += more + [p for line in lines + health for p in line.problems]
    assert problems == []
    assert {h.health_of for h in health} == set(DAEMONS)
    for h in health:
        assert h.value("--port") == str(METRICS_PORT), f"{h.argv}: not the metrics port"
        assert h.value("--host") in LOOPBACK | {None}
        assert int(h.value("--port") or 0) in image.exposed()


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


# --- Kubernetes -----------------------------------------------------------------------


def test_kustomization_names_files_that_exist_and_every_manifest() -> None:
    kust = kustomization()
    assert kust["kind"] == "Kustomization"
    named: set[str] = set(kust.get("resources") or [])
    for key in ("components", "crds", "patchesStrategicMerge"):
        named.update(kust.get(key) or [])
    for patch in kust.get("patches") or []:
        if "path" in patch:
            named.add(patch["path"])
    for generator in (kust.get("configMapGenerator") or []) + (kust.get("secretGenerator") or []):
        for entry in (generator.get("files") or []) + (generator.get("envs") or []):
            named.add(entry.split("=")[-1])
    for name in named:
        assert (K8S / name).is_file(), f"kustomization names missing {name}"
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert manifests <= named, f"not in the kustomization: {manifests - named}"
    for doc in k8s_documents():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), doc
        assert doc["metadata"].get("name"), doc
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in k8s_documents())
    assert ("ConfigMap", "helixpy") in kinds and ("Secret", "helixpy") in kinds, kinds


def test_k8s_images_are_helixpy_and_no_zookeeper_is_deployed() -> None:
    images = {item["name"] for item in kustomization().get("images") or []}
    for container in k8s_containers():
        image = container.spec["image"].split(":")[0]
        assert "zookeeper" not in image
        assert image in images, f"{container.workload}: image {image} not set by kustomization"


def test_k8s_command_lines_and_probes_exist_in_the_cli() -> None:
    problems = []
    roles = []
    for container in k8s_containers():
        for line in container.main:
            problems += [f"{line.where}: {p}" for p in line.problems]
            roles.append(line.role)
        for kind in ("livenessProbe", "readinessProbe"):
            assert kind in container.probes, f"{container.workload}: no {kind}"
        for probe in container.probes.values():
            if isinstance(probe, Parsed):
                problems += [f"{probe.where}: {p}" for p in probe.problems]
        for arg in container.spec.get("args") or []:
            for name in _K8S_VAR.findall(str(arg)):
                if name not in container.env:
                    problems.append(f"{container.workload}: $({name}) is not in its env")
    assert problems == []
    assert sorted(r for r in roles if r) == ["controller", "participant"], roles


def test_k8s_probes_and_ports_match_the_daemon_options() -> None:
    services = k8s_named("Service")
    for container in k8s_containers():
        [daemon] = container.main
        assert daemon.role is not None
        port = daemon.value("--metrics-port")
        assert port is not None, f"{container.workload}: give --metrics-port"
        ports = {p.get("name"): p["containerPort"] for p in container.spec.get("ports") or []}
        assert str(ports.get("metrics")) == port, f"{container.workload}: {ports} vs {port}"
        for kind, probe in container.probes.items():
            where = f"{container.workload} {kind}"
            if isinstance(probe, Parsed):
                assert probe.health_of == daemon.role, f"{where}: {probe.argv}"
                assert probe.value("--port") == port, f"{where}: not --metrics-port {port}"
                assert probe.value("--host") in LOOPBACK | {None}, where
                assert daemon.value("--metrics-host") in SERVES_LOOPBACK, where
            else:
                target = probe["httpGet"]["port"]
                assert str(ports.get(target, target)) == port, where
        if daemon.role == "controller":
            grpc = daemon.value("--grpc-port")
            assert grpc is not None and str(ports.get("grpc")) == grpc
            host = daemon.value("--grpc-host") or ""
            [var] = _K8S_VAR.findall(host) or [host]
            source = container.sources.get(var, {})
            assert source.get("fieldRef", {}).get("fieldPath") == "status.podIP", (
                f"--grpc-host {host}: the leader publishes it; bind the pod IP"
            )
            labels = container.pod.get("labels") or {}
            mine = [
                s
                for s in services.values()
                if s["spec"]["selector"].items() <= _template_labels(container.workload).items()
            ]
            assert mine, f"no Service selects {container.workload} {labels}"
            for svc in mine:
                svc_ports = svc["spec"]["ports"]
                assert any(
                    str(p["port"]) == grpc
                    and str(ports.get(p.get("targetPort"), p.get("targetPort", p["port"]))) == grpc
                    for p in svc_ports
                ), f"Service {svc['metadata']['name']}: {svc_ports} vs --grpc-port {grpc}"


def _template_labels(workload: str) -> dict[str, str]:
    for doc in k8s_documents():
        if doc["metadata"]["name"] == workload and "template" in doc.get("spec", {}):
            selector = doc["spec"]["selector"]["matchLabels"]
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= labels.items(), f"{workload}: selector vs labels"
            return dict(labels)
    raise AssertionError(workload)


def test_k8s_workloads_replicas_ids_tags_capacity_and_grace() -> None:
    workloads = {d["metadata"]["name"]: d for d in k8s_documents() if d["kind"] == "Deployment"}
    for container in k8s_containers():
        [daemon] = container.main
        doc = workloads[container.workload]
        if daemon.role == "controller":
            assert doc["spec"]["replicas"] == 2
            continue
        instance = daemon.value("--instance") or ""
        [var] = _K8S_VAR.findall(instance) or [""]
        assert container.sources.get(var, {}).get("fieldRef", {}).get("fieldPath") == (
            "metadata.name"
        ), f"--instance {instance}: the pod name, from the downward API"
        args = [str(a) for a in container.spec.get("args") or []]
        for option in ("--tags", "--capacity", "--tasks"):
            assert option in args, f"{container.workload}: give {option}"
            value = args[args.index(option) + 1]
            assert _K8S_VAR.fullmatch(value), f"{option} {value}: from the environment"
        grace = float(daemon.value("--grace") or 0)
        stop = float(container.pod.get("terminationGracePeriodSeconds", 30))
        assert stop > grace, f"terminationGracePeriodSeconds {stop} <= --grace {grace}"
        user = container.pod.get("securityContext", {})
        assert user.get("runAsNonRoot") is True


def test_k8s_configmap_and_secret_are_what_the_pods_consume() -> None:
    configmaps = k8s_named("ConfigMap")
    secrets = k8s_named("Secret")
    known = global_envvars()
    assert {"HELIXPY_ZK", "HELIXPY_CLUSTER"} <= set(configmaps["helixpy"]["data"])
    assert {"zk-auth", "token"} <= secret_keys(secrets["helixpy"])
    for cm in configmaps.values():
        for key in cm.get("data") or {}:
            assert key in known, f"ConfigMap {cm['metadata']['name']}: the CLI reads no {key}"
        assert envvar_problems(cm.get("data") or {}, cm["metadata"]["name"]) == []
    for container in k8s_containers():
        where = container.workload
        for ref in container.spec.get("envFrom") or []:
            name = (ref.get("configMapRef") or ref.get("secretRef") or {}).get("name")
            assert name in configmaps or name in secrets, f"{where}: envFrom {name}"
        for var, source in container.sources.items():
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                assert ref["key"] in secret_keys(secrets[ref["name"]]), f"{where}: {var}"
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in configmaps[ref["name"]]["data"], f"{where}: {var}"
            if var.startswith("HELIXPY_"):
                args = " ".join(map(str, container.spec.get("args") or []))
                assert var in known or f"$({var})" in args, f"{where}: nothing reads {var}"
        auth = container.sources.get("HELIXPY_ZK_AUTH", {}).get("secretKeyRef", {})
        assert auth.get("name") in secrets, f"{where}: HELIXPY_ZK_AUTH from the Secret"
        [daemon] = container.main
        if daemon.role == "controller":
            token = container.sources.get("HELIXPY_TOKEN", {}).get("secretKeyRef", {})
            assert token.get("name") in secrets, f"{where}: HELIXPY_TOKEN from the Secret"


def test_k8s_tls_paths_are_files_of_a_mounted_secret() -> None:
    secrets = k8s_named("Secret")
    seen = 0
    for container in k8s_containers():
        volumes = {v["name"]: v for v in container.pod.get("volumes") or []}
        files: set[str] = set()
        for mount in container.spec.get("volumeMounts") or []:
            volume = volumes[mount["name"]]
            if "secret" not in volume:
                continue
            secret = volume["secret"]
            keys = secret_keys(secrets[secret["secretName"]])
            items = secret.get("items") or [{"key": k, "path": k} for k in keys]
            for item in items:
                assert item["key"] in keys, f"{container.workload}: no key {item['key']}"
                files.add(f"{mount['mountPath'].rstrip('/')}/{item['path']}")
        for daemon in container.main:
            for option in ("--tls-cert", "--tls-key", "--tls-client-ca"):
                value = daemon.options.get(option)
                if value is not None:
                    assert value in files, f"{container.workload} {option} {value}: {files}"
                    seen += 1
    assert seen >= 2, "the controllers serve TLS from the Secret"


def test_kubectl_renders_the_base() -> None:
    kubectl = shutil.which("kubectl") or shutil.which("kustomize")
    if kubectl is None:
        pytest.skip("neither kubectl nor kustomize is installed: the render is not checked")
    argv = (
        [kubectl, "kustomize", str(K8S)]
        if kubectl.endswith("kubectl")
        else [kubectl, "build", str(K8S)]
    )
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    rendered = sorted(
        (d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(out.stdout) if d
    )
    assert rendered == sorted((d["kind"], d["metadata"]["name"]) for d in k8s_documents())


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


# --- helixpy-instance-id (installed in the image) ------------------------------------------


def _instance_id_module() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("helixpy_instance_id", str(INSTANCE_ID_SCRIPT))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _ptr_reply(query: bytes, name: str) -> bytes:
    ident = struct.unpack(">H", query[:2])[0]
    header = struct.pack(">HHHHHH", ident, 0x8180, 1, 1, 0, 0)
    question = query[12:]
    rdata = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 12, 1, 600, len(rdata)) + rdata
    return header + question + answer


@pytest.fixture
def fake_docker_dns() -> Iterator[int]:
    """A UDP DNS server on 127.0.0.1 answering every PTR query like Docker's."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5.0)

    def serve() -> None:
        try:
            query, peer = sock.recvfrom(512)
            sock.sendto(_ptr_reply(query, "helixpy-participant-2.helixpy_default"), peer)
        except OSError:
            pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()
        thread.join(5.0)


def test_instance_id_is_the_replica_name_docker_dns_gives(fake_docker_dns: int) -> None:
    mod = _instance_id_module()
    name = mod.docker_name("172.18.0.5", server="127.0.0.1", port=fake_docker_dns, timeout=5.0)
    assert name == "helixpy-participant-2"


def test_instance_id_prefers_helixpy_instance_and_falls_back_to_the_hostname(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    mod = _instance_id_module()
    monkeypatch.setenv("HELIXPY_INSTANCE", "w7")
    assert mod.instance_id() == "w7"
    monkeypatch.delenv("HELIXPY_INSTANCE")
    monkeypatch.setattr(mod, "docker_name", lambda ip: None)
    assert mod.instance_id() == socket.gethostname()
    query = mod.ptr_query("10.0.0.1", 7)
    assert b"\x011\x010\x010\x0210\x07in-addr\x04arpa\x00" in query
    assert mod.parse_ptr_answer(_ptr_reply(query, "a.b"), 8) is None  # not our query
    assert mod.parse_ptr_answer(_ptr_reply(query, "a.b"), 7) == "a.b"
