"""Real ZooKeeper servers for tests, benchmarks and local development.

helixpy's correctness rests on ZooKeeper semantics (sessions, ephemerals, versions,
multi-ops, leader fail-over), so the integration tests and the benchmark run against real
``java`` ZooKeeper processes instead of a fake. This module finds the ZooKeeper jars, writes
a throw-away configuration on free loopback ports and supervises the processes:

* :func:`local_zookeeper` - one standalone server for the duration of a ``with`` block;
* :func:`local_ensemble` - an ``n``-server quorum whose members can be killed and restarted;
* :func:`run_foreground` - one server attached to the terminal (``helixpy zk start``).

Nothing here runs at import time and nothing is shared between calls: every server owns its
temporary directory (configuration, data and log) and its ports, so tests may run several
servers side by side.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

__all__ = [
    "CLASSPATH_ENV",
    "HOME_ENV",
    "NOT_FOUND_MESSAGE",
    "Ensemble",
    "QuorumMember",
    "ZooKeeperNotFound",
    "ZooKeeperNotServing",
    "ZooKeeperServer",
    "ZooKeeperStartError",
    "find_zookeeper_classpath",
    "four_letter_word",
    "free_port",
    "local_ensemble",
    "local_zookeeper",
    "run_foreground",
    "server_stats",
]

log = logging.getLogger(__name__)

CLASSPATH_ENV = "HELIXPY_ZOOKEEPER_CLASSPATH"
HOME_ENV = "ZOOKEEPER_HOME"

NOT_FOUND_MESSAGE = (
    "ZooKeeper jars not found: install Debian's `zookeeper` package (apt-get install zookeeper)"
    " or set ZOOKEEPER_HOME / HELIXPY_ZOOKEEPER_CLASSPATH"
)

# Debian ships no jars under /usr/share/zookeeper (only scripts); they live in /usr/share/java.
_DEBIAN_HOME = Path("/usr/share/zookeeper")
_DEBIAN_JAVA_DIR = Path("/usr/share/java")
# The smallest set a standalone server and a quorum peer were found to need on Debian 12
# (ZooKeeper 3.8.0): metrics-core backs ZooKeeper's default metrics provider and snappy-java
# is loaded by the snapshot code even when compression is off. Netty, Jetty, Jackson and
# commons-cli are only used by the Netty connection factory, the admin server and the CLI,
# none of which we enable. (zookeeper.jar's manifest Class-Path names all of them anyway, so
# listing them explicitly would only repeat it.)
_DEBIAN_REQUIRED_JARS = (
    "zookeeper.jar",
    "zookeeper-jute.jar",
    "slf4j-api.jar",
    "metrics-core.jar",
    "snappy-java.jar",
)
# Debian patches ZooKeeper to log through log4j 1.2 (upstream 3.8 uses logback) but puts no
# SLF4J binding on the classpath, so without these two jars the server logs nothing at all.
_DEBIAN_LOGGING_JARS = ("slf4j-log4j12.jar", "log4j-1.2.jar")

_STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
_QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"

_LOOPBACK = "127.0.0.1"
# Short enough for a responsive wait, long enough not to busy-spin a 2-core machine that is
# also running three JVMs.
_POLL_INTERVAL = 0.05
_DEFAULT_START_TIMEOUT = 30.0
_DEFAULT_STOP_TIMEOUT = 10.0
_KILL_REAP_TIMEOUT = 5.0
_PORT_ATTEMPTS = 3
_LOG_TAIL_LINES = 200
_NOT_SERVING = "not currently serving requests"
# An Error escaping ZooKeeperServerMain.main (e.g. NoClassDefFoundError from an incomplete
# classpath) kills only the main thread: the JVM lingers on its non-daemon NIO threads and
# never serves. The uncaught-exception handler logs this line, so we can fail at once
# instead of at the deadline.
_MAIN_THREAD_DIED = "Thread[main,"

_LOG_PATTERN = "%d{ISO8601} [myid:%X{myid}] - %-5p [%t:%C{1}@%L] - %m%n"
# Every server logs to stdout; the supervisor decides where stdout goes (a file for the
# background servers, the terminal for run_foreground). One config per backend, because
# which one applies depends on the ZooKeeper build: log4j 1.2 for Debian and upstream
# <= 3.7, logback for upstream >= 3.8. Passing both system properties is harmless.
# NIOServerCnxn logs every four-letter word at INFO; our start-up and leader polls would
# drown the interesting lines of a failing test's log tail in "Processing srvr command".
_LOG4J_PROPERTIES = f"""\
log4j.rootLogger=INFO, CONSOLE
log4j.logger.org.apache.zookeeper.server.NIOServerCnxn=WARN
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.Target=System.out
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern={_LOG_PATTERN}
"""
_LOGBACK_XML = f"""\
<configuration>
  <appender name="CONSOLE" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>{_LOG_PATTERN}</pattern></encoder>
  </appender>
  <logger name="org.apache.zookeeper.server.NIOServerCnxn" level="WARN"/>
  <root level="INFO"><appender-ref ref="CONSOLE"/></root>
