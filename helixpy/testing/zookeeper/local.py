"""Servers scoped to a ``with`` block: :func:`local_zookeeper` and its helpers.

The helpers (retrying start-up on a port conflict, dumping logs when the body fails) are
shared with :func:`~helixpy.testing.zookeeper.ensemble.local_ensemble`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence

from helixpy.testing.zookeeper.errors import ZooKeeperStartError
from helixpy.testing.zookeeper.jvm import _DEFAULT_START_TIMEOUT
from helixpy.testing.zookeeper.server import _LOG_TAIL_LINES, ZooKeeperServer

# One logger for the whole package, named as when it was a single module, so that
# logging configuration and log records are unchanged by the split.
log = logging.getLogger("helixpy.testing.zookeeper")

_PORT_ATTEMPTS = 3


def _bind_conflict(log_text: str) -> bool:
    return "Address already in use" in log_text or "BindException" in log_text


def _print_logs_to_stderr(servers: Sequence[ZooKeeperServer]) -> None:
    for server in servers:
        print(
            f"----- {server.name} ({server.connection_string}) log, last {_LOG_TAIL_LINES}"
            f" lines -----\n{server.log_tail()}",
            file=sys.stderr,
        )


def _should_dump_logs(exc: BaseException) -> bool:
    # A Ctrl-C or generator close is not a failure of the code under test.
    return not isinstance(exc, KeyboardInterrupt | GeneratorExit)


@contextlib.contextmanager
def local_zookeeper(
    tick_time: float = 0.5,
    *,
    force_sync: bool = True,
    classpath: str | None = None,
    start_timeout: float = _DEFAULT_START_TIMEOUT,
    max_heap_mb: int | None = None,
) -> Iterator[str]:
    """Run a standalone ZooKeeper for the duration of a ``with`` block.

    Yields the connection string ``"127.0.0.1:PORT"``. The server gets a free loopback port
    and its own temporary directory; on exit it is stopped and the directory removed. If the
    body raises, the tail of the server log is printed to stderr first, so a failing test
    shows what ZooKeeper saw.

    Args:
        tick_time: ZooKeeper tick in seconds.
        force_sync: see :class:`ZooKeeperServer`.
        classpath: Java classpath; :func:`find_zookeeper_classpath` when omitted.
        start_timeout: bound on the wait for the server to serve.
        max_heap_mb: the server JVM's heap bound (see :class:`ZooKeeperServer`).
    """
    server = _start_retrying_ports(
        lambda: ZooKeeperServer(
            tick_time=tick_time,
            classpath=classpath,
            force_sync=force_sync,
            start_timeout=start_timeout,
            max_heap_mb=max_heap_mb,
        )
    )
    try:
        yield server.connection_string
    except BaseException as exc:
        if _should_dump_logs(exc):
            _print_logs_to_stderr([server])
        raise
    finally:
        server.close()


def _start_retrying_ports(make: Callable[[], ZooKeeperServer]) -> ZooKeeperServer:
    """Start a fresh server, retrying with new ports if another process took its port."""
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        server = make()
        try:
            server.start()
            return server
        except BaseException as exc:
            # Whatever stopped the start (even Ctrl-C), leave no process or directory behind.
            conflict = isinstance(exc, ZooKeeperStartError) and _bind_conflict(server.log_text())
            server.close()
            if not conflict or attempt == _PORT_ATTEMPTS:
                raise
            log.warning("port %d was taken before ZooKeeper bound it; retrying", server.client_port)
    raise AssertionError("unreachable: the loop returns or raises")
