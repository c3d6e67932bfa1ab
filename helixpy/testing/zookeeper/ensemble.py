"""Ensembles: an ``n``-server quorum (:class:`Ensemble`, :func:`local_ensemble`)."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator

from helixpy.testing.zookeeper.classpath import find_zookeeper_classpath
from helixpy.testing.zookeeper.errors import ZooKeeperNotServing, ZooKeeperStartError
from helixpy.testing.zookeeper.jvm import (
    _DEFAULT_START_TIMEOUT,
    _DEFAULT_STOP_TIMEOUT,
    _POLL_INTERVAL,
)
from helixpy.testing.zookeeper.local import (
    _PORT_ATTEMPTS,
    _bind_conflict,
    _print_logs_to_stderr,
    _should_dump_logs,
)
from helixpy.testing.zookeeper.net import _free_ports
from helixpy.testing.zookeeper.server import QuorumMember, ZooKeeperServer

# One logger for the whole package, named as when it was a single module, so that
# logging configuration and log records are unchanged by the split.
log = logging.getLogger("helixpy.testing.zookeeper")


class Ensemble:
    """An ``n``-server ZooKeeper quorum on loopback ports, each server in its own directory.

    Servers are addressed by index ``0..n-1`` (their ``myid`` is ``index + 1``).
    """

    def __init__(
        self,
        n: int = 3,
        tick_time: float = 0.5,
        *,
        force_sync: bool = True,
        classpath: str | None = None,
        start_timeout: float = _DEFAULT_START_TIMEOUT,
        backend: str = "process",
    ) -> None:
        """Describe the ensemble and pick its ports; :meth:`start_all` spawns it.

        ``backend="container"`` runs each server in a container (testcontainers, image
        ``HELIXPY_ZK_IMAGE``) instead of a local JVM process.
        """
        if n < 1:
            raise ValueError(f"an ensemble needs at least one server, got n={n}")
        if backend not in ("process", "container"):
            raise ValueError(f"backend must be 'process' or 'container', got {backend!r}")
        if backend == "container":
            from helixpy.testing.zookeeper.container import ContainerServer

            server_class: type[ZooKeeperServer] = ContainerServer
            cp = classpath or "(in the image)"
        else:
            server_class = ZooKeeperServer
            cp = classpath if classpath is not None else find_zookeeper_classpath()
        ports = _free_ports(3 * n)
        members = [
            QuorumMember(
                server_id=i + 1,
                client_port=ports[3 * i],
                peer_port=ports[3 * i + 1],
                election_port=ports[3 * i + 2],
            )
            for i in range(n)
        ]
        self.start_timeout = start_timeout
        self.servers: list[ZooKeeperServer] = [
            server_class(
                tick_time=tick_time,
                server_id=member.server_id,
                quorum=members,
                classpath=cp,
                force_sync=force_sync,
                start_timeout=start_timeout,
                name=f"zookeeper{member.server_id}",
            )
            for member in members
        ]

    def __repr__(self) -> str:
        return f"<Ensemble {self.connection_string}>"

    @property
    def connection_string(self) -> str:
        """All servers' ``host:port``, comma-joined, as ZooKeeper clients expect."""
        return ",".join(server.connection_string for server in self.servers)

    def start_all(self, timeout: float | None = None) -> None:
        """Launch every server, then wait (one shared deadline) until all serve.

        All must be launched before any wait: a peer cannot serve until a majority is up.
        On failure every server is killed.
        """
        bound = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        try:
            for server in self.servers:
                server.launch()
            for server in self.servers:
                server.wait_until_serving(max(0.0, deadline - time.monotonic()))
        except BaseException:
            for server in self.servers:
                server.kill()
            raise

    def kill(self, i: int) -> None:
        """SIGKILL server ``i`` (its data directory is kept for :meth:`start`)."""
        self.servers[i].kill()

    def start(self, i: int, timeout: float | None = None) -> None:
        """Restart server ``i`` with its old data and config; wait until it serves again.

        Serving implies it has rejoined the quorum and synced with the leader.
        """
        self.servers[i].start(timeout)

    def leader(self, timeout: float = _DEFAULT_START_TIMEOUT) -> int:
        """Index of the current leader, waiting (bounded) while an election is under way.

        Raises:
            TimeoutError: no running server reported ``Mode: leader`` within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            seen: list[str] = []
            now = time.monotonic()
            for i, server in enumerate(self.servers):
                if not server.running:
                    seen.append(f"{i}: not running")
                    continue
                try:
                    mode = server.mode(timeout=min(1.0, max(_POLL_INTERVAL, deadline - now)))
                except (OSError, ZooKeeperNotServing) as exc:
                    # A peer mid-election refuses or says "not serving"; look again below.
                    seen.append(f"{i}: {type(exc).__name__}: {exc}")
                    continue
                if mode == "leader":
                    return i
                seen.append(f"{i}: {mode}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no leader after {timeout}s; last seen: {'; '.join(seen)}")
            time.sleep(min(_POLL_INTERVAL, remaining))

    def stop(self, timeout: float = _DEFAULT_STOP_TIMEOUT) -> None:
        """Stop every running server (SIGTERM, then SIGKILL after ``timeout``)."""
        # SIGTERM all first so they shut down in parallel rather than one bound after another.
        for server in self.servers:
            server.terminate()
        for server in self.servers:
            server.stop(timeout)

    def close(self, timeout: float = _DEFAULT_STOP_TIMEOUT) -> None:
        """Stop every server and delete their temporary directories."""
        self.stop(timeout)
        for server in self.servers:
            server.close(timeout)


@contextlib.contextmanager
def local_ensemble(
    n: int = 3,
    tick_time: float = 0.5,
    *,
    force_sync: bool = True,
    classpath: str | None = None,
    start_timeout: float = _DEFAULT_START_TIMEOUT,
    backend: str = "process",
) -> Iterator[Ensemble]:
    """Run an ``n``-server quorum for the duration of a ``with`` block.

    Yields the started :class:`Ensemble` (every server serving). On exit all servers are
    stopped and their directories removed; if the body raises, every server's log tail is
    printed to stderr first.
    """
    ensemble: Ensemble | None = None
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        candidate = Ensemble(
            n,
            tick_time,
            force_sync=force_sync,
            classpath=classpath,
            start_timeout=start_timeout,
            backend=backend,
        )
        try:
            candidate.start_all()
            ensemble = candidate
            break
        except BaseException as exc:
            # Whatever stopped the start (even Ctrl-C), leave no process or directory behind.
            conflict = isinstance(exc, ZooKeeperStartError) and any(
                _bind_conflict(s.log_text()) for s in candidate.servers
            )
            candidate.close()
            if not conflict or attempt == _PORT_ATTEMPTS:
                raise
            log.warning("an ensemble port was taken before ZooKeeper bound it; retrying")
    if ensemble is None:
        raise AssertionError("unreachable: the loop breaks or raises")
    try:
        yield ensemble
    except BaseException as exc:
        if _should_dump_logs(exc):
            _print_logs_to_stderr(ensemble.servers)
        raise
    finally:
        ensemble.close()
