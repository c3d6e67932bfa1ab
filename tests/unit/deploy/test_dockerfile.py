"""deploy/Dockerfile: base image, user, copied files, CMD and HEALTHCHECK."""

from __future__ import annotations

import re

from tests.unit.deploy.cli_lines import (
    BASE_IMAGE,
    DAEMONS,
    DOCKERFILE,
    GRPC_PORT,
    LOOPBACK,
    METRICS_PORT,
    ROOT,
    helixpy_lines,
)
from tests.unit.deploy.dockerfile import Dockerfile, dockerignore_patterns, dockerignored

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
    for heavy in (".venv/bin/python", ".git/HEAD", "tests/unit/deploy/test_dockerfile.py"):
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
