"""The deployment image builds and runs.

``make test`` builds it (``scripts/with-docker.sh`` runs ``scripts/helixpy-image.sh``: the
unchanged ``deploy/Dockerfile`` on a locally made base, no registry needed) as
``helixpy:local``; this test runs that image. Where it was not built but a base image
(``python:3.11-slim``, or ``HELIXPY_BASE_IMAGE``) is present, the test builds one itself.
Without an engine it skips and says why; ``tests/unit/deploy/`` still checks every command
line, flag, port and file the image and its deployments use.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = os.environ.get("HELIXPY_BASE_IMAGE", "python:3.11-slim")
#: what scripts/helixpy-image.sh builds from deploy/Dockerfile
BUILT = "helixpy:local"


def _problem() -> str | None:
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError as exc:
        return f"the docker package is not installed ({exc})"
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # no engine: the reason is the answer
        return f"no container engine: {exc}"
    for image in (BUILT, BASE):
        try:
            client.images.get(image)
            return None
        except Exception:  # not built, not pulled (we pull nothing): try the next
            continue
    return f"neither {BUILT} (scripts/helixpy-image.sh) nor the base image {BASE} is present"


def _built() -> bool:
    return (
        subprocess.run(
            ["docker", "image", "inspect", BUILT], capture_output=True, timeout=60, check=False
        ).returncode
        == 0
    )


problem = _problem()
pytestmark = [pytest.mark.cluster, pytest.mark.skipif(problem is not None, reason=str(problem))]


def _build(tag: str) -> None:
    args = ["-f", "deploy/Dockerfile", "--build-arg", f"PYTHON_IMAGE={BASE}", "-t", tag]
    build = subprocess.run(
        ["docker", "build", *args, "."],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]


def test_the_image_builds_and_runs_helixpy() -> None:
    # Given the image make test built (else one built here from a present base image)
    prebuilt = _built()
    tag = BUILT if prebuilt else f"helixpy-test:{uuid.uuid4().hex[:8]}"
    try:
        if not prebuilt:
            _build(tag)
        # When its entry point runs, Then it is helixpy, as a user other than root
        run = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", tag, "--version"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0 and run.stdout.startswith("helixpy, version"), run.stderr
        user = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert user.returncode == 0 and user.stdout.strip() not in ("", "0"), user.stderr
    finally:
        if not prebuilt:  # (the built one is the compose test's too)
            subprocess.run(
                ["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120, check=False
            )
