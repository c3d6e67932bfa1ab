"""The deployment image builds and runs, where its base image is at hand.

The issue's condition, taken literally: only when a container engine answers and the
base image (``python:3.11-slim``, or ``HELIXPY_BASE_IMAGE``) is already present, since the
build pulls nothing else but packages. On machines without them (no registry, as in our
CI) the test skips and says why; ``tests/unit/deploy/`` still checks every command line,
flag, port and file the image and its deployments use.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = os.environ.get("HELIXPY_BASE_IMAGE", "python:3.11-slim")


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
    try:
        client.images.get(BASE)
    except Exception as exc:  # not pulled, and we pull nothing
        return f"base image {BASE} is not present: {exc}"
    return None


problem = _problem()
pytestmark = [pytest.mark.cluster, pytest.mark.skipif(problem is not None, reason=str(problem))]


def test_the_image_builds_and_runs_helixpy() -> None:
    tag = f"helixpy-test:{uuid.uuid4().hex[:8]}"
    try:
        build = subprocess.run(
            [
                "docker",
                "build",
                "-f",
                "deploy/Dockerfile",
                "--build-arg",
                f"PYTHON_IMAGE={BASE}",
                "-t",
                tag,
                ".",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
        run = subprocess.run(
            ["docker", "run", "--rm", tag, "--version"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert run.returncode == 0 and run.stdout.startswith("helixpy, version"), run.stderr
        user = subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert user.stdout.strip() != "0"  # not root
    finally:
        subprocess.run(
            ["docker", "image", "rm", "-f", tag], capture_output=True, timeout=120, check=False
        )
