"""Paths and constants of deploy/, and the checker of ``helixpy ...`` command lines.

A command line is parsed against the real click command tree of ``helixpy.cli.main``
(see the package docstring); shell lines are split into their simple commands first.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click

from helixpy.cli import main

ROOT = Path(__file__).resolve().parents[3]
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


# --- durations ------------------------------------------------------------------------

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def seconds(text: str | int | float) -> float:
    """``45s``, ``1m30s`` (compose), ``45``, ``1min 30s`` (systemd) in seconds."""
    if isinstance(text, int | float):
        return float(text)
    parts = re.findall(r"([0-9.]+)\s*([a-z]*)", text.strip())
    assert parts, f"not a duration: {text!r}"
    return sum(float(n) * _UNITS[unit or "s"] for n, unit in parts)


# --- the helixpy command lines of a process --------------------------------------------


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
