"""The daemons' HTTP side door: Prometheus metrics at ``/metrics``, a probe at ``/healthz``.

Controller and participant each own one :class:`TelemetryServer` (``--metrics-port``),
with their own ``CollectorRegistry``: nothing here is global, so several daemons can live in
one process (the scale benchmark runs 50 participants per process). ``/healthz`` answers
200 with a JSON body when the daemon's health function says healthy, 503 otherwise; that is
what ``helixpy controller health`` and ``helixpy participant health`` probe. The same
:class:`HttpServer` (methods, headers, bounded bodies, TLS) serves the controller's
dashboard and HTTP API (``helixpy.controller.api``).

Imports only the standard library, ``prometheus_client`` and ``errors``; the collectors
that know a daemon's internals live beside it (``controller/metrics.py``,
``participant/metrics.py``).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """One health answer: ``ok`` decides the probe; ``detail`` says why."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


#: an HTTP answer: status, content type, body
Reply = tuple[int, str, bytes]

#: the most bytes of a request body an :class:`HttpServer` reads by default (413 above it)
MAX_BODY = 1024 * 1024
#: the most bytes of a refused body still read (and dropped) so the client sees the 413
DRAIN_LIMIT = 16 * 1024 * 1024
#: seconds a connection may sit idle (a slow or silent client must not hold a thread)
SOCKET_TIMEOUT = 30.0


@dataclass(frozen=True)
class Request:
    """One HTTP request as a handler sees it: ``target`` is the raw request target (path
    and query, still percent-encoded); ``headers`` are keyed in lower case."""

    method: str
    target: str
    headers: Mapping[str, str]
    body: bytes = b""

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""


@dataclass(frozen=True)
class Answer:
    """A handler's answer with headers of its own (``Allow``, ``WWW-Authenticate``)."""

    status: int
    content_type: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


#: what a request handler returns
Answered = Reply | Answer


class HttpServer:
    """A small threaded HTTP server: ``handle(request)`` answers each request.

    ``port`` 0 picks a free port (see :attr:`address`). Serves on a daemon thread until
    :meth:`stop`. A body longer than ``max_body`` bytes is refused 413 before it is read;
    with ``ssl_context`` every connection speaks TLS (the handshake runs on the
    connection's own thread, so a slow client never stalls the accept loop). ``refuse``
    words the answers to requests refused before the handler sees them (status, why):
    plain text by default. Shared by the
    telemetry server and the controller's dashboard and HTTP API.
    """

    def __init__(
        self,
        handle: Callable[[Request], Answered],
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "http",
        *,
        max_body: int = MAX_BODY,
        ssl_context: ssl.SSLContext | None = None,
        refuse: Callable[[int, str], Answered] | None = None,
    ) -> None:
        handler = _handler(handle, name, max_body, refuse or _plain_refusal)
        # An IPv6 literal ("::1", "[::1]") needs an IPv6 socket; names and IPv4 stay IPv4.
        bare = host.strip("[]")
        self._server = _Server((bare, port), handler, ssl_context, ipv6=":" in bare)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)
        #: "https" with an ssl context, else "http"
        self.scheme = "https" if ssl_context is not None else "http"

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


class _Server(ThreadingHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None,
        *,
        ipv6: bool = False,
    ) -> None:
        self._ssl = ssl_context
        if ipv6:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self._ssl is None:
            return sock, addr
        # No handshake here, on the accept loop: it happens on the first read, on the
        # connection's thread (under the handler's socket timeout).
        return self._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver prints a traceback to stderr; a client that failed its TLS handshake
        # or went away is routine, anything else is logged as the error it is.
        exc = sys.exc_info()[1]
        if isinstance(exc, ssl.SSLError | ConnectionError | TimeoutError):
            log.debug("connection from %s ended: %r", client_address, exc)
        else:
            log.exception("request from %s failed", client_address)


def _plain_refusal(status: int, why: str) -> Answered:
    return status, "text/plain", f"{why}\n".encode()


def _handler(
    handle: Callable[[Request], Answered],
    name: str,
    max_body: int,
    refuse: Callable[[int, str], Answered],
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT

        def _serve(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if length < 0:
                answer: Answered = refuse(400, "bad Content-Length")
                self.close_connection = True
            elif length > max_body:
                answer = refuse(413, f"request body of {length} bytes is over {max_body}")
                self.close_connection = True
                if length <= DRAIN_LIMIT:
                    # Read (and drop) what the client is sending: closing a socket with unread
                    # data resets it, and the client would see the reset, not this answer.
                    self._drain(length)
            else:
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, headers, body)
                try:
                    answer = handle(request)
                except Exception as exc:  # one bad request must not take the server down
                    log.exception("%s: %s %s failed", name, self.command, self.path)
                    answer = Answer(500, "text/plain", f"{type(exc).__name__}: {exc}\n".encode())
            self._send(answer)

        def _drain(self, length: int) -> None:
            while length > 0:
                chunk = self.rfile.read(min(length, 65536))
                if not chunk:
                    return
                length -= len(chunk)

        def _send(self, answer: Answered) -> None:
            if not isinstance(answer, Answer):
                answer = Answer(*answer)
            headers = dict(answer.headers)
            if self.close_connection:
                headers["Connection"] = "close"
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        # the http.server protocol names them do_<METHOD>
        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug(f"{name} %s: " + format, self.address_string(), *args)

    return Handler


class TelemetryServer(HttpServer):
    """Serve ``registry`` at ``/metrics`` and ``health`` at ``/healthz``."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], Health],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._registry = registry
        self._health = health
        super().__init__(self._answer, host, port, name="telemetry")

    def _answer(self, request: Request) -> Reply:
        path = request.path
        if path == "/metrics":
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._registry)
        if path == "/healthz":
            try:
                answer = self._health()
            except Exception as exc:  # a probe must answer, not hang or 500
                log.exception("health check failed")
                answer = Health(False, {"error": f"{type(exc).__name__}: {exc}"})
            body = json.dumps({"ok": answer.ok, **answer.detail}).encode()
            return 200 if answer.ok else 503, "application/json", body
        return 404, "text/plain", b"not found: try /metrics or /healthz\n"


class RequestCounts(Collector):
    """``helixpy_zookeeper_requests_total{op}``: what a daemon's ZooKeeper client sent."""

    def __init__(self, counts: Callable[[], Mapping[str, int]], labels: Mapping[str, str]):
        self._counts = counts
        self._labels = dict(labels)

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "helixpy_zookeeper_requests",
            "ZooKeeper requests this daemon sent, by operation (a multi is one Transaction).",
            labels=[*self._labels, "op"],
        )
        for op, n in sorted(self._counts().items()):
            family.add_metric([*self._labels.values(), op], n)
        yield family


def probe(host: str, port: int, timeout: float) -> tuple[bool, str]:
    """GET ``/healthz``: (healthy, what it said). Unreachable counts as unhealthy."""
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status == 200, reply.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return False, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return False, f"{url}: {exc}"