</configuration>
"""

# JVM flags chosen for start-up speed and a small footprint: three servers have to come up
# in a few seconds on two cores next to the test process. The serial collector starts fewer
# threads, -UsePerfData avoids hsperfdata files in /tmp, and a bounded heap keeps three
# JVMs from each reserving a quarter of the machine.
_JVM_FLAGS = (
    "-Xms32m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:-UsePerfData",
    "-Djava.net.preferIPv4Stack=true",
    "-Dzookeeper.jmx.log4j.disable=true",
    # Leader election backs off exponentially (up to 60 s by default) while peers are
    # unreachable; a 1 s ceiling keeps a restarted or slow-starting quorum converging fast.
    "-Dzookeeper.fastleader.maxNotificationInterval=1000",
)


class ZooKeeperNotFound(RuntimeError):
    """No ZooKeeper jars could be found to build a Java classpath from."""


class ZooKeeperStartError(RuntimeError):
    """A ZooKeeper server process exited or did not start serving in time."""


class ZooKeeperNotServing(RuntimeError):
    """A server answered a four-letter word but is not serving clients (e.g. mid-election)."""


# ---------------------------------------------------------------------------------------
# Locating ZooKeeper
# ---------------------------------------------------------------------------------------


def find_zookeeper_classpath() -> str:
    """Return a Java classpath that runs a ZooKeeper server.

    Looked up in this order:

    1. ``HELIXPY_ZOOKEEPER_CLASSPATH``, used verbatim (an empty value counts as unset);
    2. ``ZOOKEEPER_HOME``: every ``*.jar`` in ``$ZOOKEEPER_HOME/lib`` and
       ``$ZOOKEEPER_HOME`` (an upstream binary tarball); Debian's ``/usr/share/zookeeper``,
       which holds no jars, maps to the Debian layout below;
    3. the Debian ``zookeeper`` package's jars in ``/usr/share/java``.

    Raises:
        ZooKeeperNotFound: nothing usable was found. A ``ZOOKEEPER_HOME`` without jars is an
            error rather than a reason to fall back to Debian, so that a misconfigured home
            is reported instead of silently running another ZooKeeper.
    """
    explicit = os.environ.get(CLASSPATH_ENV, "")
    if explicit:
        return explicit
    home = os.environ.get(HOME_ENV, "")
    if home:
        return _home_classpath(Path(home))
    return _debian_classpath(_DEBIAN_JAVA_DIR)


def _home_classpath(home: Path) -> str:
    jars = sorted((home / "lib").glob("*.jar")) + sorted(home.glob("*.jar"))
    if jars:
        return os.pathsep.join(str(jar) for jar in jars)
    if home.resolve() == _DEBIAN_HOME:
        return _debian_classpath(_DEBIAN_JAVA_DIR)
    raise ZooKeeperNotFound(
        f"{NOT_FOUND_MESSAGE} ({HOME_ENV}={home} has no *.jar in lib/ or at its top level)"
    )


def _debian_classpath(java_dir: Path) -> str:
    missing = [name for name in _DEBIAN_REQUIRED_JARS if not (java_dir / name).is_file()]
    if missing:
        raise ZooKeeperNotFound(f"{NOT_FOUND_MESSAGE} (missing in {java_dir}: {missing})")
    jars = [java_dir / name for name in _DEBIAN_REQUIRED_JARS]
    logging_jars = [java_dir / name for name in _DEBIAN_LOGGING_JARS]
    absent_logging = [jar.name for jar in logging_jars if not jar.is_file()]
    if absent_logging:
        # The server still runs, only silently; say so because an empty log makes a failing
        # test much harder to diagnose.
        log.warning(
            "ZooKeeper will run without logging: %s not found in %s", absent_logging, java_dir
        )
    jars += [jar for jar in logging_jars if jar.is_file()]
    return os.pathsep.join(str(jar) for jar in jars)


def _find_java() -> str:
    """The ``java`` binary: ``$JAVA_HOME/bin/java`` if set, else the first on ``PATH``."""
    java_home = os.environ.get("JAVA_HOME", "")
    if java_home:
        candidate = Path(java_home) / "bin" / "java"
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("java")
    if found is None:
        raise ZooKeeperNotFound(
            "java not found on PATH (or in $JAVA_HOME/bin): install a JRE (apt-get install"
            " default-jre-headless) to run ZooKeeper"
        )
    return found


# ---------------------------------------------------------------------------------------
# Ports and four-letter words
# ---------------------------------------------------------------------------------------


def free_port(host: str = _LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago.

    The kernel picks it (bind to port 0), so parallel test runs do not collide on a fixed
    port. Another process can still grab it before the caller binds, which is why the
    server helpers retry start-up on "Address already in use".
    """
    return _free_ports(1, host)[0]


