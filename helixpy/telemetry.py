"""The daemons' HTTP side door: Prometheus metrics at ``/metrics``, a probe at ``/healthz``.

Controller and participant each own one :class:`TelemetryServer` (``--metrics-port``),
with their own ``CollectorRegistry``: nothing here is global, so several daemons can live in
one process (the scale benchmark runs 50 participants per process). ``/healthz`` answers
200 with a JSON body when the daemon's health function says healthy, 503 otherwise; that is
what ``helixpy controller health`` and ``helixpy participant health`` probe.

Imports only the standard library, ``prometheus_client`` and ``errors``; the collectors
that know a daemon's internals live beside it (``controller/metrics.py``,
``participant/metrics.py``).
"""

from __future__ import annotations

import json
import logging
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


class HttpServer:
    """A small threaded HTTP server for GET requests: ``handle(path)`` answers each one.

    ``port`` 0 picks a free port (see :attr:`address`). Serves on a daemon thread until
    :meth:`stop`. Shared by the telemetry server and the controller's dashboard.
    """

    def __init__(
        self,
        handle: Callable[[str], Reply],
        host: str = "127.0.0.1",
        port: int = 0,
        name: str = "http",
    ) -> None:
        self._server = ThreadingHTTPServer((host, port), _handler(handle, name))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=name, daemon=True)

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


def _handler(handle: Callable[[str], Reply], name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # the http.server protocol names it
            try:
                code, content_type, body = handle(self.path)
            except Exception as exc:  # one bad request must not take the server down
                log.exception("%s: GET %s failed", name, self.path)
                code, content_type = 500, "text/plain"
                body = f"{type(exc).__name__}: {exc}\n".encode()
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

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

    def _answer(self, raw_path: str) -> Reply:
        path = raw_path.split("?", 1)[0]
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
