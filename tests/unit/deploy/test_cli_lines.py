"""The checker itself, on command lines that are wrong on purpose."""

from __future__ import annotations

import pytest

from tests.unit.deploy.cli_lines import parse, seconds, shell_commands
from tests.unit.deploy.compose import compose_interpolate
from tests.unit.deploy.dockerfile import dockerignored

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