def _free_ports(count: int, host: str = _LOOPBACK) -> list[int]:
    # Keep every probe socket open until all are chosen so that the kernel cannot hand the
    # same port out twice (an ensemble needs 3 distinct ports per server).
    with contextlib.ExitStack() as stack:
        ports: list[int] = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def _split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError(f"expected 'host:port', got {address!r}")
    return host, int(port)


def four_letter_word(address: str, command: str, *, timeout: float = 2.0) -> str:
    """Send a ZooKeeper four-letter word (``ruok``, ``srvr``, ``mntr``...) and return the reply.

    ``address`` is one ``host:port``. The server must whitelist the command
    (our servers set ``4lw.commands.whitelist=*``).

    Raises:
        OSError: the server could not be reached or did not answer within ``timeout``.
    """
    if len(command) != 4:
        raise ValueError(f"four-letter words have four letters, got {command!r}")
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode("ascii"))
        # The server writes the whole reply and then closes; read to EOF, but never past
        # the caller's deadline even if it trickles.
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{command} to {address}: no complete reply in {timeout}s")
            sock.settimeout(remaining)
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


def _parse_mntr(text: str) -> dict[str, str]:
    stats: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            stats[key.strip()] = value.strip()
    return stats


def server_stats(address: str, *, timeout: float = 2.0) -> dict[str, str]:
    """Return one server's ``mntr`` statistics as a ``{name: value}`` dict.

    Keys are ZooKeeper's (``zk_server_state``, ``zk_znode_count``, ``zk_packets_received``,
    ...); values are left as strings because a few are not numbers (``zk_version``).

    Raises:
        ZooKeeperNotServing: the server is up but not serving (e.g. during an election).
        OSError: the server could not be reached.
    """
    reply = four_letter_word(address, "mntr", timeout=timeout)
    if _NOT_SERVING in reply:
        raise ZooKeeperNotServing(f"{address}: {reply.strip()}")
    return _parse_mntr(reply)


def _mode_from_srvr(address: str, reply: str) -> str:
    for line in reply.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "Mode":
            return value.strip()
    raise ZooKeeperNotServing(f"{address}: {reply.strip() or 'empty srvr reply'}")


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------------------------------
# One server process
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuorumMember:
    """One member of an ensemble as every member's ``zoo.cfg`` lists it."""

    server_id: int
    client_port: int
    peer_port: int
    election_port: int


