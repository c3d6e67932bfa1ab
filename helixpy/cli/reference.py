"""The ``helixpy`` command reference in Markdown, generated from the click command tree.

``python -m helixpy.cli.reference > docs/cli.md`` regenerates ``docs/cli.md``;
``tests/unit/test_cli_reference.py`` fails when the file and :func:`render` differ.

The output is deterministic: subcommands in the order the group lists them (click sorts
them by name), parameters in declaration order, and no line wrapping, so nothing depends on
the terminal's width. Help text paragraphs are joined onto one line each (Markdown wraps
them when shown); a paragraph marked with click's ``\\b`` is kept line by line.
"""

from __future__ import annotations

import enum
import inspect
import sys
from collections.abc import Iterator

import click

#: The program's name, as installed (``[project.scripts]``): the group itself is ``main``.
PROGRAM = "helixpy"
#: What regenerates the page, run from the repository's root in its virtual environment.
REGENERATE = "python -m helixpy.cli.reference > docs/cli.md"


def render(group: click.Group | None = None) -> str:
    """The Markdown reference of ``group`` (default: the ``helixpy`` group) and every
    command under it: per command path its help, usage line and parameters."""
    if group is None:
        from helixpy.cli import main

        group = main
    root = click.Context(group, info_name=PROGRAM)
    contexts = list(_walk(root))
    out: list[str] = [
        f"# `{PROGRAM}` command reference",
        "",
        f"Generated from the click commands in `helixpy/cli/` by `{REGENERATE}` "
        "(in the virtual environment: `.venv/bin/python`); do not edit it by hand.",
        "",
        f"Options of `{PROGRAM}` itself go before the command name "
        f"(`{PROGRAM} --cluster prod workflow list`); every command also takes `--help`. "
        "An empty Default cell means the option has no default (unset).",
        "",
        "## Commands",
        "",
    ]
    for ctx in contexts:
        depth = ctx.command_path.count(" ")
        summary = _summary(ctx.command)
        line = f"{'  ' * depth}- [`{ctx.command_path}`](#{_anchor(ctx.command_path)})"
        out.append(f"{line}: {summary}" if summary else line)
    for ctx in contexts:
        out += ["", *_section(ctx)]
    return "\n".join(out) + "\n"


def command_paths(group: click.Group | None = None) -> list[str]:
    """Every command path in the tree, the root included (``helixpy``, ``helixpy zk``,
    ``helixpy zk start``, ...), in the order :func:`render` shows them."""
    if group is None:
        from helixpy.cli import main

        group = main
    return [ctx.command_path for ctx in _walk(click.Context(group, info_name=PROGRAM))]


def _walk(ctx: click.Context) -> Iterator[click.Context]:
    """``ctx`` and the contexts of every visible command below it, depth first."""
    yield ctx
    command = ctx.command
    if not isinstance(command, click.Group):
        return
    for name in command.list_commands(ctx):
        sub = command.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        yield from _walk(click.Context(sub, info_name=name, parent=ctx))


def _section(ctx: click.Context) -> list[str]:
    command = ctx.command
    out = [f"## `{ctx.command_path}`", ""]
    if command.deprecated:
        out += ["**Deprecated.**", ""]
    for paragraph in _paragraphs(command.help or ""):
        out += [paragraph, ""]
    usage = " ".join([ctx.command_path, *command.collect_usage_pieces(ctx)])
    out += ["```text", f"Usage: {usage}", "```"]
    params = [p for p in command.params if not getattr(p, "hidden", False)]
    if params:
        out += [
            "",
            "| Name | Type | Default | Env | Help |",
            "|---|---|---|---|---|",
        ]
        out += [_row(ctx, p) for p in params]
    if isinstance(command, click.Group):
        names = [
            name
            for name in command.list_commands(ctx)
            if (sub := command.get_command(ctx, name)) is not None and not sub.hidden
        ]
        links = ", ".join(f"[`{name}`](#{_anchor(f'{ctx.command_path} {name}')})" for name in names)
        out += ["", f"Commands: {links}."]
    return out


def _row(ctx: click.Context, param: click.Parameter) -> str:
    if isinstance(param, click.Option):
        name = ", ".join(f"`{opt}`" for opt in [*param.opts, *param.secondary_opts])
        help_text = " ".join((param.help or "").split())
    else:
        name = f"`{param.human_readable_name}`" + ("..." if param.nargs == -1 else "")
        help_text = "positional argument"
    cells = [name, _type(param), _default(ctx, param), _envvar(param), help_text]
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _type(param: click.Parameter) -> str:
    if isinstance(param, click.Option) and param.is_flag:
        text = "flag"
    elif isinstance(param, click.Option) and param.metavar:
        text = f"`{param.metavar}`"
    elif isinstance(param.type, click.Choice):
        text = "one of " + ", ".join(f"`{c}`" for c in param.type.choices)
    elif isinstance(param.type, click.IntRange | click.FloatRange):
        text = _range(param.type)
    else:
        text = param.type.name
    if param.multiple:
        text += ", repeatable"
    return text


def _range(kind: click.IntRange | click.FloatRange) -> str:
    """``integer, 0<=x<=65535`` (click's own notation for a range)."""
    base = "integer" if isinstance(kind, click.IntRange) else "float"
    low = "" if kind.min is None else f"{kind.min}{'<' if kind.min_open else '<='}"
    high = "" if kind.max is None else f"{'<' if kind.max_open else '<='}{kind.max}"
    return f"{base}, `{low}x{high}`" + (", clamped" if kind.clamp else "")


def _default(ctx: click.Context, param: click.Parameter) -> str:
    if param.required:
        return "required"
    value = param.get_default(ctx, call=False)
    if callable(value):
        return "(computed)"
    if _unset(value):
        return ""
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list | tuple):
        return ", ".join(f"`{v}`" for v in value)
    if value == "":
        return '`""`'
    return f"`{value}`"


def _unset(value: object) -> bool:
    """No default: None, an empty sequence, or click's own "unset" sentinel (an enum in
    click, absent from older versions)."""
    if value is None or (isinstance(value, list | tuple) and not value):
        return True
    return isinstance(value, enum.Enum) and type(value).__module__.startswith("click")


def _envvar(param: click.Parameter) -> str:
    envvar = param.envvar
    if not envvar:
        return ""
    names = [envvar] if isinstance(envvar, str) else list(envvar)
    return ", ".join(f"`{n}`" for n in names)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _paragraphs(help_text: str) -> list[str]:
    """Help text as Markdown paragraphs: everything after click's ``\\f`` dropped, each
    paragraph on one line; a ``\\b`` paragraph kept as lines, in a text block."""
    text = inspect.cleandoc(help_text).partition("\f")[0]
    out = []
    for block in text.split("\n\n"):
        lines = block.strip("\n").splitlines()
        if not lines:
            continue
        if lines[0].strip() == "\b":
            out.append("\n".join(["```text", *lines[1:], "```"]))
        else:
            out.append(" ".join(" ".join(lines).split()))
    return out


def _summary(command: click.Command) -> str:
    """The first sentence of a command's help (or its ``short_help``), unwrapped."""
    if command.short_help:
        return " ".join(command.short_help.split())
    paragraphs = _paragraphs(command.help or "")
    if not paragraphs or paragraphs[0].startswith("```"):
        return ""
    first = paragraphs[0]
    end = first.find(". ")
    return first if end < 0 else first[: end + 1]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading made of a command path (letters, digits, ``-``)."""
    return "-".join(heading.lower().split())


if __name__ == "__main__":
    sys.stdout.write(render())
