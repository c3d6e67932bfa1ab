"""The controller's HTTP server (``--http-port``): the dashboard page, ``/openapi.json``,
the JSON API under ``/api/v1`` and the dashboard's first routes under ``/api``.

Every controller serves it, standbys included: reads come from ZooKeeper on the
controller's own session; mutations go to the leader (in-process when this controller
leads, forwarded over gRPC otherwise; see :mod:`helixpy.controller.api.mutations`).
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import ssl
import urllib.parse
from datetime import datetime
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import KazooException, NoNodeError

from helixpy.controller.api.access import BearerCheck, check_host, check_origin, is_loopback
from helixpy.controller.api.mutations import Mutator
from helixpy.controller.api.openapi import document
from helixpy.controller.api.reads import Reads
from helixpy.controller.api.routes import api_routes
from helixpy.controller.api.routing import PREFIX, ApiError, Call, Router, from_exception
from helixpy.controller.api.writes import Writes
from helixpy.controller.dashboard import legacy_answer, page
from helixpy.errors import AlreadyExists, HelixpyError, InvalidConfig, NotFound
from helixpy.model.limits import HARD_MAX_REQUEST_BYTES
from helixpy.store.paths import Paths
from helixpy.telemetry import Answer, Answered, HttpServer, Request

log = logging.getLogger(__name__)

#: the largest request body read: the default of the cluster's ``max_request_bytes`` (the
#: leader checks the cluster's own setting on what it is sent)
#: the largest body read: the hard request limit (the gRPC server's); the leader then
#: checks the cluster's ``max_request_bytes`` (413 naming it) as for the driver's requests
API_MAX_BODY = HARD_MAX_REQUEST_BYTES


def _version() -> str:
    try:
        return importlib.metadata.version("helixpy")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree
        return "0"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Answer:
    """A JSON answer (datetimes as seconds since the epoch)."""
    data = json.dumps(body, default=_encode).encode()
    return Answer(status, "application/json", data, headers or {})


def error_answer(error: ApiError) -> Answer:
    """The answer of an API error: its status, ``{code, field, message}`` and headers."""
    return json_answer(error.status, error.body(), error.headers)


class ControllerHttp(HttpServer):
    """Serve the dashboard and the HTTP API for the cluster at ``paths`` through ``zk``.

    ``token``: every ``/api/`` request must carry it as a bearer token (the page and
    ``/openapi.json`` stay open). ``ssl_context``: serve HTTPS. ``max_body``: the largest
    request body read (413 above it).
    """

    def __init__(
        self,
        zk: KazooClient,
        paths: Paths,
        mutator: Mutator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        max_body: int = API_MAX_BODY,
    ) -> None:
        self._zk = zk
        self._paths = paths
        self._page = page()
        self._bearer = BearerCheck(token) if token is not None else None
        # Open (no token) and on loopback: only loopback Host names (DNS rebinding). An
        # open API on another address was asked for (--http-insecure): no such check.
        self._loopback_only = token is None and is_loopback(host)
        routes = api_routes(Reads(zk, paths), Writes(zk, paths, mutator))
        self.router = Router(routes)
        self._openapi = json.dumps(
            document(routes, secured=token is not None, version=_version())
        ).encode()
        super().__init__(
            self._answer,
            host,
            port,
            name="http-api",
            max_body=max_body,
            ssl_context=ssl_context,
            refuse=self._refuse,
        )

    @staticmethod
    def _refuse(status: int, why: str) -> Answered:
        code = "PAYLOAD_TOO_LARGE" if status == 413 else "BAD_REQUEST"
        return error_answer(ApiError(code, why, "body"))

    def _answer(self, request: Request) -> Answered:
        path = request.path
        if path in ("/", "/index.html") and request.method in ("GET", "HEAD"):
            return 200, "text/html; charset=utf-8", self._page
        if path == "/openapi.json" and request.method in ("GET", "HEAD"):
            return 200, "application/json", self._openapi
        try:
            if not path.startswith("/api/"):
                raise ApiError("NO_SUCH_ROUTE", f"no route {path} (see /openapi.json)")
            if self._bearer is not None:
                self._bearer.check(request.headers)
            elif self._loopback_only:
                check_host(request.headers)
            if path == PREFIX or path.startswith(PREFIX + "/"):
                return self._api(request)
            if request.method not in ("GET", "HEAD"):
                raise ApiError("METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {path}")
            self._check_session()
            legacy = legacy_answer(self._zk, self._paths, request.target)
            if legacy is None:
                raise ApiError("NO_SUCH_ROUTE", f"no route {path} (see /openapi.json)")
            return legacy
        except ApiError as exc:
            return error_answer(exc)
        except Exception as exc:  # a bug must still answer the API's JSON shape (logged)
            log.exception("%s %s failed", request.method, path)
            return error_answer(ApiError("INTERNAL", f"{type(exc).__name__}: {exc}"))

    def _check_session(self) -> None:
        if self._zk.state != KazooState.CONNECTED:
            # Reads would queue until the session is back: answer now, the client retries.
            raise ApiError("UNAVAILABLE", f"ZooKeeper session is {self._zk.state}")

    def _api(self, request: Request) -> Answered:
        route, params = self.router.match(request.method, request.path)
        if route.mutation:
            check_origin(request.headers)
        self._check_session()
        call = Call(
            params=params,
            query=urllib.parse.parse_qs(request.query, keep_blank_values=True),
            body=request.body,
            content_type=request.headers.get("content-type", ""),
            headers=request.headers,
            method=request.method,
            path=request.path,
        )
        try:
            if not route.mutation:
                # Read what was committed before this request (a client's own write through
                # another controller included), not what this server has seen so far.
                self._zk.sync(self._paths.root)
            status, body = route.handler(call)
        except (InvalidConfig, NotFound, AlreadyExists) as exc:
            raise from_exception(exc) from None
        except NoNodeError as exc:
            raise ApiError("NOT_FOUND", f"not found: {exc}") from None
        except KazooException as exc:
            raise ApiError("UNAVAILABLE", f"ZooKeeper failed: {type(exc).__name__}") from exc
        except HelixpyError as exc:
            log.warning("%s %s failed: %s", request.method, request.path, exc)
            raise ApiError("INTERNAL", f"{type(exc).__name__}: {exc}") from exc
        return json_answer(status, body)