class ZooKeeperServer:
    """One ZooKeeper server process with its own temporary directory.

    The directory (created on first :meth:`start`, removed by :meth:`close`) holds
    ``zoo.cfg``, the logging configs, ``data/`` and ``zookeeper.log``, which receives the
    process's stdout, stderr and log output; restarts append to it. Without ``quorum`` the
    server runs standalone (``ZooKeeperServerMain``); with it, as quorum peer ``server_id``
    (``QuorumPeerMain``). Usable as a context manager (start on enter, close on exit).
    """

    def __init__(
        self,
        *,
        tick_time: float = 0.5,
        client_port: int | None = None,
        server_id: int | None = None,
        quorum: Sequence[QuorumMember] | None = None,
        classpath: str | None = None,
        force_sync: bool = True,
        start_timeout: float = _DEFAULT_START_TIMEOUT,
        name: str = "zookeeper",
    ) -> None:
        """Describe a server; nothing is written or spawned until :meth:`start`.

        Args:
            tick_time: ZooKeeper's tick in seconds (heartbeats, session-timeout bounds).
            client_port: loopback port for clients; a free one when omitted. For a quorum
                peer it must be omitted or match the member's ``client_port``.
            server_id: this peer's ``myid``; required with ``quorum``.
            quorum: every member of the ensemble (including this one).
            classpath: Java classpath; :func:`find_zookeeper_classpath` when omitted.
            force_sync: fsync the transaction log on every write, ZooKeeper's default.
                Turning it off makes writes much faster when durability across machine
                crashes does not matter (killed processes lose nothing either way).
            start_timeout: default bound for :meth:`start` to see the server serving.
            name: label used in log messages and in the temporary directory's name.
        """
        if tick_time <= 0:
            raise ValueError(f"tick_time must be positive, got {tick_time}")
        self.tick_time = tick_time
        self.tick_ms = max(1, int(tick_time * 1000))
        self.server_id = server_id
        self.quorum: tuple[QuorumMember, ...] = tuple(quorum or ())
        if self.quorum:
            member = next((m for m in self.quorum if m.server_id == server_id), None)
            if member is None:
                raise ValueError(f"server_id {server_id} is not in the quorum {self.quorum}")
            if client_port is not None and client_port != member.client_port:
                raise ValueError(
                    f"client_port {client_port} != quorum member's {member.client_port}"
                )
            client_port = member.client_port
        elif server_id is not None:
            raise ValueError("server_id only makes sense together with quorum")
        self.client_port = client_port if client_port is not None else free_port()
        self.classpath = classpath if classpath is not None else find_zookeeper_classpath()
        self.force_sync = force_sync
        self.start_timeout = start_timeout
        self.name = name
        self._work_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        # Where this run's output starts in the (appended-to) log file.
        self._log_offset = 0

    def __repr__(self) -> str:
        return f"<ZooKeeperServer {self.name} {self.connection_string} pid={self.pid}>"

    def __enter__(self) -> ZooKeeperServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- properties ---------------------------------------------------------------------

    @property
    def connection_string(self) -> str:
        """``127.0.0.1:PORT`` of this server's client port."""
        return f"{_LOOPBACK}:{self.client_port}"

    @property
    def pid(self) -> int | None:
        """PID of the running process, ``None`` when not running."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def running(self) -> bool:
        """Whether the process has been spawned and has not exited."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def work_dir(self) -> Path:
        """The server's temporary directory.

        Raises:
            RuntimeError: before the first :meth:`launch` or after :meth:`close`.
        """
        if self._work_dir is None:
            raise RuntimeError(f"{self.name} has no directory: not launched yet, or closed")
        return self._work_dir

    @property
    def data_dir(self) -> Path:
        """Snapshot, transaction-log and ``myid`` directory."""
        return self.work_dir / "data"

    @property
    def config_path(self) -> Path:
        """The generated ``zoo.cfg``."""
        return self.work_dir / "zoo.cfg"

    @property
    def log_path(self) -> Path:
        """File receiving the process's stdout, stderr and log output."""
        return self.work_dir / "zookeeper.log"

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> None:
        """Spawn the server and wait until it serves clients.

        Raises:
            ZooKeeperStartError: the process exited, or it did not serve within ``timeout``
                (default: ``start_timeout``); the process is killed and the message carries
                the log tail.
        """
        self.launch()
        try:
            self.wait_until_serving(timeout)
        except BaseException:
            # Never leave a half-started JVM behind, whatever interrupted the wait.
            self.kill()
            raise

    def launch(self) -> None:
        """Spawn the process without waiting for it (an ensemble launches all, then waits)."""
        if self.running:
            raise RuntimeError(f"{self!r} is already running")
        self._write_files()
        command = [
            _find_java(),
            *_JVM_FLAGS,
            f"-Dlog4j.configuration={(self.work_dir / 'log4j.properties').as_uri()}",
            f"-Dlogback.configurationFile={self.work_dir / 'logback.xml'}",
            "-cp",
            self.classpath,
            _QUORUM_MAIN if self.quorum else _STANDALONE_MAIN,
            str(self.config_path),
        ]
        with self.log_path.open("ab") as out:
            self._log_offset = out.tell()
            out.write(f"--- helixpy: launching {' '.join(command)}\n".encode())
            out.flush()
            # A new session keeps a terminal Ctrl-C away from the servers: the supervisor
            # (our context managers) shuts them down in order instead.
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.work_dir,
                start_new_session=True,
            )
        log.debug("launched %r", self)

    def wait_until_serving(self, timeout: float | None = None) -> None:
        """Poll ``srvr`` until the server reports a mode (it serves clients).

        A quorum peer answers "not currently serving requests" until it has joined a quorum,
        so this also waits for leader election and the initial sync.

        Raises:
            ZooKeeperStartError: the process exited or the deadline passed.
        """
        bound = self.start_timeout if timeout is None else timeout
        deadline = time.monotonic() + bound
        last_problem = "no reply yet"
        while True:
            proc = self._proc
            if proc is None:
                raise ZooKeeperStartError(f"{self.name} was never launched")
            code = proc.poll()
            if code is not None:
                raise ZooKeeperStartError(
                    f"{self.name} ({self.connection_string}) exited with code {code} before"
                    f" serving; log tail:\n{self.log_tail()}"
                )
            if self._main_thread_died():
                raise ZooKeeperStartError(
                    f"{self.name} ({self.connection_string}): the server's main thread died"
                    f" (incomplete classpath?); log tail:\n{self.log_tail()}"
                )
            # One probe may not overrun the caller's deadline by more than a poll interval.
            probe_timeout = min(1.0, max(_POLL_INTERVAL, deadline - time.monotonic()))
            try:
                reply = four_letter_word(self.connection_string, "srvr", timeout=probe_timeout)
                _mode_from_srvr(self.connection_string, reply)
                return
            except (OSError, ZooKeeperNotServing) as exc:
                # Expected while the JVM boots or the quorum forms; kept for the error below.
                last_problem = f"{type(exc).__name__}: {exc}"
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZooKeeperStartError(
                    f"{self.name} ({self.connection_string}) not serving after {bound}s (last:"
                    f" {last_problem}); log tail:\n{self.log_tail()}"
                )
            time.sleep(min(_POLL_INTERVAL, remaining))

    def terminate(self) -> None:
        """Send SIGTERM without waiting (lets a caller stop several servers in parallel)."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()

    def _main_thread_died(self) -> bool:
        with self.log_path.open("rb") as log_file:
            log_file.seek(self._log_offset)
            this_run = log_file.read().decode("utf-8", errors="replace")
        return any(_MAIN_THREAD_DIED in line and "died" in line for line in this_run.splitlines())

    def stop(self, timeout: float = _DEFAULT_STOP_TIMEOUT) -> None:
        """Stop gracefully: SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("%r ignored SIGTERM for %ss; sending SIGKILL", self, timeout)
            self.kill()
        log.debug("stopped %s (exit code %s)", self.name, proc.returncode)

    def kill(self) -> None:
        """SIGKILL the process (a crash, as far as the ensemble can tell) and reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        try:
            proc.wait(timeout=_KILL_REAP_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(
                f"{self.name} (pid {proc.pid}) still alive {_KILL_REAP_TIMEOUT}s after SIGKILL"
            ) from exc

    def close(self, timeout: float = _DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the server and delete its temporary directory (data and log included)."""
        self.stop(timeout)
        if self._work_dir is not None:
            shutil.rmtree(self._work_dir)
            self._work_dir = None

    # -- inspection ---------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the process has written so far (empty before the first start)."""
        if self._work_dir is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of :meth:`log_text`."""
        return _tail(self.log_text(), lines)

    def stats(self, timeout: float = 2.0) -> dict[str, str]:
        """This server's ``mntr`` statistics (see :func:`server_stats`)."""
        return server_stats(self.connection_string, timeout=timeout)

    def mode(self, timeout: float = 2.0) -> str:
        """``"standalone"``, ``"leader"`` or ``"follower"``, from ``srvr``.

        Raises:
            ZooKeeperNotServing: the server is up but not serving (e.g. mid-election).
            OSError: the server could not be reached.
        """
        reply = four_letter_word(self.connection_string, "srvr", timeout=timeout)
        return _mode_from_srvr(self.connection_string, reply)

    # -- configuration ------------------------------------------------------------------

    def _config_lines(self) -> list[str]:
        lines = [
            f"tickTime={self.tick_ms}",
            f"dataDir={self.data_dir}",
            f"clientPort={self.client_port}",
            f"clientPortAddress={_LOOPBACK}",
            # Session timeouts are clamped to [min, max]; ZooKeeper's own defaults are
            # 2 and 20 ticks, and 20 half-second ticks is too short for clients that want
            # a long session (kazoo defaults to 10 s, Helix-style clients to 30 s or more).
            f"minSessionTimeout={2 * self.tick_ms}",
            f"maxSessionTimeout={max(60000, 20 * self.tick_ms)}",
            # The benchmark reads mntr/srvr; tests use srvr to find the leader.
            "4lw.commands.whitelist=*",
            # The admin server would bind a fixed port (8080) and collide across servers.
            "admin.enableServer=false",
            # The default of 60 connections per client IP is far too few when every
            # simulated participant of a benchmark connects from 127.0.0.1.
            "maxClientCnxns=0",
            f"forceSync={'yes' if self.force_sync else 'no'}",
        ]
        if self.quorum:
            init_limit, sync_limit = _quorum_limits(self.tick_time)
            lines += [
                f"initLimit={init_limit}",
                f"syncLimit={sync_limit}",
                # Keep even a 1-member "ensemble" a real quorum with a leader, so that
                # Ensemble.leader() means the same thing for every n.
                "standaloneEnabled=false",
                "reconfigEnabled=false",
            ]
            lines += [
                f"server.{m.server_id}={_LOOPBACK}:{m.peer_port}:{m.election_port}"
                for m in self.quorum
            ]
        return lines

    def _write_files(self) -> None:
        if self._work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix=f"helixpy-{self.name}-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text("\n".join(self._config_lines()) + "\n", encoding="utf-8")
        (self.work_dir / "log4j.properties").write_text(_LOG4J_PROPERTIES, encoding="utf-8")
        (self.work_dir / "logback.xml").write_text(_LOGBACK_XML, encoding="utf-8")
        if self.server_id is not None:
            (self.data_dir / "myid").write_text(f"{self.server_id}\n", encoding="utf-8")


