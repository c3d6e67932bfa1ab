"""The controller daemon: election, the pipeline thread, the gRPC server.

Session states drive leadership: SUSPENDED pauses the pipeline (our LEADER node may be
gone and nothing we think is true can be trusted), CONNECTED resumes it, LOST ends the
term (the ephemeral LEADER is gone; a standby may already lead). Fencing makes the pause
a courtesy rather than a necessity: a write from a stale term fails on the EPOCH check.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from concurrent import futures
from typing import Any

import grpc
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NodeExistsError

from helixpy.controller.api import ControllerHttp, Mutator, check_binding, server_context
from helixpy.controller.election import Leadership, read_leader, try_lead, wait_for_vacancy
from helixpy.controller.metrics import ControllerMetrics, Snapshot
from helixpy.controller.pipeline import Pipeline
from helixpy.controller.service import ControllerService
from helixpy.controller.signals import Command, Signals
from helixpy.errors import Fenced
from helixpy.model.limits import HARD_MAX_REQUEST_BYTES, Limits
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.security import ClientTls, ServerTls, TokenInterceptor
from helixpy.store.acl import AclProvider, OpenAclProvider
from helixpy.store.client import connect, request_counts
from helixpy.store.fencing import FencedWriter
from helixpy.store.locks import read_locks
from helixpy.store.paths import Paths
from helixpy.telemetry import Health, RequestCounts, TelemetryServer

log = logging.getLogger(__name__)

#: How long a mutation waits for a newly elected leader to finish loading.
LOAD_WAIT = 10.0
#: gRPC handler threads. Each waits for the pipeline to answer its command, so this bounds
#: how many mutations one pass can take together (a burst of 32 starts costs about what 8 do).
GRPC_WORKERS = 32


class RunState(enum.Enum):
    STARTING = "STARTING"
    STANDBY = "STANDBY"
    LEADING = "LEADING"
    PAUSED = "PAUSED"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"


class _TermEnded(Exception):
    """Control flow: this leadership term is over (session lost or stop requested)."""


class Controller:
    """A controller process: leads when elected, stands by otherwise."""

    def __init__(
        self,
        zk_hosts: str,
        cluster: str,
        controller_id: str,
        *,
        grpc_host: str = "127.0.0.1",
        grpc_port: int = 0,
        session_timeout: float = 10.0,
        acl: AclProvider | None = None,
        zk_auth: str | None = None,
        tls: ServerTls | None = None,
        token: str | None = None,
        metrics_host: str = "127.0.0.1",
        metrics_port: int | None = None,
        http_host: str = "127.0.0.1",
        http_port: int | None = None,
        http_insecure: bool = False,
        client_tls: ClientTls | None = None,
    ) -> None:
        self.paths = Paths(cluster)
        #: ``--http-port``: None serves no dashboard and HTTP API (0 picks a free port)
        self._dashboard_at = None if http_port is None else (http_host, http_port)
        if http_port is not None:
            # Before anything starts: no token on a reachable address is refused outright.
            check_binding(http_host, token, http_insecure)
        #: how a standby reaches a TLS leader to forward HTTP mutations (``--tls-ca`` ...)
        self._client_tls = client_tls
        self.dashboard: ControllerHttp | None = None
        self._mutator: Mutator | None = None
        self._writer: FencedWriter | None = None
        #: ``--metrics-port``: None serves no /metrics or /healthz (0 picks a free port)
        self._metrics_at = None if metrics_port is None else (metrics_host, metrics_port)
        self.metrics = ControllerMetrics(
            self._metrics_state, self._read_locks, wake=lambda: self.signals.wake()
        )
        self.metrics.registry.register(RequestCounts(lambda: request_counts(self.zk), {}))
        self.telemetry: TelemetryServer | None = None
        self.zk_auth = zk_auth
        self._tls = tls
        self._token = token
        self.zk_hosts = zk_hosts
        self.controller_id = controller_id
        #: the cluster's size limits: the leading pipeline's (defaults while not leading;
        #: a standby's handlers answer UNAVAILABLE anyway)
        self._limits: Callable[[], Limits] = Limits
        self.session_timeout = session_timeout
        self.acl = acl or OpenAclProvider()
        self.state = RunState.STARTING
        self.signals = Signals()
        self._grpc_host = grpc_host
        self._grpc_port = grpc_port
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lost = threading.Event()
        self._paused = threading.Event()
        self._leading = threading.Event()
        #: set from winning an election until the term ends; LEADING only after the load
        self._elected = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: grpc.Server | None = None
        self.zk: KazooClient | None = None
        self.endpoint = ""
        self.leadership: Leadership | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.zk = connect(self.zk_hosts, session_timeout=self.session_timeout, auth=self.zk_auth)
        self.zk.add_listener(self._on_session)
        for path in (
            self.paths.root,
            self.paths.controller,
            self.paths.requests,
            self.paths.live_instances,
            self.paths.instances,
            self.paths.workflows,
        ):
            self.zk.ensure_path(path, acl=self.acl.acl_for(path))
        if self.zk.exists(self.paths.epoch) is None:
            try:
                self.zk.create(self.paths.epoch, b"0", acl=self.acl.acl_for(self.paths.epoch))
            except NodeExistsError as exc:  # another controller created it first
                log.debug("EPOCH exists already: %s", exc)
        interceptors: list[Any] = [TokenInterceptor(self._token)] if self._token is not None else []
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=GRPC_WORKERS),
            interceptors=interceptors,
            # Bigger than gRPC's 4 MB default, so that max_request_bytes (a cluster setting,
            # checked by the handlers) decides, answered INVALID_CONFIG naming it.
            options=[("grpc.max_receive_message_length", HARD_MAX_REQUEST_BYTES)],
        )
        service = ControllerService(self._submit, lambda: self._limits())
        pb_grpc.add_ControllerServicer_to_server(service, self._server)
        address = f"{self._grpc_host}:{self._grpc_port}"
        if self._tls is None:
            port = self._server.add_insecure_port(address)
        else:
            port = self._server.add_secure_port(address, self._tls.credentials())
        self._server.start()
        self.endpoint = f"{self._grpc_host}:{port}"
        if self._dashboard_at is not None:
            self._mutator = Mutator(
                self.zk,
                self.paths,
                service,
                lambda: self.is_leader,
                self.controller_id,
                token=self._token,
                server_tls=self._tls is not None,
                client_tls=self._client_tls,
            )
            self.dashboard = ControllerHttp(
                self.zk,
                self.paths,
                self._mutator,
                *self._dashboard_at,
                token=self._token,
                ssl_context=server_context(self._tls) if self._tls is not None else None,
            )
            self.dashboard.start()
            log.info(
                "dashboard on %s://%s (HTTP API at /api/v1, /openapi.json)",
                self.dashboard.scheme,
                self.dashboard.address,
            )
        if self._metrics_at is not None:
            self.telemetry = TelemetryServer(self.metrics.registry, self.health, *self._metrics_at)
            self.telemetry.start()
            log.info("metrics and health on http://%s", self.telemetry.address)
        self._thread = threading.Thread(target=self._main, name="controller", daemon=True)
        self._thread.start()
        log.info("controller %s started, gRPC on %s", self.controller_id, self.endpoint)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop leading, stop serving, close the session (LEADER goes with it)."""
        self.state = RunState.STOPPING
        self._stop.set()
        self._wake.set()
        self.signals.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._server is not None:
            # Stop serving before closing the session: a mutation must not be accepted by a
            # controller that can no longer write.
            self._server.stop(grace=1.0).wait(timeout)
        if self.dashboard is not None:
            # The HTTP API mutates and reads through the session too: stop it first as well.
            self.dashboard.stop()
        if self._mutator is not None:
            self._mutator.close()
        if self.zk is not None:
            self.zk.stop()
            self.zk.close()
        if self.telemetry is not None:
            self.telemetry.stop()
        self.state = RunState.STOPPED

    def wait(self) -> None:
        """Block until the controller stops."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(1.0)

    @property
    def is_leader(self) -> bool:
        return self._leading.is_set()

    def health(self) -> Health:
        """Healthy while the main loop runs and the ZooKeeper session is connected (a
        standby is healthy: it is ready to take over)."""
        alive = self._thread is not None and self._thread.is_alive()
        connected = self.zk is not None and self.zk.state == KazooState.CONNECTED
        return Health(alive and connected, self._metrics_state())

    def _read_locks(self) -> dict[str, Any]:
        if self.zk is None or self.zk.state != KazooState.CONNECTED:
            return {}
        return read_locks(self.zk, self.paths)

    def _metrics_state(self) -> dict[str, str | bool | int]:
        leadership = self.leadership
        return {
            "id": self.controller_id,
            "leader": self.is_leader,
            "epoch": leadership.epoch if leadership is not None and self.is_leader else 0,
            "run_state": self.state.value,
            "session": str(self.zk.state) if self.zk is not None else "NONE",
            "multis": self._writer.multis if self._writer is not None else 0,
        }

    # --- events ---------------------------------------------------------------------------

    def _on_session(self, state: str) -> None:
        # kazoo's event thread: only flags, never blocking work.
        if state == KazooState.SUSPENDED:
            self._paused.set()
        elif state == KazooState.LOST:
            self._lost.set()
            self._paused.set()
        else:
            if self._paused.is_set():
                # Reconnected within the session: ZooKeeper re-delivers its watches, but a
                # read that failed while we were away armed none, so re-read everyone once.
                self.signals.mark_all_instances()
            self._paused.clear()
        self._wake.set()
        self.signals.wake()

    def _submit(self, cmd: Command) -> bool:
        # A request that reaches a freshly elected leader while it rebuilds its state waits
        # for the load (bounded) rather than bouncing: LEADER already names this endpoint.
        if self._elected.is_set() and not self._leading.is_set():
            self._leading.wait(LOAD_WAIT)
        if not self._leading.is_set() or self._paused.is_set():
            return False
        self.signals.submit(cmd)
        return True

    # --- main loop ------------------------------------------------------------------------

    def _main(self) -> None:
        assert self.zk is not None
        while not self._stop.is_set():
            try:
                if self._paused.is_set():
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                self._lost.clear()
                self.state = RunState.STANDBY
                leadership = try_lead(
                    self.zk, self.paths, self.acl, self.controller_id, self.endpoint
                )
                if leadership is None:
                    wait_for_vacancy(self.zk, self.paths, self._wake, timeout=5.0)
                    self._wake.clear()
                    continue
                self._lead(leadership)
            except Exception:
                if self._stop.is_set():
                    break
                log.exception("controller loop error; retrying")
                self._wake.wait(0.5)
                self._wake.clear()
        self._leading.clear()

    def _lead(self, leadership: Leadership) -> None:
        assert self.zk is not None
        log.info("controller %s leads with epoch %d", self.controller_id, leadership.epoch)
        self.leadership = leadership
        self._elected.set()
        writer = FencedWriter(self.zk, self.paths.epoch, leadership.epoch, self.acl)
        self._writer = writer  # its multis count is a metric
        self.signals.reset()
        pipeline = Pipeline(self.zk, self.paths, writer, self.signals, self.metrics)
        self._limits = lambda: pipeline.limits  # what the gRPC handlers check requests by
        try:
            pipeline.load()
            self.state = RunState.LEADING
            self._leading.set()
            failures = 0
            while True:
                self._check_term()
                if self._paused.is_set():
                    self.state = RunState.PAUSED
                    self._wake.wait(0.5)
                    self._wake.clear()
                    continue
                self.state = RunState.LEADING
                try:
                    wakeup = pipeline.run_pass()
                    failures = 0
                except Fenced:
                    raise
                except Exception:
                    # A pass that failed left its dirty state in place; the next one retries.
                    failures += 1
                    log.exception("pipeline pass failed (%d in a row)", failures)
                    self._wake.wait(min(0.1 * 2**failures, 2.0))
                    self.signals.wake()
                    continue
                timeout = None if wakeup is None else max(0.0, wakeup - time.time())
                # Bounded anyway: a periodic pass re-checks timers and the session.
                self.signals.wait(5.0 if timeout is None else min(timeout, 5.0))
        except Fenced as exc:
            log.warning("controller %s fenced, stepping down: %s", self.controller_id, exc)
        except _TermEnded:
            log.info("controller %s leadership term ended", self.controller_id)
        finally:
            self._leading.clear()
            self._elected.clear()
            self.leadership = None
            self.metrics.snapshot = Snapshot()  # a standby exports no levels of its own
            for cmd in self.signals.reset():
                if not cmd.future.done():
                    cmd.future.set_exception(Fenced("leadership ended"))
            self._resign(leadership)

    def _check_term(self) -> None:
        if self._stop.is_set() or self._lost.is_set():
            raise _TermEnded()

    def _resign(self, leadership: Leadership) -> None:
        """Delete our LEADER node if it is still ours (a clean stop lets standbys in fast)."""
        assert self.zk is not None
        try:
            current = read_leader(self.zk, self.paths)
            if (
                current
                and current.get("id") == self.controller_id
                and current.get("epoch") == leadership.epoch
            ):
                self.zk.delete(self.paths.leader)
        except Exception as exc:
            log.debug("could not resign cleanly: %s", exc)
