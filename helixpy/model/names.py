"""Names of workflows, jobs, tasks and instances.

Names become ZooKeeper path segments, so they are restricted to a portable alphabet.
"""

from __future__ import annotations

import re

from helixpy.errors import InvalidConfig

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
NAME_RULE = "must be 1-128 characters of [A-Za-z0-9._-], and not '.' or '..'"


def is_valid_name(name: object) -> bool:
    """Whether ``name`` may name a workflow, job, task or instance."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None and name not in (".", "..")


def check_name(field: str, name: object) -> str:
    """Return ``name`` if valid, else raise ``InvalidConfig`` naming ``field``."""
    if not is_valid_name(name):
        raise InvalidConfig(field, f"{NAME_RULE} (got {name!r})")
    assert isinstance(name, str)
    return name