def _quorum_limits(tick_time: float) -> tuple[int, int]:
    """``initLimit`` and ``syncLimit`` in ticks for a given tick.

    Followers get at least ~5 s to connect and sync to a new leader and ~2 s of leader
    silence before giving up: fail-over stays quick with half-second ticks while a short
    tick on a loaded 2-core machine does not make followers drop out spuriously.
    """
    return max(10, math.ceil(5.0 / tick_time)), max(5, math.ceil(2.0 / tick_time))


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
    """
    server = _start_retrying_ports(
        lambda: ZooKeeperServer(
            tick_time=tick_time,
            classpath=classpath,
            force_sync=force_sync,
            start_timeout=start_timeout,
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


# ---------------------------------------------------------------------------------------
# Ensembles
# ---------------------------------------------------------------------------------------


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
    ) -> None:
        """Describe the ensemble and pick its ports; :meth:`start_all` spawns it."""
        if n < 1:
            raise ValueError(f"an ensemble needs at least one server, got n={n}")
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
            ZooKeeperServer(
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
) -> Iterator[Ensemble]:
    """Run an ``n``-server quorum for the duration of a ``with`` block.

    Yields the started :class:`Ensemble` (every server serving). On exit all servers are
    stopped and their directories removed; if the body raises, every server's log tail is
    printed to stderr first.
    """
    ensemble: Ensemble | None = None
    for attempt in range(1, _PORT_ATTEMPTS + 1):
        candidate = Ensemble(
            n, tick_time, force_sync=force_sync, classpath=classpath, start_timeout=start_timeout
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


# ---------------------------------------------------------------------------------------
# Foreground server for the CLI
# ---------------------------------------------------------------------------------------


def run_foreground(
    port: int,
    data_dir: str,
    tick_time: float = 2.0,
    *,
    host: str = _LOOPBACK,
    classpath: str | None = None,
    stop_timeout: float = _DEFAULT_STOP_TIMEOUT,
) -> int:
    """Run one standalone server attached to the terminal until it exits; return its code.

    Backs ``helixpy zk start --port P --data-dir D``. Data lives in ``data_dir`` (created if
    missing) and survives; the generated config lives in a temporary directory. The server
    logs to the inherited stdout. SIGINT/SIGTERM received by this process are forwarded to
    the server; if it has not exited ``stop_timeout`` seconds later, or on a second signal,
    it is SIGKILLed. A server killed by signal ``N`` is reported as ``128 + N``, the shell
    convention. Signals are only forwarded when called from the main thread (Python only
    delivers signals there).
    """
    data = Path(data_dir).resolve()
    data.mkdir(parents=True, exist_ok=True)
    cp = classpath if classpath is not None else find_zookeeper_classpath()
    with tempfile.TemporaryDirectory(prefix="helixpy-zk-conf-") as conf_name:
        conf = Path(conf_name)
        tick_ms = max(1, int(tick_time * 1000))
        config = [
            f"tickTime={tick_ms}",
            f"dataDir={data}",
            f"clientPort={port}",
            f"clientPortAddress={host}",
            f"minSessionTimeout={2 * tick_ms}",
            f"maxSessionTimeout={max(60000, 20 * tick_ms)}",
            "4lw.commands.whitelist=*",
            "admin.enableServer=false",
            "maxClientCnxns=0",
        ]
        (conf / "zoo.cfg").write_text("\n".join(config) + "\n", encoding="utf-8")
        (conf / "log4j.properties").write_text(_LOG4J_PROPERTIES, encoding="utf-8")
        (conf / "logback.xml").write_text(_LOGBACK_XML, encoding="utf-8")
        command = [
            _find_java(),
            *_JVM_FLAGS,
            f"-Dlog4j.configuration={(conf / 'log4j.properties').as_uri()}",
            f"-Dlogback.configurationFile={conf / 'logback.xml'}",
            "-cp",
            cp,
            _STANDALONE_MAIN,
            str(conf / "zoo.cfg"),
        ]
        # Own session: a terminal Ctrl-C reaches only us, and we forward it exactly once.
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, start_new_session=True)
        return _supervise_foreground(proc, stop_timeout)


def _supervise_foreground(proc: subprocess.Popen[bytes], stop_timeout: float) -> int:
    kill_deadline: float | None = None

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal kill_deadline
        if kill_deadline is None:
            kill_deadline = time.monotonic() + stop_timeout
            proc.send_signal(signum)
        else:
            # A second signal means "stop now".
            proc.kill()

    forwarded = (signal.SIGINT, signal.SIGTERM)
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.getsignal(sig) for sig in forwarded} if in_main_thread else {}
    try:
        for sig in previous:
            signal.signal(sig, forward)
        while True:
            try:
                code = proc.wait(timeout=_POLL_INTERVAL * 4)
                break
            except subprocess.TimeoutExpired:
                # Still running: the normal case for a foreground server. Wake up only to
                # enforce the SIGKILL deadline once a stop was requested.
                if kill_deadline is not None and time.monotonic() > kill_deadline:
                    log.warning("ZooKeeper did not stop within %ss; sending SIGKILL", stop_timeout)
                    proc.kill()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if proc.poll() is None:
            # We are leaving because of an exception in this process: do not orphan the JVM.
            proc.kill()
            proc.wait(timeout=_KILL_REAP_TIMEOUT)
    return code if code >= 0 else 128 - code
