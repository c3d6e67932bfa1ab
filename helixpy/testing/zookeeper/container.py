"""ZooKeeper servers as containers, through testcontainers.

:class:`ContainerServer` is a :class:`~helixpy.testing.zookeeper.server.ZooKeeperServer`
whose process is a container of ``HELIXPY_ZK_IMAGE`` (default: the official
``zookeeper:3.8``): the same generated ``zoo.cfg`` is mounted at ``/conf/zoo.cfg`` (where the
official image looks for it) and the server's directory at its own path, so data, ``myid``
and ports are those of a process-backed server. Containers use host networking on loopback
ports. Faults are the container's: ``kill`` is ``docker kill``, and :meth:`pause` /
:meth:`unpause` freeze it. Where no registry is reachable, ``scripts/zk-image.sh`` builds an
image from the local ZooKeeper and JRE (``make test`` does, and sets the variable).
"""

from __future__ import annotations

import os
import subprocess
from typing import Any

from helixpy.testing.zookeeper.server import ZooKeeperServer

IMAGE_ENV = "HELIXPY_ZK_IMAGE"
DEFAULT_IMAGE = "zookeeper:3.8"


def container_image() -> str:
    """The image container-backed servers run."""
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def container_engine_problem() -> str | None:
    """Why container-backed servers cannot run here, or None when they can."""
    try:
        import docker  # type: ignore[import-untyped]
        import testcontainers  # noqa: F401
    except ImportError as exc:
        return f"testcontainers is not installed ({exc})"
    try:
        client = docker.from_env()
        client.ping()
        client.images.get(container_image())
    except Exception as exc:  # no daemon, no image: the reason is the answer
        return f"no usable container engine or image {container_image()!r}: {exc}"
    return None


class _ContainerProcess:
    """The container, seen through the ``subprocess.Popen`` calls the server makes."""

    def __init__(self, container: Any) -> None:
        self._container = container
        self.returncode: int | None = None

    @property
    def pid(self) -> int:
        self._container.reload()
        return int(self._container.attrs["State"]["Pid"])

    def poll(self) -> int | None:
        if self.returncode is None:
            self._container.reload()
            state = self._container.attrs["State"]
            if state["Status"] in ("exited", "dead"):
                self.returncode = int(state["ExitCode"])
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        try:
            result = self._container.wait(timeout=timeout)
        except Exception as exc:  # the SDK raises its HTTP client's timeout
            raise subprocess.TimeoutExpired("docker wait", timeout or 0) from exc
        self.returncode = int(result.get("StatusCode", -1))
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            self._container.kill(signal="SIGTERM")

    def kill(self) -> None:
        if self.poll() is None:
            self._container.kill()

    def pause(self) -> None:
        self._container.pause()

    def unpause(self) -> None:
        self._container.unpause()

    def remove(self) -> None:
        try:
            self._container.remove(force=True)
        except Exception as exc:  # already gone: nothing to remove
            del exc


class ContainerServer(ZooKeeperServer):
    """A ZooKeeper server running in a container (see the module docstring)."""

    def __init__(self, *, image: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.image = image or container_image()

    def launch(self) -> None:
        from testcontainers.core.container import DockerContainer

        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._write_files()
        self.log_path.touch()
        self._log_offset = self.log_path.stat().st_size
        work = str(self.work_dir)
        # The official image runs ZooKeeper as its own user: let it write our directory.
        for path in (self.work_dir, self.data_dir):
            os.chmod(path, 0o777)
        container = (
            DockerContainer(self.image)
            .with_volume_mapping(work, work, "rw")
            .with_volume_mapping(str(self.config_path), "/conf/zoo.cfg", "ro")
            .with_kwargs(network_mode="host")
        )
        container.start()
        self._proc = _ContainerProcess(container.get_wrapped_container())  # type: ignore[assignment]

    def pause(self) -> None:
        """Freeze the server (``docker pause``): it neither answers nor times sessions out."""
        assert isinstance(self._proc, _ContainerProcess)
        self._proc.pause()

    def unpause(self) -> None:
        assert isinstance(self._proc, _ContainerProcess)
        self._proc.unpause()

    def kill(self) -> None:
        """``docker kill``: a crash, as far as the ensemble can tell."""
        proc = self._proc
        if isinstance(proc, _ContainerProcess):
            proc.kill()
            proc.wait(30)
            self._save_logs(proc)
            proc.remove()

    def stop(self, timeout: float = 10.0) -> None:
        proc = self._proc
        if isinstance(proc, _ContainerProcess) and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
        if isinstance(proc, _ContainerProcess):
            self._save_logs(proc)
            proc.remove()

    def _save_logs(self, proc: _ContainerProcess) -> None:
        # The container's output, kept in the server's log file for failing tests.
        try:
            text = proc._container.logs().decode("utf-8", errors="replace")
        except Exception:
            return
        with self.log_path.open("a", encoding="utf-8") as out:
            out.write(text)
