"""Options of the chaos run: ``make test`` runs a bounded one; longer runs by option."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("chaos")
    group.addoption(
        "--chaos-workflows",
        type=int,
        default=60,
        help="workflows of 10 tasks in the chaos run (the issue's long run: 200)",
    )
    group.addoption("--chaos-seed", type=int, default=11, help="random seed of the faults")
