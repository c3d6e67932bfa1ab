"""One server process: :class:`ZooKeeperServer` and the :class:`QuorumMember` it lists."""

from __future__ import annotations

import logging
import math
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helixpy.testing.zookeeper.classpath import _find_java, find_zookeeper_classpath
from helixpy.testing.zookeeper.errors import ZooKeeperNotServing, ZooKeeperStartError
from helixpy.testing.zookeeper.jvm import (
    _DEFAULT_START_TIMEOUT,
    _DEFAULT_STOP_TIMEOUT,
    _JVM_FLAGS,
    _KILL_REAP_TIMEOUT,
    _LOG4J_PROPERTIES,
    _LOGBACK_XML,
    _POLL_INTERVAL,
    _QUORUM_MAIN,
    _STANDALONE_MAIN,
)
from helixpy.testing.zookeeper.net import (
    _LOOPBACK,
    _mode_from_srvr,
    four_letter_word,
    free_port,
    server_stats,
)

# One logger for the whole package, named as when it was a single module, so that
# logging configuration and log records are unchanged by the split.
log = logging.getLogger("helixpy.testing.zookeeper")

_LOG_TAIL_LINES = 200
# An Error escaping ZooKeeperServerMain.main (e.g. NoClassDefFoundError from an incomplete
# classpath) kills only the main thread: the JVM lingers on its non-daemon NIO threads and
# never serves. The uncaught-exception handler logs this line, so we can fail at once
# instead of at the deadline.
_MAIN_THREAD_DIED = "Thread[main,"


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


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
        host: str = _LOOPBACK,
        max_heap_mb: int | None = None,
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
            host: the address clients connect to (loopback unless a test network, such as
                the host side of a veth pair, is wanted).
            max_heap_mb: the JVM's heap bound in MiB (default 512). ZooKeeper keeps every
                znode in memory: a benchmark that retains ~100,000 finished workflows
                (~800,000 znodes) needs about 2 GiB, or the server stalls in collection.
        """
        if tick_time <= 0:
            raise ValueError(f"tick_time must be positive, got {tick_time}")
        if max_heap_mb is not None and max_heap_mb < 64:
            raise ValueError(f"max_heap_mb must be at least 64, got {max_heap_mb}")
        self.max_heap_mb = max_heap_mb
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
        self.host = host
        self.client_port = client_port if client_port is not None else free_port(host)
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
        """``HOST:PORT`` of this server's client port (loopback by default)."""
        return f"{self.host}:{self.client_port}"

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
            # HotSpot takes the last -Xmx given, so this overrides the default bound.
            *([f"-Xmx{self.max_heap_mb}m"] if self.max_heap_mb else []),
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
            f"clientPortAddress={self.host}",
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
