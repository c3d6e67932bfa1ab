"""scripts/repeat-tests: counts each test's failures over N runs of pytest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "repeat-tests"


def test_it_counts_a_test_that_fails_in_some_runs_and_exits_1(tmp_path: Path) -> None:
    # Given a test file with a steady test and one that fails on every other run
    (tmp_path / "test_sample.py").write_text(
        "from pathlib import Path\n"
        "def test_steady():\n    assert True\n"
        "def test_flaky():\n"
        f"    p = Path({str(tmp_path / 'count')!r})\n"
        "    n = int(p.read_text()) if p.exists() else 0\n"
        "    p.write_text(str(n + 1))\n"
        "    assert n % 2 == 1, 'fails on even runs'\n"
    )
    # When it is run 3 times
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "3", str(tmp_path / "test_sample.py")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    # Then the flaky test is named with 2 failures of 3, the steady one not at all
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2/3  test_sample::test_flaky  -- AssertionError: fails on even runs" in done.stdout
    assert "test_steady" not in done.stdout.split("repeat-tests: 3 runs")[1]


def test_a_bad_count_is_refused_with_the_rule() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "many"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "N (the first argument) must be a whole number >= 1" in done.stderr
