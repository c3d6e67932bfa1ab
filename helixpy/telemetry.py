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
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Health:
    """One health answer: ``ok`` decides the probe; ``detail`` says why."""

    ok: bool
    detail: dict[str, Any] = field(default_factory=dict)


class TelemetryServer:
    """Serve ``registry`` and ``health`` over HTTP on ``host:port`` (0 picks a free port)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], Health],
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._registry = registry
        self._health = health
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="telemetry", daemon=True
        )

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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        registry, health = self._registry, self._health

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server protocol names it
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path == "/healthz":
                    try:
                        answer = health()
                    except Exception as exc:  # a probe must answer, not hang or 500
                        log.exception("health check failed")
                        answer = Health(False, {"error": f"{type(exc).__name__}: {exc}"})
                    body = json.dumps({"ok": answer.ok, **answer.detail}).encode()
                    self._send(200 if answer.ok else 503, "application/json", body)
                else:
                    self._send(404, "text/plain", b"not found: try /metrics or /healthz\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("telemetry %s: " + format, self.address_string(), *args)

        return Handler


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
