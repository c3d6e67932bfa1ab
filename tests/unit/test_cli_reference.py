"""docs/cli.md is generated from the click commands (helixpy/cli/reference.py) and must
match them."""

from __future__ import annotations

import difflib
from pathlib import Path

import click
import pytest

from helixpy.cli import main
from helixpy.cli.reference import PROGRAM, command_paths, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
#: The exact command that regenerates the page, from the repository's root.
REGENERATE = ".venv/bin/python -m helixpy.cli.reference > docs/cli.md"


def _tree(group: click.Group, path: str) -> dict[str, click.Command]:
    """Every visible command under ``group`` by its path, read from click's own tables (not
    through the module under test)."""
    out: dict[str, click.Command] = {path: group}
    for name, command in group.commands.items():
        if command.hidden:
            continue
        if isinstance(command, click.Group):
            out.update(_tree(command, f"{path} {name}"))
        else:
            out[f"{path} {name}"] = command
    return out


def _sections(text: str) -> dict[str, str]:
    """Each ``## `path``` section's body by its command path."""
    out = {}
    for chunk in text.split("\n## `")[1:]:
        heading, _, body = chunk.partition("\n")
        out[heading.rstrip("`")] = body
    return out


def test_docs_cli_md_matches_the_commands() -> None:
    expected = render()
    actual = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
    if actual != expected:
        diff = list(
            difflib.unified_diff(
                actual.splitlines(),
                expected.splitlines(),
                "docs/cli.md",
                "render()",
                lineterm="",
                n=1,
            )
        )
        shown = "\n".join(diff[:60]) + ("\n..." if len(diff) > 60 else "")
        pytest.fail(
            "docs/cli.md is out of date with the click commands in helixpy/cli/. "
            f"Regenerate it from the repository's root with:\n\n    {REGENERATE}\n\n{shown}",
            pytrace=False,
        )


def test_every_command_has_a_section_listing_its_parameters() -> None:
    tree = _tree(main, PROGRAM)
    assert f"{PROGRAM} workflow start" in tree  # the walk reaches nested groups
    rendered = render()
    sections = _sections(rendered)
    assert sorted(sections) == sorted(tree)
    assert sorted(command_paths()) == sorted(tree)
    for path, command in tree.items():
        body = sections[path]
        assert f"Usage: {path} " in body, path
        assert f"[`{path}`](#" in rendered, f"{path} is missing from the command list"
        for param in command.params:
            names = param.opts if isinstance(param, click.Option) else [param.human_readable_name]
            for name in names:
                assert f"`{name}`" in body, f"{path}: {name} is not in its table"


def test_output_is_deterministic_and_ignores_the_terminal_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = render()
    monkeypatch.setenv("COLUMNS", "20")
    monkeypatch.setenv("LINES", "5")
    assert render() == first
    assert render(main) == first


def test_rendering_of_flags_env_vars_choices_and_help_paragraphs() -> None:
    @click.group()
    @click.option("--level", type=click.Choice(["a", "b"]), default="a", envvar="TOY_LEVEL")
    def toy() -> None:
        """A toy group.

        \b
        kept
          as lines
        """

    @toy.command("run")
    @click.argument("items", nargs=-1)
    @click.option("--dry/--no-dry", default=False, help="Do | nothing.")
    @click.option("--tag", "tags", multiple=True, metavar="K=V")
    def run(items: tuple[str, ...], dry: bool, tags: tuple[str, ...]) -> None:
        """Run the
        items.\f
        Not shown."""

    @toy.command("secret", hidden=True)
    def secret() -> None:
        """Never listed."""

    text = render(toy)
    sections = _sections(text)
    assert sorted(sections) == [PROGRAM, f"{PROGRAM} run"]
    assert "secret" not in text
    assert "| `--level` | one of `a`, `b` | `a` | `TOY_LEVEL` |  |" in sections[PROGRAM]
    assert "```text\nkept\n  as lines\n```" in sections[PROGRAM]
    run_section = sections[f"{PROGRAM} run"]
    assert "Run the items." in run_section
    assert "Not shown" not in run_section
    assert f"Usage: {PROGRAM} run [OPTIONS] [ITEMS]..." in run_section
    assert "| `--dry`, `--no-dry` | flag | `false` |  | Do \\| nothing. |" in run_section
    assert "| `--tag` | `K=V`, repeatable |  |  |  |" in run_section
    assert "| `ITEMS`... | text |  |  | positional argument |" in run_section
